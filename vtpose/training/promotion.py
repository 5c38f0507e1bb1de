"""The quality gate: does a new model version deserve the `production` stage?

The candidate is compared with the current production version scored on the candidate's own val split in the
same run (or, for a first version, with the pretrained checkpoint on that split), never with a number recorded
on other data. How it is compared is the config's `promotion.rule`:

- `no_worse`: the candidate's value is at least the reference's (point estimates; ties promote).
- `not_significantly_worse`: the upper bound of the paired bootstrap interval of candidate - reference is not
  below `-margin`: promoted unless the data show it worse by more than the margin.
- `significantly_better`: the lower bound of that interval is above 0: promoted only if the data show it better.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

from vtpose.errors import VtposeError
from vtpose.training.bootstrap import CANDIDATE, PRETRAINED, PRODUCTION, Interval

if TYPE_CHECKING:
    from vtpose.training.reports import EvaluationReport

Reference = Literal["production", "pretrained", "none"]
PromotionRule = Literal["no_worse", "not_significantly_worse", "significantly_better"]
PROMOTION_RULES: tuple[str, ...] = get_args(PromotionRule)
# The rules that read the paired bootstrap interval of the difference.
INTERVAL_RULES: tuple[str, ...] = ("not_significantly_worse", "significantly_better")

_REFERENCE_LABEL = {PRODUCTION: "the production version", PRETRAINED: "the pretrained checkpoint"}


@dataclass(frozen=True)
class Baseline:
    """What the candidate is compared with, scored on the same split in the same run.

    Attributes:
        name: "production" or "pretrained".
        value: its value of the compared stat.
        difference: candidate minus it, with its paired bootstrap interval (None when not bootstrapped).
    """

    name: Reference
    value: float
    difference: Interval | None = None


@dataclass(frozen=True)
class PromotionDecision:
    """The gate's verdict and the numbers behind it.

    Attributes:
        promote: whether the candidate goes to production.
        metric: the compared stat ("AP").
        rule: the rule applied (one of `PROMOTION_RULES`).
        candidate: the candidate's value.
        reference: what it was compared against: the current production version, or, for a first version,
            the pretrained checkpoint on the same split ("none" when there was nothing to compare with).
        reference_value: that reference's value (None when there was nothing to compare with).
        difference: candidate - reference with its bootstrap interval (`Interval.to_dict`), when bootstrapped.
        margin: the tolerated loss of `not_significantly_worse` (0 for the other rules).
        reason: one sentence for the log and the dashboard.
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
    if margin < 0:
        raise VtposeError(f"promotion margin {margin} is negative; it is the tolerated loss, 0 or more.")
    if margin and rule != "not_significantly_worse":
        raise VtposeError(f"promotion margin {margin} is used only by rule not_significantly_worse, not {rule}.")


def decide_promotion(
    metric: str,
    candidate: float,
    production: Baseline | None,
    pretrained: Baseline | None,
    rule: PromotionRule = "no_worse",
    margin: float = 0.0,
) -> PromotionDecision:
    """Judge the candidate against production if there is one, else against the pretrained checkpoint.

    With neither, a first version is promoted (there is nothing to protect).

    Args:
        metric: the stat's name, for the record.
        candidate: the candidate's value.
        production: the current production version on the candidate's split, or None if nothing is in production.
        pretrained: the pretrained checkpoint on the same split, or None if it was not evaluated.
        rule: how to compare (see the module docstring).
        margin: the loss `not_significantly_worse` tolerates (in units of the stat: 0.01 is one AP point).

    Raises:
        VtposeError: a bad rule or margin, or an interval rule without the difference's bootstrap interval.
    """
    check_rule(rule, margin)
    baseline = production if production is not None else pretrained
    if baseline is None:
        reason = f"nothing in production yet and no baseline to compare with: {metric} {candidate:.4f} is promoted"
        return PromotionDecision(True, metric, rule, candidate, "none", None, None, margin, reason)
    label = _REFERENCE_LABEL[baseline.name]
    prefix = "" if baseline.name == PRODUCTION else "nothing in production yet: "
    difference = baseline.difference
    if rule == "no_worse":
        promote = candidate >= baseline.value
        verb = "is at least" if promote else "is below"
        reason = f"{prefix}{metric} {candidate:.4f} {verb} {label}'s {baseline.value:.4f} (rule no_worse)"
    elif difference is None:
        raise VtposeError(
            f"promotion rule {rule} needs the bootstrap interval of {metric} against {label}; "
            "set evaluation.bootstrap_resamples above 0, or use rule no_worse."
        )
    else:
        shown = f"{metric} {candidate:.4f} against {label}'s {baseline.value:.4f}, difference {difference.format(True)}"
        if rule == "not_significantly_worse":
            promote = difference.high >= -margin
            verdict = "not significantly worse" if promote else "significantly worse"
            bound = f"upper bound {difference.high:+.4f} {'is not below' if promote else 'is below'} -{margin:.4f}"
        else:
            promote = difference.low > 0
            verdict = "significantly better" if promote else "not significantly better"
            bound = f"lower bound {difference.low:+.4f} {'is above' if promote else 'is not above'} 0"
        reason = f"{prefix}{shown}: {verdict} ({bound}; rule {rule})"
    return PromotionDecision(
        promote,
        metric,
        rule,
        candidate,
        baseline.name,
        baseline.value,
        None if difference is None else difference.to_dict(),
        margin,
        reason,
    )


def decide_from_report(
    report: EvaluationReport,
    metric: str,
    rule: PromotionRule,
    margin: float,
    production_sha256: str | None,
) -> PromotionDecision:
    """The gate's decision for an evaluation report, given which weights are in production now.

    Args:
        report: the candidate's evaluation, holding the production version's and the pretrained checkpoint's
            scores on the same split and the paired bootstrap.
        metric: the compared stat.
        rule: how to compare.
        margin: the loss `not_significantly_worse` tolerates.
        production_sha256: sha256 of the production version's weights now, None if nothing is in production.

    Returns:
        The decision. If production changed since the report scored it (another run promoted meanwhile), the
        candidate is not promoted and the reason says to run again.
    """
    candidate = report.stats[metric]
    bootstrap = report.bootstrap_result()
    if production_sha256 is not None and production_sha256 != report.production_weights_sha256:
        scored = report.production_weights_sha256[:8] or "nothing"
        reason = (
            f"production changed during this run (weights {production_sha256[:8]} now, {scored} scored): "
            "not promoted; run the pipeline again to compare with the current production version"
        )
        return PromotionDecision(False, metric, rule, candidate, "production", None, None, margin, reason)

    def baseline(name: Reference, stats: dict[str, float]) -> Baseline | None:
        if metric not in stats:
            return None
        return Baseline(name, stats[metric], bootstrap.difference(CANDIDATE, name, metric) if bootstrap else None)

    production = baseline("production", report.production_stats) if production_sha256 is not None else None
    return decide_promotion(
        metric, candidate, production, baseline("pretrained", report.baseline_stats), rule=rule, margin=margin
    )
