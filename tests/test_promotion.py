"""The quality gate: each rule as a pure decision with both outcomes, and through the real ZenML Model Control Plane
with the real production lookup and promote steps."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import pytest
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
from vtpose.training.promotion import Baseline, check_rule, decide_from_report, decide_promotion
from vtpose.training.registry import STATS_METADATA_KEY, WEIGHTS_ARTIFACT
from vtpose.training.reports import EvaluationReport

# Its own model, so this test's versions never mix with the pipeline test's `pose-estimator`.
GATE_MODEL = "pose-estimator-gate-test"


def _baseline(name: str, value: float, low: float, high: float, candidate: float = 0.50) -> Baseline:
    return Baseline(name, value, Interval(candidate - value, low, high))  # type: ignore[arg-type]


def test_no_worse_compares_point_estimates() -> None:
    tie = decide_promotion("AP", 0.50, _baseline("production", 0.50, -0.02, 0.02), None, rule="no_worse")
    assert tie.promote and tie.reference == "production"  # "at least": ties promote
    rejected = decide_promotion("AP", 0.49, Baseline("production", 0.50), Baseline("pretrained", 0.1))
    assert not rejected.promote and rejected.reference == "production" and rejected.reference_value == 0.50
    assert "0.4900" in rejected.reason and "0.5000" in rejected.reason and rejected.rule == "no_worse"


def test_not_significantly_worse_reads_the_upper_bound_against_the_margin() -> None:
    rule = "not_significantly_worse"
    # A lower point estimate, but the interval reaches above -margin: not shown worse, promoted.
    kept = decide_promotion("AP", 0.49, _baseline("production", 0.50, -0.030, -0.004, 0.49), None, rule, 0.005)
    assert kept.promote and kept.difference == {"estimate": pytest.approx(-0.01), "low": -0.030, "high": -0.004}
    assert "upper bound -0.0040 is not below -0.0050" in kept.reason
    # The whole interval below -margin: significantly worse, rejected.
    worse = decide_promotion("AP", 0.49, _baseline("production", 0.50, -0.030, -0.006, 0.49), None, rule, 0.005)
    assert not worse.promote and "significantly worse" in worse.reason and worse.margin == 0.005
    # Margin 0: an interval touching 0 is not significantly worse.
    assert decide_promotion("AP", 0.5, _baseline("production", 0.5, -0.01, 0.0), None, rule).promote
    assert not decide_promotion("AP", 0.5, _baseline("production", 0.5, -0.01, -1e-4), None, rule).promote


def test_significantly_better_needs_the_lower_bound_above_zero() -> None:
    rule = "significantly_better"
    better = decide_promotion("AP", 0.52, None, _baseline("pretrained", 0.50, 0.004, 0.036, 0.52), rule)
    assert better.promote and better.reference == "pretrained" and "lower bound +0.0040 is above 0" in better.reason
    # A higher point estimate is not enough when the interval includes 0 (what no_worse would promote).
    unclear = _baseline("pretrained", 0.50, -0.003, 0.043, 0.52)
    assert not decide_promotion("AP", 0.52, None, unclear, rule).promote
    assert decide_promotion("AP", 0.52, None, unclear, "no_worse").promote
    # The same weights as production: a difference of exactly zero is not an improvement.
    same = Baseline("production", 0.5, Interval(0.0, 0.0, 0.0))
    assert not decide_promotion("AP", 0.5, same, None, rule).promote


def test_first_version_and_no_baseline() -> None:
    first = decide_promotion("AP", 0.30, None, Baseline("pretrained", 0.49))
    assert not first.promote and first.reference == "pretrained" and "nothing in production yet" in first.reason
    alone = decide_promotion("AP", 0.10, None, None, rule="significantly_better")
    assert alone.promote and alone.reference == "none"


def test_bad_rules_margins_and_missing_intervals_are_clear_errors() -> None:
    with pytest.raises(VtposeError, match="'better' is unknown; use one of no_worse, not_significantly_worse"):
        check_rule("better")
    with pytest.raises(VtposeError, match="used only by rule not_significantly_worse"):
        check_rule("significantly_better", 0.01)
    with pytest.raises(VtposeError, match="bootstrap_resamples above 0"):
        decide_promotion("AP", 0.5, Baseline("production", 0.5), None, rule="significantly_better")


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
    report = _report(0.52, 0.50, 0.40, "a" * 64, {PRODUCTION: (0.001, 0.04), PRETRAINED: (0.1, 0.14)})
    decision = decide_from_report(report, "AP", "significantly_better", 0.0, "a" * 64)
    assert decision.promote and decision.reference == "production" and decision.reference_value == 0.50
    assert decision.difference == {"estimate": pytest.approx(0.02), "low": 0.001, "high": 0.04}
    changed = decide_from_report(report, "AP", "significantly_better", 0.0, "b" * 64)
    assert not changed.promote and "production changed during this run" in changed.reason
    # Nothing in production: judged against the pretrained checkpoint on the same split.
    first = decide_from_report(report, "AP", "significantly_better", 0.0, None)
    assert first.promote and first.reference == "pretrained" and first.reference_value == 0.40


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
    tag: str, ap: float, production_ap: float, low: float, high: float, rule: str, fail_on_reject: bool
) -> None:
    """weights -> the real production lookup -> evaluation -> metadata -> the real promote step."""
    fake_weights(tag=tag)
    sha = production_reference()
    report = fake_evaluation(
        production_weights_sha256=sha, ap=ap, production_ap=production_ap, pretrained_ap=0.45, low=low, high=high
    )
    record_stats(report)
    promote_model(evaluation_report=report, promotion=PromotionConfig(rule=rule, fail_on_reject=fail_on_reject))


def _decision(run) -> dict:  # type: ignore[no-untyped-def]
    return run.steps["promote_model"].outputs["promotion_decision"][0].load()


def _production_id():  # type: ignore[no-untyped-def]
    return Client().get_model_version(GATE_MODEL, ModelStages.PRODUCTION).id


@pytest.mark.slow  # runs a (tiny) pipeline three times
def test_gate_promotes_then_rejects_then_fails_the_run(zenml_stack: str) -> None:
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
