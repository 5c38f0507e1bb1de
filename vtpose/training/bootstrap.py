"""Paired bootstrap over images on pycocotools' own per-image results: intervals for each model's COCO stats and
for the differences between models scored on the same split.

`COCOeval.evaluate()` matches detections to ground truth image by image and area range, into `evalImgs`;
`accumulate()` builds the precision-recall curves from those records and `summarize()` reads the 10 stats off
them. One bootstrap resample draws the split's images with replacement, lays their `evalImgs` records out as
pycocotools would for that resampled set (an image drawn twice counts as two images), and calls pycocotools'
own `accumulate()` and `summarize()` on it: the matching is never redone, nor re-implemented. The resampling is
paired: every model is resampled with the same draw of images in each round, so the interval of a difference
reflects how the models differ on the same images (much narrower than either model's own interval).

Intervals are percentile intervals (the 2.5th and 97.5th percentiles of the resampled values for 95%); the
estimate is the full split's value, pycocotools' number.
"""

from __future__ import annotations

import contextlib
import copy
import io
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from vtpose.errors import VtposeError
from vtpose.keypoints import COCO_STAT_NAMES

CONFIDENCE = 0.95
DEFAULT_RESAMPLES = 1000
# The gate's interval rules need at least this many resamples: below it the 2.5th percentile rests on a handful.
MIN_GATE_RESAMPLES = 200
METHOD = "paired bootstrap over images: pycocotools evalImgs resampled, COCOeval.accumulate + summarize"

# The models an evaluation compares, by role.
CANDIDATE = "candidate"
PRODUCTION = "production"
PRETRAINED = "pretrained"


@dataclass(frozen=True)
class Interval:
    """A stat's value on the full split and its bootstrap interval.

    Attributes:
        estimate: the value on the full split (pycocotools' number, or the difference of two of them).
        low: the interval's lower bound.
        high: the interval's upper bound.
    """

    estimate: float
    low: float
    high: float

    def to_dict(self) -> dict[str, float]:
        """JSON-ready form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Interval:
        """Read `to_dict`'s form back."""
        return cls(float(data["estimate"]), float(data["low"]), float(data["high"]))

    def format(self, signed: bool = False) -> str:
        """`0.5071 [0.4441, 0.5993]`, or with `signed` `+0.0010 [-0.0050, +0.0080]` (for differences)."""
        spec = "+.4f" if signed else ".4f"
        return f"{self.estimate:{spec}} [{self.low:{spec}}, {self.high:{spec}}]"


def difference_name(first: str, second: str) -> str:
    """The key of a paired difference: `"candidate - production"`."""
    return f"{first} - {second}"


@dataclass
class BootstrapResult:
    """Intervals for every model's stats and for the requested paired differences.

    Attributes:
        resamples: bootstrap rounds.
        seed: the random generator's seed (numpy `default_rng`), from the config.
        confidence: the intervals' coverage (0.95).
        num_images: images in the split, drawn with replacement `num_images` at a time.
        intervals: model role -> stat name -> interval.
        differences: `difference_name(a, b)` -> stat name -> interval of a's stat minus b's.
        method: how the intervals were made, for the record.
    """

    resamples: int
    seed: int
    confidence: float
    num_images: int
    intervals: dict[str, dict[str, Interval]] = field(default_factory=dict)
    differences: dict[str, dict[str, Interval]] = field(default_factory=dict)
    method: str = METHOD

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what an evaluation report stores)."""
        return {
            "method": self.method,
            "resamples": self.resamples,
            "seed": self.seed,
            "confidence": self.confidence,
            "num_images": self.num_images,
            "intervals": {m: {s: i.to_dict() for s, i in stats.items()} for m, stats in self.intervals.items()},
            "differences": {d: {s: i.to_dict() for s, i in stats.items()} for d, stats in self.differences.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BootstrapResult:
        """Read `to_dict`'s form back."""

        def intervals(block: Mapping[str, Any]) -> dict[str, dict[str, Interval]]:
            return {k: {s: Interval.from_dict(i) for s, i in stats.items()} for k, stats in block.items()}

        return cls(
            resamples=int(data["resamples"]),
            seed=int(data["seed"]),
            confidence=float(data["confidence"]),
            num_images=int(data["num_images"]),
            intervals=intervals(data.get("intervals", {})),
            differences=intervals(data.get("differences", {})),
            method=str(data.get("method", METHOD)),
        )

    def difference(self, first: str, second: str, stat: str) -> Interval | None:
        """The interval of `first`'s stat minus `second`'s, or None if it was not computed."""
        return self.differences.get(difference_name(first, second), {}).get(stat)


def _image_ids(evaluator: Any) -> list[int]:
    return list(evaluator._paramsEval.imgIds)


def resampled_stats(evaluator: Any, positions: np.ndarray) -> np.ndarray:
    """pycocotools' 10 keypoint stats on a resampled set of the evaluated images.

    Args:
        evaluator: an evaluated `COCOeval` (`evaluate()` done; see `vtpose.training.evaluate.score_keypoints`), or
            None for a model with no detections at all (every stat 0, as `score_keypoints` scores it).
        positions: (M,) int, indices into the evaluated image list (`params.imgIds`), repeats allowed.

    Returns:
        (10,) float64 in `COCO_STAT_NAMES` order; NaN for a stat whose area range has no ground truth in the
        resampled set (pycocotools' -1).
    """
    if evaluator is None:
        return np.zeros(len(COCO_STAT_NAMES))
    evaluated = evaluator._paramsEval
    num_images, num_areas = len(evaluated.imgIds), len(evaluated.areaRng)
    num_cats = len(evaluated.catIds) if evaluated.useCats else 1
    resampled = copy.copy(evaluator)
    # evalImgs is laid out category-major, then area range, then image (see COCOeval.evaluate); the resampled
    # set gets the same layout over its own image positions, which stand in as its image ids.
    resampled.evalImgs = [
        evaluator.evalImgs[(k * num_areas + a) * num_images + int(i)]
        for k in range(num_cats)
        for a in range(num_areas)
        for i in positions
    ]
    params = copy.deepcopy(evaluated)
    params.imgIds = list(range(len(positions)))
    resampled.params = params
    resampled._paramsEval = copy.deepcopy(params)
    resampled.eval = {}
    resampled.stats = []
    with contextlib.redirect_stdout(io.StringIO()):
        resampled.accumulate()
        resampled.summarize()
    stats = np.asarray(resampled.stats, dtype=np.float64)
    stats[stats < 0] = np.nan
    return stats


def paired_bootstrap(
    evaluators: Mapping[str, Any],
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    differences: Sequence[tuple[str, str]] = (),
    confidence: float = CONFIDENCE,
) -> BootstrapResult:
    """Bootstrap intervals for several models scored on the same ground truth, resampled together.

    Args:
        evaluators: model role -> its evaluated `COCOeval` on the split (None: no detections, every stat 0).
            All must have evaluated the same images.
        resamples: bootstrap rounds (each draws `num_images` images with replacement).
        seed: seed of numpy's `default_rng`; the same seed and inputs give the same intervals.
        differences: (a, b) pairs of roles whose difference a - b gets an interval.
        confidence: the intervals' coverage.

    Returns:
        The intervals; the estimates are the full split's values.

    Raises:
        VtposeError: no evaluated model, models evaluated on different images, an unknown role in
            `differences`, or a resample count below 1.
    """
    if resamples < 1:
        raise VtposeError(f"bootstrap resamples must be at least 1, got {resamples} (evaluation.bootstrap_resamples).")
    evaluated = {role: e for role, e in evaluators.items() if e is not None}
    if not evaluated:
        raise VtposeError("paired bootstrap: no model has detections to resample; nothing to compare.")
    reference_role, reference = next(iter(evaluated.items()))
    image_ids = _image_ids(reference)
    for role, evaluator in evaluated.items():
        if _image_ids(evaluator) != image_ids:
            raise VtposeError(
                f"paired bootstrap: {role!r} was evaluated on other images than {reference_role!r}; "
                "score every model on the same ground truth."
            )
    for pair in differences:
        for role in pair:
            if role not in evaluators:
                raise VtposeError(f"paired bootstrap: no model {role!r} to difference; have {', '.join(evaluators)}.")
    num_images = len(image_ids)
    full = {role: resampled_stats(e, np.arange(num_images)) for role, e in evaluators.items()}
    rng = np.random.default_rng(seed)
    draws = {role: np.empty((resamples, len(COCO_STAT_NAMES))) for role in evaluators}
    for r in range(resamples):
        positions = rng.integers(0, num_images, size=num_images)
        for role, evaluator in evaluators.items():
            draws[role][r] = resampled_stats(evaluator, positions)
    tail = 100 * (1 - confidence) / 2

    def intervals(estimates: np.ndarray, values: np.ndarray) -> dict[str, Interval]:
        out = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column: checked below
            bounds = np.nanpercentile(values, [tail, 100 - tail], axis=0)
        for j, name in enumerate(COCO_STAT_NAMES):
            # A stat with no ground truth in its area range (pycocotools' -1) has no interval.
            if np.isfinite([estimates[j], bounds[0, j], bounds[1, j]]).all():
                out[name] = Interval(float(estimates[j]), float(bounds[0, j]), float(bounds[1, j]))
        return out

    return BootstrapResult(
        resamples=resamples,
        seed=seed,
        confidence=confidence,
        num_images=num_images,
        intervals={role: intervals(full[role], draws[role]) for role in evaluators},
        differences={difference_name(a, b): intervals(full[a] - full[b], draws[a] - draws[b]) for a, b in differences},
    )
