"""The quality gate: does a new model version deserve the `production` stage?"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Reference = Literal["production", "pretrained", "none"]


@dataclass(frozen=True)
class PromotionDecision:
    """The gate's verdict and the numbers behind it.

    Attributes:
        promote: whether the candidate goes to production.
        metric: the compared stat ("AP").
        candidate: the candidate's value.
        reference: what it was compared against: the current production version, or, for a first version,
            the pretrained checkpoint on the same split.
        reference_value: that reference's value (None when there was nothing to compare with).
        reason: one sentence for the log and the dashboard.
    """

    promote: bool
    metric: str
    candidate: float
    reference: Reference
    reference_value: float | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def decide_promotion(
    metric: str, candidate: float, production: float | None, pretrained: float | None
) -> PromotionDecision:
    """Promote when the candidate is at least as good as production; a first version when it is no worse
    than the pretrained checkpoint (or when there is no baseline at all).

    Args:
        metric: the stat's name, for the record.
        candidate: the new version's value.
        production: the current production version's value, or None if nothing is in production.
        pretrained: the pretrained checkpoint's value on the same split, or None if it was not evaluated.
    """
    if production is not None:
        promote = candidate >= production
        verb = "is at least" if promote else "is below"
        reason = f"{metric} {candidate:.4f} {verb} the production version's {production:.4f}"
        return PromotionDecision(promote, metric, candidate, "production", production, reason)
    if pretrained is not None:
        promote = candidate >= pretrained
        verb = "is no worse than" if promote else "is worse than"
        reason = (
            f"nothing in production yet: {metric} {candidate:.4f} {verb} the pretrained checkpoint's {pretrained:.4f}"
        )
        return PromotionDecision(promote, metric, candidate, "pretrained", pretrained, reason)
    reason = f"nothing in production yet and no baseline to compare with: {metric} {candidate:.4f} is promoted"
    return PromotionDecision(True, metric, candidate, "none", None, reason)
