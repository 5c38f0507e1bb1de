"""The quality gate: does a new model version deserve the `production` stage?

The candidate is compared with the current production version scored on the candidate's own val split in the
same run (or, for a first version, with the pretrained checkpoint on that split), never with a number recorded
on other data. What is compared is the config's `promotion.rules`: a list of per-metric rules, every one of which
must pass. Each rule reads one stat:

- `no_worse`: the candidate's value is at least the reference's (point estimates; ties promote).
- `not_significantly_worse`: the upper bound of the paired bootstrap interval of candidate - reference is not
  below `-margin`: passes unless the data show it worse by more than the margin.
- `significantly_better`: the lower bound of that interval is above 0: passes only if the data show it better.

A production version that scores below the pretrained checkpoint on this split (first rule's stat, point
estimates) protects nothing: what users would get without it is the pretrained checkpoint, so the rules are then
applied against the pretrained checkpoint, and the decision says so.

A config marked `test_only` (configs/smoke.yaml, lenient on purpose) never moves the production stage of a
user's store: only a test store, one whose process has `ENV_TEST_STORE` set to 1 (tests/conftest.py sets it).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from vtpose.errors import VtposeError
from vtpose.training.bootstrap import CANDIDATE, PRETRAINED, PRODUCTION, BootstrapResult, Interval, difference_name

if TYPE_CHECKING:
    from vtpose.training.reports import EvaluationReport

Reference = Literal["production", "pretrained", "none"]
PromotionRule = Literal["no_worse", "not_significantly_worse", "significantly_better"]
PROMOTION_RULES: tuple[str, ...] = get_args(PromotionRule)
# The rules that read the paired bootstrap interval of the difference.
INTERVAL_RULES: tuple[str, ...] = ("not_significantly_worse", "significantly_better")
# The stats a rule may read: pycocotools' APs and AR over all sizes (the per-size ARs stay out: APm and APl
# already judge a size).
GateMetric = Literal["AP", "AP50", "AP75", "APm", "APl", "AR"]
GATE_METRICS: tuple[str, ...] = get_args(GateMetric)
# What the single-rule form (`promotion.metric` + `rule` + `margin`) means for a key left out: the gate's
# default before it took a list of rules, so an old config keeps its meaning.
SINGLE_FORM_METRIC: GateMetric = "AP"
SINGLE_FORM_RULE: PromotionRule = "significantly_better"
# Set to 1 in a process whose ZenML store is a test store (tests/conftest.py): there, and only there, a config
# with `promotion.test_only: true` may move the production stage.
ENV_TEST_STORE = "VTPOSE_TEST_STORE"

_REFERENCE_LABEL = {PRODUCTION: "the production version", PRETRAINED: "the pretrained checkpoint"}


def margin_problem(rule: str, margin: float) -> str | None:
    """Why `margin` does not go with `rule`, or None when it does."""
    if margin < 0:
        return f"margin {margin} is negative; it is the tolerated loss, 0 or more"
    if margin and rule != "not_significantly_worse":
        return f"margin {margin} is used only by rule not_significantly_worse, not {rule}; drop it or change the rule"
    return None


class GateRule(BaseModel):
    """One rule of the gate: a stat and how the candidate's value of it is judged (see the module docstring).

    Attributes:
        metric: the stat compared, one of `GATE_METRICS`.
        rule: one of `PROMOTION_RULES`.
        margin: the loss not_significantly_worse tolerates, in units of the stat (0.01 = one AP point); 0 for
            the other rules.
        source: with `data.sources`, the source whose val split the stat is read on (its own pycocotools scores
            and paired bootstrap, `EvaluationReport.per_source`); None (the default) reads the combined val set
            of every source together, which for a single-source run is that source's val split.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: GateMetric
    rule: PromotionRule
    margin: float = Field(0.0, ge=0.0, lt=1.0)
    source: str | None = None

    @model_validator(mode="after")
    def _margin_belongs_to_its_rule(self) -> GateRule:
        problem = margin_problem(self.rule, self.margin)
        if problem:
            raise ValueError(problem)
        return self

    @property
    def stat_key(self) -> str:
        """Where the stat is in `decide_promotion`'s stats: `AP`, or `mpii-sample/AP` for a source's."""
        return stat_key(self.metric, self.source)

    @property
    def stat_label(self) -> str:
        """The stat as the decision names it: `AP`, or `AP on source mpii-sample`."""
        return self.metric if self.source is None else f"{self.metric} on source {self.source}"

    def label(self) -> str:
        """`APl significantly_better`, `AP on source mpii-sample not_significantly_worse (margin 0.01)`."""
        return f"{self.stat_label} {self.rule}" + (f" (margin {self.margin:g})" if self.margin else "")


def stat_key(metric: str, source: str | None) -> str:
    """A stat's key in the flat stats the gate reads: the combined set's `AP`, a source's `mpii-sample/AP`."""
    return metric if source is None else f"{source}/{metric}"


# The default gate (PromotionConfig and configs/training.yaml; why: the comment there): no stat significantly
# worse, and the stat of the served use, large persons' AP, significantly better.
DEFAULT_GATE_RULES: tuple[GateRule, ...] = (
    GateRule(metric="APl", rule="significantly_better"),
    *(GateRule(metric=m, rule="not_significantly_worse") for m in ("AP", "AP50", "AP75", "APm")),
)


@dataclass(frozen=True)
class Baseline:
    """What the candidate is compared with, scored on the same split in the same run.

    Attributes:
        name: "production" or "pretrained".
        stats: its COCO stats by name (pycocotools' -1 for a size range without ground truth).
        differences: stat name -> candidate minus it, with its paired bootstrap interval; None when the
            evaluation was not bootstrapped (a stat without ground truth has no entry).
    """

    name: Reference
    stats: Mapping[str, float]
    differences: Mapping[str, Interval] | None = None


@dataclass(frozen=True)
class RuleCheck:
    """One rule applied.

    Attributes:
        metric / rule / margin: the rule (`GateRule`).
        candidate: the candidate's value of the stat.
        reference_value: the reference's value (None when there was nothing to compare with).
        difference: candidate - reference with its bootstrap interval (`Interval.to_dict`), when bootstrapped.
        passed: whether the rule holds.
        reason: one sentence: the numbers and the verdict.
        source: the source whose val split the stat was read on; None for the combined val set.
    """

    metric: str
    rule: str
    margin: float
    candidate: float
    reference_value: float | None
    difference: dict[str, float] | None
    passed: bool
    reason: str
    source: str | None = None


@dataclass(frozen=True)
class PromotionDecision:
    """The gate's verdict and the numbers behind it.

    The top-level stat fields (metric to margin) are the first rule's, as they were when the gate had one rule,
    so readers of older records keep working; `checks` holds every rule's.

    Attributes:
        promote: whether the candidate goes to production.
        metric: the first rule's stat ("APl").
        rule: the first rule (one of `PROMOTION_RULES`).
        candidate: the candidate's value of that stat.
        reference: what the rules were applied against: the current production version, or the pretrained
            checkpoint on the same split (for a first version, or when production scores below it; "none" when
            there was nothing to compare with).
        reference_value: that reference's value of the first rule's stat (None when there was nothing to compare
            with).
        difference: candidate - reference on that stat with its bootstrap interval (`Interval.to_dict`), when
            bootstrapped.
        margin: the first rule's tolerated loss (0 for rules other than not_significantly_worse).
        reason: one sentence for the log and the dashboard: the rule(s) that failed, or that all passed.
        checks: one `RuleCheck` (as a dict) per rule, in the config's order; empty when no rule was applied
            (production changed during the run).
        production_below_pretrained: the production version scores below the pretrained checkpoint on the first
            rule's stat, so the rules were applied against the pretrained checkpoint instead.
        production_value: the production version's value of the first rule's stat (None without one).
        test_only_refused: the rules passed, but the config is `promotion.test_only` and this is not a test store,
            so production was left alone.
        source: the source whose val split the first rule's stat was read on (None: the combined val set).
    """

    promote: bool
    metric: str
    rule: str
    candidate: float
    reference: Reference
    reference_value: float | None
    difference: dict[str, float] | None
    margin: float
    reason: str
    checks: list[dict[str, Any]] = field(default_factory=list)
    production_below_pretrained: bool = False
    production_value: float | None = None
    test_only_refused: bool = False
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def check_rule(rule: str, margin: float = 0.0) -> None:
    """Reject an unknown rule or a margin the rule does not use.

    Raises:
        VtposeError: naming the bad value and the allowed ones.
    """
    if rule not in PROMOTION_RULES:
        raise VtposeError(f"promotion rule {rule!r} is unknown; use one of {', '.join(PROMOTION_RULES)}.")
    problem = margin_problem(rule, margin)
    if problem:
        raise VtposeError(f"promotion {problem}.")


def _has_ground_truth(value: float | None) -> bool:
    # pycocotools reports -1 for a stat whose size range has no ground truth on the split.
    return value is not None and value >= 0


def apply_rule(gate_rule: GateRule, candidate: Mapping[str, float], baseline: Baseline) -> RuleCheck:
    """One rule, the candidate against `baseline` on the rule's stat.

    A stat without ground truth on this split (pycocotools' -1: no person in its size range) shows nothing:
    not_significantly_worse and no_worse pass on it, significantly_better fails.

    Raises:
        VtposeError: an interval rule and an evaluation that was not bootstrapped.
    """
    metric, rule, margin, source = gate_rule.metric, gate_rule.rule, gate_rule.margin, gate_rule.source
    key, name = gate_rule.stat_key, gate_rule.stat_label
    _check_scored([gate_rule], candidate)
    value, reference = candidate[key], baseline.stats.get(key)
    label = _REFERENCE_LABEL[baseline.name]
    if rule in INTERVAL_RULES and baseline.differences is None:
        raise VtposeError(
            f"promotion rule {name} {rule} needs the bootstrap interval of {name} against {label}; "
            "set evaluation.bootstrap_resamples above 0, or use rule no_worse."
        )
    difference = None if baseline.differences is None else baseline.differences.get(key)
    if not _has_ground_truth(value) or not _has_ground_truth(reference) or (rule in INTERVAL_RULES and not difference):
        passed = rule != "significantly_better"
        verdict = "passes: nothing shows it worse" if passed else "fails: nothing shows it better"
        reason = f"{name} has no ground truth in its size range on this split, so the rule {verdict} (rule {rule})"
        return RuleCheck(metric, rule, margin, value, reference, None, passed, reason, source)
    assert reference is not None  # _has_ground_truth
    if rule == "no_worse":
        passed = value >= reference
        verb = "is at least" if passed else "is below"
        reason = f"{name} {value:.4f} {verb} {label}'s {reference:.4f} (rule no_worse)"
        shown_difference = None if difference is None else difference.to_dict()
        return RuleCheck(metric, rule, margin, value, reference, shown_difference, passed, reason, source)
    assert difference is not None  # checked above
    shown = f"{name} {value:.4f} against {label}'s {reference:.4f}, difference {difference.format(True)}"
    if rule == "not_significantly_worse":
        passed = difference.high >= -margin
        verdict = "not significantly worse" if passed else "significantly worse"
        threshold = f"-{margin:.4f}" if margin else "0"
        bound = f"upper bound {difference.high:+.4f} {'is not below' if passed else 'is below'} {threshold}"
    else:
        passed = difference.low > 0
        verdict = "significantly better" if passed else "not significantly better"
        bound = f"lower bound {difference.low:+.4f} {'is above' if passed else 'is not above'} 0"
    reason = f"{shown}: {verdict} ({bound}; rule {rule})"
    return RuleCheck(metric, rule, margin, value, reference, difference.to_dict(), passed, reason, source)


def _check_scored(rules: Sequence[GateRule], candidate: Mapping[str, float]) -> None:
    """Every rule's stat was scored (a rule's `source:` names a source the evaluation scored).

    Raises:
        VtposeError: naming the rule and the sources that were scored.
    """
    for gate_rule in rules:
        if gate_rule.stat_key not in candidate:
            scored = sorted({key.split("/")[0] for key in candidate if "/" in key})
            raise VtposeError(
                f"promotion rule {gate_rule.label()}: the evaluation has no {gate_rule.stat_label} (sources scored: "
                f"{', '.join(scored) or 'none'}); name a source of data.sources, or drop `source:`."
            )


def _verdict(checks: Sequence[RuleCheck], label: str) -> tuple[bool, str]:
    """Whether every check passed, and the sentence that says which failed (or that all passed)."""
    failed = [c for c in checks if not c.passed]
    if len(checks) == 1:
        return not failed, checks[0].reason  # one rule: its own sentence says it all
    if failed:
        return False, f"{len(failed)} of {len(checks)} rules failed: " + "; ".join(c.reason for c in failed)
    rules = ", ".join(f"{stat_key(c.metric, c.source)} {c.rule}" for c in checks)
    return True, f"all {len(checks)} rules passed against {label} ({rules})"


def decide_promotion(
    candidate: Mapping[str, float],
    production: Baseline | None,
    pretrained: Baseline | None,
    rules: Sequence[GateRule],
) -> PromotionDecision:
    """Judge the candidate by every rule against production if there is one, else the pretrained checkpoint.

    Production scoring below the pretrained checkpoint on the first rule's stat (point estimates) is no
    reference: the rules are then applied against the pretrained checkpoint. With neither, a first version is
    promoted (there is nothing to protect).

    Args:
        candidate: the candidate's stats by name (`stat_key`: "AP" for the combined val set, "mpii-sample/AP" for
            a source's own val split).
        production: the current production version on the candidate's split, or None if nothing is in production.
        pretrained: the pretrained checkpoint on the same split, or None if it was not evaluated.
        rules: the rules, all of which must pass (the first one's stat fills the record's top-level fields).

    Raises:
        VtposeError: no rules, or an interval rule without the bootstrap intervals.
    """
    if not rules:
        raise VtposeError("promotion needs at least one rule; list them under promotion.rules.")
    first = rules[0].stat_key
    _check_scored(rules, candidate)
    value = candidate[first]
    production_value = production.stats.get(first) if production is not None else None
    below = (
        production is not None
        and pretrained is not None
        and _has_ground_truth(production_value)
        and _has_ground_truth(pretrained.stats.get(first))
        and production.stats[first] < pretrained.stats[first]
    )
    baseline = pretrained if below or production is None else production
    if baseline is None:
        checks = [
            RuleCheck(
                r.metric,
                r.rule,
                r.margin,
                candidate[r.stat_key],
                None,
                None,
                True,
                "no baseline to compare with",
                r.source,
            )
            for r in rules
        ]
        reason = f"nothing in production yet and no baseline to compare with: {first} {value:.4f} is promoted"
        return PromotionDecision(
            True, rules[0].metric, rules[0].rule, value, "none", None, None, rules[0].margin, reason,
            [asdict(c) for c in checks], source=rules[0].source,
        )  # fmt: skip
    label = _REFERENCE_LABEL[baseline.name]
    checks = [apply_rule(r, candidate, baseline) for r in rules]
    promote, verdict = _verdict(checks, label)
    if below:
        assert pretrained is not None and production_value is not None  # `below`
        prefix = (
            f"the production version scores below the pretrained checkpoint on this split ({rules[0].stat_label} "
            f"{production_value:.4f} against {pretrained.stats[first]:.4f}), so it protects nothing and the rules "
            "are applied against the pretrained checkpoint: "
        )
    else:
        prefix = "" if baseline.name == PRODUCTION else "nothing in production yet: "
    head = checks[0]
    return PromotionDecision(
        promote,
        head.metric,
        head.rule,
        head.candidate,
        baseline.name,
        head.reference_value,
        head.difference,
        head.margin,
        prefix + verdict,
        [asdict(c) for c in checks],
        production_below_pretrained=below,
        production_value=production_value,
        source=head.source,
    )


def decide_from_report(
    report: EvaluationReport, rules: Sequence[GateRule], production_sha256: str | None
) -> PromotionDecision:
    """The gate's decision for an evaluation report, given which weights are in production now.

    Args:
        report: the candidate's evaluation, holding the production version's and the pretrained checkpoint's
            scores on the same split and the paired bootstrap.
        rules: the gate's rules (`PromotionConfig.gate_rules()`).
        production_sha256: sha256 of the production version's weights now, None if nothing is in production.

    Returns:
        The decision. If production changed since the report scored it (another run promoted meanwhile), the
        candidate is not promoted, no rule is applied, and the reason says to run again.

    Raises:
        VtposeError: as `decide_promotion`.
    """
    if not rules:
        raise VtposeError("promotion needs at least one rule; list them under promotion.rules.")
    first = rules[0]
    candidate = _flat_stats(report, "stats")
    if production_sha256 is not None and production_sha256 != report.production_weights_sha256:
        scored = report.production_weights_sha256[:8] or "nothing"
        reason = (
            f"production changed during this run (weights {production_sha256[:8]} now, {scored} scored): "
            "not promoted; run the pipeline again to compare with the current production version"
        )
        _check_scored([first], candidate)
        return PromotionDecision(
            False, first.metric, first.rule, candidate[first.stat_key], "production", None, None, first.margin,
            reason, source=first.source,
        )  # fmt: skip

    def baseline(name: Reference, field_name: str) -> Baseline | None:
        stats = _flat_stats(report, field_name)
        if not getattr(report, field_name):
            return None
        return Baseline(name, stats, _flat_differences(report, name))

    production = baseline("production", "production_stats") if production_sha256 is not None else None
    return decide_promotion(candidate, production, baseline("pretrained", "baseline_stats"), rules)


def _flat_stats(report: EvaluationReport, field_name: str) -> dict[str, float]:
    """One model's stats on the combined val set and on each source's (`stat_key`), from a report's field."""
    stats: dict[str, float] = dict(getattr(report, field_name))
    for source, part in report.per_source.items():
        stats.update({stat_key(metric, source): value for metric, value in part[field_name].items()})
    return stats


def _flat_differences(report: EvaluationReport, reference: Reference) -> dict[str, Interval] | None:
    """Candidate minus `reference`, with paired intervals, on the combined set and each source (`stat_key`)."""
    bootstrap = report.bootstrap_result()
    if bootstrap is None:
        return None
    name = difference_name(CANDIDATE, reference)
    differences = dict(bootstrap.differences.get(name, {}))
    for source, part in report.per_source.items():
        if part.get("bootstrap"):
            own = BootstrapResult.from_dict(part["bootstrap"]).differences.get(name, {})
            differences.update({stat_key(metric, source): interval for metric, interval in own.items()})
    return differences


def in_test_store(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process's ZenML store is a test store (`ENV_TEST_STORE` is 1; tests/conftest.py sets it)."""
    return (os.environ if environ is None else environ).get(ENV_TEST_STORE) == "1"


def keep_test_config_out(decision: PromotionDecision, test_only: bool, test_store: bool) -> PromotionDecision:
    """A promotion by a `promotion.test_only` config, outside a test store, turned into a refusal.

    Args:
        decision: the rules' decision.
        test_only: the config's `promotion.test_only`.
        test_store: `in_test_store()`.

    Returns:
        `decision` unchanged, or, when it would promote a test config's model into a user's store, the same
        numbers with promote False and a reason that says how to promote for real.
    """
    if not (decision.promote and test_only and not test_store):
        return decision
    reason = (
        f"{decision.reason}; but this config sets promotion.test_only: true (lenient rules for tests) and this "
        f"is not a test store ({ENV_TEST_STORE} is not 1), so production is left alone: to promote for real, "
        "run with configs/training.yaml or drop promotion.test_only from the config"
    )
    return replace(decision, promote=False, reason=reason, test_only_refused=True)
