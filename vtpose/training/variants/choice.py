"""The choice rule: which variant the Bento serves, from every variant's AP and latency.

`choose_variant` is pure: scores in, choice out, so the rule is tested without exporting anything. The variant
names themselves are `vtpose.backends.VARIANTS`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from vtpose.backends import VARIANTS

# The variant every other is compared with: the trained weights themselves.
REFERENCE_VARIANT = "pytorch"
# Variant names, in the order they are exported and shown: "<backend>" or "<backend>-<precision>".
VariantName = Literal[VARIANTS]  # type: ignore[valid-type]
# `package.backend`: "auto" lets the rule choose; a variant name forces it.
BackendChoice = Literal["auto", VariantName]
AUTO = "auto"
DEFAULT_MAX_AP_DROP = 0.01
# Two APs closer than this are equal (pycocotools rounds nothing; float sums of the same numbers may differ).
_AP_EPS = 1e-9


def variant_backend(variant: str) -> tuple[str, str]:
    """The backend and precision of a variant name: "openvino-int8" -> ("openvino", "int8"), "onnx" -> ("onnx",
    "fp32").

    Raises:
        ValueError: not one of `VARIANTS`.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown model variant {variant!r}; use one of {', '.join(VARIANTS)}")
    backend, _, precision = variant.partition("-")
    return backend, precision or "fp32"


@dataclass(frozen=True)
class VariantScore:
    """One variant's measured accuracy and speed.

    Attributes:
        name: one of `VARIANTS`.
        ap: COCO keypoint AP on the val split (pycocotools), in [0, 1].
        latency_ms: median single-image latency on this machine, milliseconds.
    """

    name: str
    ap: float
    latency_ms: float


@dataclass(frozen=True)
class VariantChoice:
    """What `choose_variant` decided, and why.

    Attributes:
        chosen: the variant the Bento serves.
        reason: one sentence a person reads in the dashboard and the run log.
        forced: a user chose it (`package.backend`), not the rule.
        rule_choice: what the rule alone picks (equal to `chosen` unless forced).
        reference: the variant the others are compared with ("pytorch", the trained `.pt`).
        reference_ap: its AP.
        max_ap_drop: the AP a variant may lose against the reference and still be eligible.
        eligible: the variants within `max_ap_drop` of the reference, fastest first.
    """

    chosen: str
    reason: str
    forced: bool
    rule_choice: str
    reference: str
    reference_ap: float
    max_ap_drop: float
    eligible: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        record = asdict(self)
        record["eligible"] = list(self.eligible)
        return record


def choose_variant(
    scores: Sequence[VariantScore],
    max_ap_drop: float = DEFAULT_MAX_AP_DROP,
    forced: str | None = None,
    reference: str = REFERENCE_VARIANT,
) -> VariantChoice:
    """The fastest variant whose AP is within `max_ap_drop` of the reference's, unless one is forced.

    Eligible: `ap >= reference_ap - max_ap_drop` (the reference itself always is). Among the eligible the lowest
    latency wins; equal latencies go to the higher AP, then to the earlier in `scores`. A forced variant is served
    whatever the rule says; the reason then names what the rule would have chosen.

    Args:
        scores: one per variant, names unique; must include `reference`.
        max_ap_drop: AP (0-1 scale) a variant may lose against the reference; 0 keeps only variants at least as
            accurate.
        forced: a variant name to serve regardless ("auto" or None: let the rule choose).
        reference: the variant others are compared with.

    Returns:
        The choice, with the eligible variants and a one-sentence reason.

    Raises:
        ValueError: no reference score, duplicate names, a forced variant that was not scored, a negative or
            non-finite `max_ap_drop`, or a non-finite AP or latency.
    """
    if not math.isfinite(max_ap_drop) or max_ap_drop < 0:
        raise ValueError(f"max_ap_drop={max_ap_drop} must be a finite number >= 0 (AP on the 0-1 scale)")
    names = [score.name for score in scores]
    if len(set(names)) != len(names):
        raise ValueError(f"variant names must be unique, got {names}")
    for score in scores:
        if not (math.isfinite(score.ap) and math.isfinite(score.latency_ms)) or score.latency_ms < 0:
            raise ValueError(f"variant {score.name!r} has AP {score.ap} and latency {score.latency_ms} ms; both must "
                             "be finite numbers, the latency >= 0")  # fmt: skip
    by_name = {score.name: score for score in scores}
    if reference not in by_name:
        raise ValueError(f"no score for the reference variant {reference!r}; scored: {', '.join(names) or 'none'}")
    forced = None if forced in (None, AUTO) else forced
    if forced is not None and forced not in by_name:
        raise ValueError(
            f"package.backend={forced!r} was not exported and scored in this run (scored: {', '.join(names)}); "
            "enable its export or choose another"
        )
    ref = by_name[reference]
    floor = ref.ap - max_ap_drop - _AP_EPS
    order = {name: i for i, name in enumerate(names)}
    eligible = sorted(
        (s for s in scores if s.ap >= floor or s.name == reference),
        key=lambda s: (s.latency_ms, -s.ap, order[s.name]),
    )
    best = eligible[0]
    faster_but_worse = [s for s in scores if s.latency_ms < best.latency_ms and s not in eligible]
    rule_reason = (
        f"{best.name} is the fastest ({best.latency_ms:.1f} ms) of the variants within {max_ap_drop:.3f} AP of "
        f"{reference} (AP {ref.ap:.4f}); its AP is {best.ap:.4f}"
    )
    if faster_but_worse:
        rule_reason += "; faster but too inaccurate: " + ", ".join(
            f"{s.name} ({s.latency_ms:.1f} ms, AP {s.ap:.4f}, {ref.ap - s.ap:+.4f} below)"
            for s in sorted(faster_but_worse, key=lambda s: s.latency_ms)
        )
    if forced is None:
        chosen, reason = best.name, rule_reason
    else:
        pick = by_name[forced]
        within = pick in eligible
        chosen = forced
        reason = (
            f"{forced} forced by package.backend (AP {pick.ap:.4f}, {pick.latency_ms:.1f} ms, "
            f"{'within' if within else 'NOT within'} {max_ap_drop:.3f} AP of {reference}); "
            f"the rule would serve {best.name}"
        )
    return VariantChoice(
        chosen=chosen,
        reason=reason,
        forced=forced is not None,
        rule_choice=best.name,
        reference=reference,
        reference_ap=ref.ap,
        max_ap_drop=max_ap_drop,
        eligible=tuple(s.name for s in eligible),
    )
