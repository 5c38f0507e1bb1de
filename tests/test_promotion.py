"""The quality gate: each rule as a pure decision with both outcomes, and through the real ZenML Model Control Plane
with the real production lookup and promote steps."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import pytest
from pydantic import ValidationError
from zenml import Model, pipeline, step
from zenml.client import Client
from zenml.enums import ModelStages

from materializers import PoseWeightsMaterializer
from steps.evaluation.production import production_reference
from steps.evaluation.promote import promote_model
from vtpose.artifacts import PoseWeights
from vtpose.errors import VtposeError
from vtpose.keypoints import COCO_STAT_NAMES
from vtpose.training.bootstrap import CANDIDATE, PRETRAINED, PRODUCTION, BootstrapResult, Interval, difference_name
from vtpose.training.config import PromotionConfig
from vtpose.training.promotion import (
    DEFAULT_GATE_RULES,
    ENV_TEST_STORE,
    Baseline,
    GateRule,
    check_rule,
    decide_from_report,
    decide_promotion,
    in_test_store,
    keep_test_config_out,
)
from vtpose.training.registry import STATS_METADATA_KEY, WEIGHTS_ARTIFACT
from vtpose.training.reports import EvaluationReport

# Its own model, so this test's versions never mix with the pipeline test's `pose-estimator`.
GATE_MODEL = "pose-estimator-gate-test"
NSW, BETTER = "not_significantly_worse", "significantly_better"


def _rule(metric: str, rule: str, margin: float = 0.0) -> GateRule:
    return GateRule(metric=metric, rule=rule, margin=margin)  # type: ignore[arg-type]


def _stats(value: float = 0.50, **values: float) -> dict[str, float]:
    """Every COCO stat at `value`, some set apart."""
    return dict.fromkeys(COCO_STAT_NAMES, value) | values


def _baseline(
    name: str, stats: dict[str, float], candidate: dict[str, float], bounds: dict[str, tuple[float, float]]
) -> Baseline:
    """A reference with its stats and, for the stats in `bounds`, the interval (low, high) of candidate - it."""
    differences = {m: Interval(candidate[m] - stats[m], low, high) for m, (low, high) in bounds.items()}
    return Baseline(name, stats, differences)  # type: ignore[arg-type]


def _one(metric: str, candidate: float, reference: float, low: float, high: float, name: str = "production"):  # type: ignore[no-untyped-def]
    """A baseline on one stat (every other stat equal, intervals only on `metric`) and the candidate's stats."""
    stats, mine = _stats(reference), _stats(reference, **{metric: candidate})
    return mine, _baseline(name, stats, mine, {metric: (low, high)})


def test_no_worse_compares_point_estimates() -> None:
    mine, production = _one("AP", 0.50, 0.50, -0.02, 0.02)
    tie = decide_promotion(mine, production, None, [_rule("AP", "no_worse")])
    assert tie.promote and tie.reference == "production"  # "at least": ties promote
    mine = _stats(0.50, AP=0.49)
    rules = [_rule("AP", "no_worse")]
    rejected = decide_promotion(mine, Baseline("production", _stats()), Baseline("pretrained", _stats(0.1)), rules)
    assert not rejected.promote and rejected.reference == "production" and rejected.reference_value == 0.50
    assert "0.4900" in rejected.reason and "0.5000" in rejected.reason and rejected.rule == "no_worse"


def test_not_significantly_worse_reads_the_upper_bound_against_the_margin() -> None:
    rule = [_rule("AP", NSW, 0.005)]
    # A lower point estimate, but the interval reaches above -margin: not shown worse, promoted.
    kept = decide_promotion(*_one("AP", 0.49, 0.50, -0.030, -0.004), None, rule)
    assert kept.promote and kept.difference == {"estimate": pytest.approx(-0.01), "low": -0.030, "high": -0.004}
    assert "upper bound -0.0040 is not below -0.0050" in kept.reason
    # The whole interval below -margin: significantly worse, rejected.
    worse = decide_promotion(*_one("AP", 0.49, 0.50, -0.030, -0.006), None, rule)
    assert not worse.promote and "significantly worse" in worse.reason and worse.margin == 0.005
    # Margin 0: an interval touching 0 is not significantly worse.
    assert decide_promotion(*_one("AP", 0.5, 0.5, -0.01, 0.0), None, [_rule("AP", NSW)]).promote
    assert not decide_promotion(*_one("AP", 0.5, 0.5, -0.01, -1e-4), None, [_rule("AP", NSW)]).promote


def test_significantly_better_needs_the_lower_bound_above_zero() -> None:
    better_rule = [_rule("AP", BETTER)]
    mine, pretrained = _one("AP", 0.52, 0.50, 0.004, 0.036, name="pretrained")
    better = decide_promotion(mine, None, pretrained, better_rule)
    assert better.promote and better.reference == "pretrained" and "lower bound +0.0040 is above 0" in better.reason
    # A higher point estimate is not enough when the interval includes 0 (what no_worse would promote).
    mine, unclear = _one("AP", 0.52, 0.50, -0.003, 0.043, name="pretrained")
    assert not decide_promotion(mine, None, unclear, better_rule).promote
    assert decide_promotion(mine, None, unclear, [_rule("AP", "no_worse")]).promote
    # The same weights as production: a difference of exactly zero is not an improvement.
    assert not decide_promotion(*_one("AP", 0.5, 0.5, 0.0, 0.0), None, better_rule).promote


def test_first_version_and_no_baseline() -> None:
    first = decide_promotion(_stats(0.30), None, Baseline("pretrained", _stats(0.49)), [_rule("AP", "no_worse")])
    assert not first.promote and first.reference == "pretrained" and "nothing in production yet" in first.reason
    alone = decide_promotion(_stats(0.10), None, None, list(DEFAULT_GATE_RULES))
    assert alone.promote and alone.reference == "none" and len(alone.checks) == len(DEFAULT_GATE_RULES)


def test_bad_rules_margins_and_missing_intervals_are_clear_errors() -> None:
    with pytest.raises(VtposeError, match="'better' is unknown; use one of no_worse, not_significantly_worse"):
        check_rule("better")
    with pytest.raises(VtposeError, match="used only by rule not_significantly_worse"):
        check_rule("significantly_better", 0.01)
    with pytest.raises(ValidationError, match="used only by rule not_significantly_worse"):
        _rule("APl", BETTER, 0.01)
    with pytest.raises(VtposeError, match="bootstrap_resamples above 0"):
        decide_promotion(_stats(), Baseline("production", _stats()), None, [_rule("AP", BETTER)])
    with pytest.raises(VtposeError, match="at least one rule"):
        decide_promotion(_stats(), Baseline("production", _stats()), None, [])


# The default gate, every interval on every stat: (low, high) of candidate - reference.
CLEAR_WIN = {"APl": (0.005, 0.033), "AP": (-0.006, 0.020), "AP50": (-0.01, 0.02), "AP75": (-0.06, 0.02)}
CLEAR_WIN["APm"] = (-0.03, 0.01)


def test_every_rule_must_pass() -> None:
    rules = list(DEFAULT_GATE_RULES)
    production = _stats(0.50)
    mine = _stats(0.51)
    passed = decide_promotion(mine, _baseline("production", production, mine, CLEAR_WIN), None, rules)
    assert passed.promote and [c["passed"] for c in passed.checks] == [True] * 5
    assert passed.reason == (
        "all 5 rules passed against the production version (APl significantly_better, AP not_significantly_worse, "
        "AP50 not_significantly_worse, AP75 not_significantly_worse, APm not_significantly_worse)"
    )
    # The record's top level is the first rule's, as when the gate had one rule.
    assert (passed.metric, passed.rule, passed.reference_value) == ("APl", BETTER, 0.50)
    assert passed.difference == {"estimate": pytest.approx(0.01), "low": 0.005, "high": 0.033}
    assert passed.checks[3] == {
        "metric": "AP75",
        "rule": NSW,
        "margin": 0.0,
        "candidate": 0.51,
        "reference_value": 0.50,
        "difference": {"estimate": pytest.approx(0.01), "low": -0.06, "high": 0.02},
        "passed": True,
        "reason": "AP75 0.5100 against the production version's 0.5000, difference +0.0100 [-0.0600, +0.0200]: "
        "not significantly worse (upper bound +0.0200 is not below 0; rule not_significantly_worse)",
        "source": None,  # the combined val set (a rule's `source:` names one of data.sources)
    }
    # One stat significantly worse: rejected, and the reason names that rule alone.
    worse = decide_promotion(
        mine, _baseline("production", production, mine, CLEAR_WIN | {"AP75": (-0.06, -0.01)}), None, rules
    )
    assert not worse.promote and [c["passed"] for c in worse.checks] == [True, True, True, False, True]
    assert worse.reason.startswith("1 of 5 rules failed: AP75 0.5100 against the production version's 0.5000")
    assert "significantly worse (upper bound -0.0100 is below 0;" in worse.reason and "APl" not in worse.reason
    # The served use not shown better: rejected although nothing is worse.
    unclear = decide_promotion(
        mine, _baseline("production", production, mine, CLEAR_WIN | {"APl": (-0.001, 0.02)}), None, rules
    )
    assert not unclear.promote and unclear.reason.startswith("1 of 5 rules failed: APl") and unclear.metric == "APl"
    # A stat with no ground truth on the split (pycocotools -1): nothing shows it worse, nor better.
    no_medium = _stats(0.51, APm=-1.0)
    without = {m: b for m, b in CLEAR_WIN.items() if m != "APm"}
    reference = _baseline("production", _stats(0.50, APm=-1.0), no_medium, without)
    kept = decide_promotion(no_medium, reference, None, rules)
    assert kept.promote and "APm has no ground truth in its size range" in kept.checks[4]["reason"]
    assert not decide_promotion(no_medium, reference, None, [_rule("APm", BETTER)]).promote


# `make run` on a fresh store (configs/training.yaml's comment): trained and pretrained on val2017, and the paired
# 95% intervals of trained minus pretrained.
MAKE_RUN_TRAINED = _stats(AP=0.4995, AP50=0.7980, AP75=0.6043, APm=0.4506, APl=0.5719, AR=0.5653)
MAKE_RUN_PRETRAINED = _stats(AP=0.4920, AP50=0.7713, AP75=0.6251, APm=0.4604, APl=0.5531, AR=0.5611)
MAKE_RUN_DIFFERENCES = {
    "AP": (-0.0063, 0.0199),
    "AP50": (0.0023, 0.0617),
    "AP75": (-0.0660, 0.0161),
    "APm": (-0.0324, 0.0073),
    "APl": (0.0053, 0.0328),
    "AR": (-0.0111, 0.0163),
}


def test_the_default_promotes_make_runs_model_where_ap_alone_did_not() -> None:
    pretrained = _baseline("pretrained", MAKE_RUN_PRETRAINED, MAKE_RUN_TRAINED, MAKE_RUN_DIFFERENCES)
    default = decide_promotion(MAKE_RUN_TRAINED, None, pretrained, PromotionConfig().gate_rules())
    assert default.promote and default.reason.startswith("nothing in production yet: all 5 rules passed")
    old = decide_promotion(MAKE_RUN_TRAINED, None, pretrained, PromotionConfig(metric="AP").gate_rules())
    assert not old.promote and "lower bound -0.0063 is not above 0" in old.reason


def test_production_below_pretrained_is_no_reference() -> None:
    rules = [_rule("APl", BETTER), _rule("AP", NSW)]
    mine = _stats(0.50)
    # Production scores below the pretrained checkpoint on APl (the first rule's stat): judged against pretrained.
    production = _baseline("production", _stats(0.47), mine, {"APl": (0.01, 0.05), "AP": (0.01, 0.05)})
    pretrained = _baseline("pretrained", _stats(0.49), mine, {"APl": (-0.01, 0.03), "AP": (-0.01, 0.03)})
    decision = decide_promotion(mine, production, pretrained, rules)
    assert decision.production_below_pretrained and decision.reference == "pretrained"
    assert decision.reference_value == 0.49 and decision.production_value == 0.47
    assert decision.difference == {"estimate": pytest.approx(0.01), "low": -0.01, "high": 0.03}
    assert not decision.promote  # against production it would have passed: +0.03 [+0.01, +0.05]
    assert decision.reason.startswith(
        "the production version scores below the pretrained checkpoint on this split (APl 0.4700 against 0.4900), "
        "so it protects nothing and the rules are applied against the pretrained checkpoint: 1 of 2 rules failed: APl"
    )
    assert decide_promotion(mine, production, None, rules).promote  # no pretrained score: production it is
    # Below on another stat only: production stays the reference.
    production = _baseline("production", _stats(0.49, AP=0.40), mine, {"APl": (0.001, 0.02), "AP": (0.05, 0.15)})
    pretrained = _baseline("pretrained", _stats(0.48), mine, {"APl": (-0.01, 0.03), "AP": (-0.01, 0.03)})
    kept = decide_promotion(mine, production, pretrained, rules)
    assert kept.promote and kept.reference == "production" and not kept.production_below_pretrained


def test_promotion_config_forms() -> None:
    default = PromotionConfig()
    assert (
        default.gate_rules()
        == list(DEFAULT_GATE_RULES)
        == [
            _rule("APl", BETTER),
            _rule("AP", NSW),
            _rule("AP50", NSW),
            _rule("AP75", NSW),
            _rule("APm", NSW),
        ]
    )
    # The single-rule form of older configs: a one-rule list; a key left out keeps its old default.
    assert PromotionConfig(metric="APl", rule=NSW, margin=0.01).gate_rules() == [_rule("APl", NSW, 0.01)]
    assert PromotionConfig(rule="no_worse").gate_rules() == [_rule("AP", "no_worse")]
    assert PromotionConfig(metric="AP75").gate_rules() == [_rule("AP75", BETTER)]
    listed = PromotionConfig(rules=[{"metric": "AR", "rule": NSW, "margin": 0.02}, {"metric": "AP", "rule": BETTER}])
    assert listed.gate_rules() == [_rule("AR", NSW, 0.02), _rule("AP", BETTER)]
    # What ZenML stores and hands the step validates back to the same rules.
    for config in (default, listed, PromotionConfig(metric="APl")):
        assert PromotionConfig.model_validate(config.model_dump(mode="json")).gate_rules() == config.gate_rules()
    with pytest.raises(ValidationError, match=r"both promotion.rules and the single-rule form \(promotion.metric, "):
        PromotionConfig(rules=[{"metric": "AP", "rule": BETTER}], metric="AP", margin=0.0)
    with pytest.raises(ValidationError, match=r"promotion\.rules is empty"):
        PromotionConfig(rules=[])
    # The shipped default config spells out the same rules as the code's default.
    import yaml

    from vtpose.paths import DEFAULT_CONFIG

    shipped = PromotionConfig(**yaml.safe_load(DEFAULT_CONFIG.read_text())["parameters"]["promotion"])
    assert shipped.gate_rules() == default.gate_rules() and not shipped.test_only


def _report(ap: float, production_ap: float | None, pretrained_ap: float, sha: str, diffs: dict) -> EvaluationReport:
    """An evaluation report with chosen numbers and bootstrap intervals, as `evaluation_report` lays it out.

    `diffs`: reference role -> (low, high) of candidate - reference for every stat.
    """
    stats = dict.fromkeys(COCO_STAT_NAMES, ap)
    references = {PRETRAINED: pretrained_ap} | ({PRODUCTION: production_ap} if production_ap is not None else {})
    bootstrap = BootstrapResult(
        resamples=1000,
        seed=0,
        confidence=0.95,
        num_images=108,
        intervals={CANDIDATE: {name: Interval(ap, ap - 0.05, ap + 0.05) for name in COCO_STAT_NAMES}},
        differences={
            difference_name(CANDIDATE, role): {name: Interval(ap - value, *diffs[role]) for name in COCO_STAT_NAMES}
            for role, value in references.items()
        },
    )
    return EvaluationReport(
        stats=stats,
        baseline_stats=dict.fromkeys(COCO_STAT_NAMES, pretrained_ap),
        production_stats=dict.fromkeys(COCO_STAT_NAMES, production_ap) if production_ap is not None else {},
        production_weights_sha256=sha if production_ap is not None else "",
        bootstrap=bootstrap.to_dict(),
    )


def test_decision_from_a_report_uses_the_same_split_scores_and_notices_a_changed_production() -> None:
    rules = list(DEFAULT_GATE_RULES)
    report = _report(0.52, 0.50, 0.40, "a" * 64, {PRODUCTION: (0.001, 0.04), PRETRAINED: (0.1, 0.14)})
    decision = decide_from_report(report, rules, "a" * 64)
    assert decision.promote and decision.reference == "production" and decision.reference_value == 0.50
    assert decision.difference == {"estimate": pytest.approx(0.02), "low": 0.001, "high": 0.04}
    assert [c["metric"] for c in decision.checks] == ["APl", "AP", "AP50", "AP75", "APm"]
    changed = decide_from_report(report, rules, "b" * 64)
    assert not changed.promote and "production changed during this run" in changed.reason and not changed.checks
    # Nothing in production: judged against the pretrained checkpoint on the same split.
    first = decide_from_report(report, rules, None)
    assert first.promote and first.reference == "pretrained" and first.reference_value == 0.40
    # Production below the pretrained checkpoint on this split: judged against the pretrained checkpoint.
    lost = _report(0.52, 0.40, 0.50, "a" * 64, {PRODUCTION: (0.05, 0.2), PRETRAINED: (-0.01, 0.05)})
    below = decide_from_report(lost, rules, "a" * 64)
    assert below.production_below_pretrained and below.reference == "pretrained" and not below.promote


def test_a_test_config_promotes_only_in_a_test_store() -> None:
    mine, production = _one("AP", 0.50, 0.50, -0.01, 0.01)
    passed = decide_promotion(mine, production, None, [_rule("AP", NSW, 0.05)])
    assert passed.promote
    assert not in_test_store({}) and not in_test_store({ENV_TEST_STORE: "0"}) and in_test_store({ENV_TEST_STORE: "1"})
    refused = keep_test_config_out(passed, test_only=True, test_store=in_test_store({}))
    assert not refused.promote and refused.test_only_refused
    assert refused.reason.startswith(passed.reason)
    assert "promotion.test_only: true" in refused.reason and f"{ENV_TEST_STORE} is not 1" in refused.reason
    assert "run with configs/training.yaml or drop promotion.test_only" in refused.reason
    allowed = keep_test_config_out(passed, test_only=True, test_store=in_test_store({ENV_TEST_STORE: "1"}))
    assert allowed == passed
    assert keep_test_config_out(passed, test_only=False, test_store=False) == passed
    rejected = decide_promotion(*_one("AP", 0.50, 0.50, 0.0, 0.0), None, [_rule("AP", BETTER)])
    assert keep_test_config_out(rejected, test_only=True, test_store=False) == rejected  # nothing to refuse
    # configs/smoke.yaml is such a config; this test session's store is a test store (tests/conftest.py).
    import yaml

    from vtpose.paths import CONFIGS_DIR

    assert yaml.safe_load((CONFIGS_DIR / "smoke.yaml").read_text())["parameters"]["promotion"]["test_only"] is True
    assert in_test_store()


def test_summary_shows_every_check_and_a_production_below_pretrained() -> None:
    from vtpose.training.summary import decision_lines

    rules = [_rule("APl", BETTER), _rule("AP", NSW, 0.01)]
    mine = _stats(0.50)
    production = _baseline("production", _stats(0.47), mine, {"APl": (0.01, 0.05), "AP": (0.01, 0.05)})
    pretrained = _baseline("pretrained", _stats(0.49), mine, {"APl": (-0.01, 0.03), "AP": (-0.01, 0.03)})
    record = decide_promotion(mine, production, pretrained, rules).to_dict() | {
        "model_version": "7",
        "production_version": "6",
    }
    lines = decision_lines(record)
    assert lines[0] == f"promotion (2 rules, all must pass): pose-estimator version 7 NOT promoted: {record['reason']}"
    assert lines[1] == (
        "  production version 6 scores below the pretrained checkpoint on this split (APl 0.4700 against 0.4900): "
        "the rules were applied against the pretrained checkpoint"
    )
    assert lines[2] == f"  rule APl significantly_better: FAILED: {record['checks'][0]['reason']}"
    assert lines[3] == f"  rule AP not_significantly_worse, margin 0.01: passed: {record['checks'][1]['reason']}"
    assert len(lines) == 4
    # A record from before the rules list: the one line it always had.
    old = {"promote": True, "rule": BETTER, "model_version": "3", "reason": "r"}
    assert decision_lines(old) == [
        "promotion (rule significantly_better): pose-estimator version 3 PROMOTED to production: r"
    ]


@step(output_materializers=PoseWeightsMaterializer)
def fake_weights(tag: str) -> Annotated[PoseWeights, WEIGHTS_ARTIFACT]:
    """A small file standing in for trained weights; a different tag, different bytes, a different sha256."""
    path = Path(tempfile.mkdtemp(prefix="vtpose-gate-")) / "best.pt"
    path.write_bytes(f"weights {tag}".encode())
    return PoseWeights(path=path, architecture="fake", origin="trained")


@step
def fake_evaluation(
    production_weights_sha256: str, ap: float, production_ap: float, pretrained_ap: float, low: float, high: float
) -> Annotated[EvaluationReport, "evaluation_report"]:
    """A report with chosen numbers: the same interval (low, high) against production and pretrained."""
    production = production_ap if production_weights_sha256 else None
    return _report(
        ap, production, pretrained_ap, production_weights_sha256, {PRODUCTION: (low, high), PRETRAINED: (low, high)}
    )


@step
def record_stats(evaluation_report: EvaluationReport) -> None:
    """Log the stats on the model version the way the evaluate step does."""
    from zenml import log_metadata

    log_metadata({STATS_METADATA_KEY: evaluation_report.stats}, infer_model=True)


@pipeline(model=Model(name=GATE_MODEL), enable_cache=False)
def gate_pipeline(
    tag: str,
    ap: float,
    production_ap: float,
    low: float,
    high: float,
    rule: str,
    fail_on_reject: bool,
    test_only: bool = False,
) -> None:
    """weights -> the real production lookup -> evaluation -> metadata -> the real promote step (the config in the
    single-rule form older configs use)."""
    fake_weights(tag=tag)
    sha = production_reference()
    report = fake_evaluation(
        production_weights_sha256=sha, ap=ap, production_ap=production_ap, pretrained_ap=0.45, low=low, high=high
    )
    record_stats(report)
    promotion = PromotionConfig(rule=rule, fail_on_reject=fail_on_reject, test_only=test_only)
    promote_model(evaluation_report=report, promotion=promotion)


def _decision(run) -> dict:  # type: ignore[no-untyped-def]
    return run.steps["promote_model"].outputs["promotion_decision"][0].load()


def _production_id():  # type: ignore[no-untyped-def]
    return Client().get_model_version(GATE_MODEL, ModelStages.PRODUCTION).id


@pytest.mark.slow  # runs a (tiny) pipeline five times
def test_gate_promotes_then_rejects_then_fails_the_run(zenml_stack: str, monkeypatch: pytest.MonkeyPatch) -> None:
    client = Client()
    better = {"rule": "significantly_better", "low": 0.01, "high": 0.09}
    first = gate_pipeline(tag="1", ap=0.50, production_ap=0.0, fail_on_reject=False, **better)
    decision = _decision(first)
    assert decision["promote"] is True and decision["reference"] == "pretrained"
    production = client.get_model_version(GATE_MODEL, ModelStages.PRODUCTION)
    assert production.run_metadata[STATS_METADATA_KEY]["AP"] == pytest.approx(0.50)

    # Higher, but not significantly: significantly_better keeps production, judged on production's own score.
    unclear = {"rule": "significantly_better", "low": -0.01, "high": 0.03}
    second = gate_pipeline(tag="2", ap=0.51, production_ap=0.50, fail_on_reject=False, **unclear)
    decision = _decision(second)
    assert decision["promote"] is False and decision["reference"] == "production"
    assert decision["reference_value"] == pytest.approx(0.50) and decision["candidate"] == pytest.approx(0.51)
    assert decision["production_version"] == str(production.name) and decision["difference"]["low"] == -0.01
    assert _production_id() == production.id

    # Significantly worse with fail_on_reject: the run fails, and the gate is why.
    worse = {"rule": "not_significantly_worse", "low": -0.09, "high": -0.02}
    with pytest.raises(RuntimeError):
        gate_pipeline(tag="3", ap=0.45, production_ap=0.50, fail_on_reject=True, **worse)
    failed = client.get_pipeline("gate_pipeline").last_run
    assert failed.status.value == "failed"
    step = failed.steps["promote_model"]
    assert step.status.value == "failed" and step.exception_info is not None
    assert "quality gate failed" in step.exception_info.traceback, step.exception_info.traceback[-2000:]
    assert "significantly worse" in step.exception_info.traceback
    assert _production_id() == production.id

    # Lower, but not significantly worse: promoted under not_significantly_worse.
    close = {"rule": "not_significantly_worse", "low": -0.04, "high": 0.01}
    fourth = gate_pipeline(tag="4", ap=0.49, production_ap=0.50, fail_on_reject=True, **close)
    assert _decision(fourth)["promote"] is True and _decision(fourth)["reference"] == "production"
    assert _production_id() != production.id

    # The same passing numbers from a test_only config, in a store that is not marked as a test store: the rules
    # pass, production stays, and fail_on_reject does not fail the run over it.
    production_id = _production_id()
    monkeypatch.delenv(ENV_TEST_STORE)
    fifth = gate_pipeline(tag="5", ap=0.49, production_ap=0.49, fail_on_reject=True, test_only=True, **close)
    decision = _decision(fifth)
    assert decision["promote"] is False and decision["test_only_refused"] is True
    assert "promotion.test_only: true" in decision["reason"] and _production_id() == production_id


def test_preflight_check_refuses_a_rule_without_its_intervals_and_a_stray_margin(tmp_path: Path) -> None:
    import yaml

    from vtpose.paths import CONFIGS_DIR
    from vtpose.training.config import check_run_config

    def config(evaluation: dict, promotion: dict) -> Path:
        raw = yaml.safe_load((CONFIGS_DIR / "smoke.yaml").read_text())
        raw["parameters"]["evaluation"].update(evaluation)
        raw["parameters"]["promotion"] = promotion
        path = tmp_path / "run.yaml"
        path.write_text(yaml.safe_dump(raw))
        return path

    parsed = check_run_config(config({"bootstrap_resamples": 200}, {"rule": "significantly_better"}))
    assert parsed["promotion"].rule == "significantly_better"  # type: ignore[attr-defined]
    assert check_run_config(config({"bootstrap_resamples": 0}, {"rule": "no_worse"}))
    with pytest.raises(
        VtposeError, match=r"promotion.rule significantly_better .*evaluation.bootstrap_resamples is 50; set it"
    ):
        check_run_config(config({"bootstrap_resamples": 50}, {"rule": "significantly_better"}))
    with pytest.raises(VtposeError, match=r"parameters.promotion: margin 0.01 is used only by rule not_significantly"):
        check_run_config(config({}, {"rule": "no_worse", "margin": 0.01}))
    with pytest.raises(VtposeError, match=r"parameters.promotion.rule: Input should be 'no_worse'"):
        check_run_config(config({}, {"rule": "better"}))
    # Every interval rule of a list is checked, and the message names the one that reads the interval.
    rules = [{"metric": "AP", "rule": "no_worse"}, {"metric": "APl", "rule": "significantly_better"}]
    with pytest.raises(VtposeError, match=r"promotion.rules\[1\].rule significantly_better \(on APl\) reads the"):
        check_run_config(config({"bootstrap_resamples": 50}, {"rules": rules}))
    assert check_run_config(config({"bootstrap_resamples": 0}, {"rules": rules[:1]}))
    with pytest.raises(VtposeError, match=r"parameters.promotion: both promotion.rules and the single-rule form"):
        check_run_config(config({}, {"rules": rules, "rule": "no_worse"}))
    with pytest.raises(VtposeError, match=r"parameters.promotion.rules.1.metric: Input should be 'AP'"):
        check_run_config(config({}, {"rules": [rules[0], {"metric": "ARl", "rule": "no_worse"}]}))
    with pytest.raises(VtposeError, match=r"parameters.promotion.rules.0: margin 0.01 is used only by rule"):
        check_run_config(config({}, {"rules": [{"metric": "AP", "rule": "no_worse", "margin": 0.01}]}))
