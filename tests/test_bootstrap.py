"""The paired bootstrap over images: pycocotools' own per-image results resampled, checked against pycocotools
run from scratch on the resampled data set."""

from __future__ import annotations

import contextlib
import copy
import io
from typing import Any

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from vtpose.errors import VtposeError
from vtpose.keypoints import COCO_STAT_NAMES
from vtpose.paths import COCO_MINI_DIR
from vtpose.training.bootstrap import (
    CANDIDATE,
    PRETRAINED,
    BootstrapResult,
    Interval,
    difference_name,
    paired_bootstrap,
    resampled_stats,
)
from vtpose.training.evaluate import bootstrap_detections, load_ground_truth, score_keypoints

VAL_JSON = COCO_MINI_DIR / "annotations" / "person_keypoints_val2017.json"


def _shifted(coco: Any, dx: float, dy: float, every: int = 1) -> list[dict[str, Any]]:
    """The ground truth as predictions, each labelled keypoint moved by (dx, dy) on every `every`-th person."""
    detections = []
    for n, annotation in enumerate(coco.dataset["annotations"]):
        if annotation.get("iscrowd") or annotation["num_keypoints"] == 0:
            continue
        keypoints = list(annotation["keypoints"])
        if n % every == 0:
            for i in range(0, len(keypoints), 3):
                if keypoints[i + 2] > 0:
                    keypoints[i] += dx
                    keypoints[i + 1] += dy
        detections.append({"image_id": annotation["image_id"], "category_id": 1, "keypoints": keypoints, "score": 1.0})
    return detections


@pytest.fixture(scope="module")
def coco() -> Any:
    return load_ground_truth(VAL_JSON)


def _from_scratch(coco: Any, detections: list[dict[str, Any]], image_ids: list[int]) -> np.ndarray:
    """pycocotools run on a data set that really holds `image_ids` (repeats as new images): no code of ours."""
    images = {image["id"]: image for image in coco.dataset["images"]}
    dataset: dict[str, Any] = {"images": [], "annotations": [], "categories": coco.dataset["categories"]}
    results = []
    for new_id, old_id in enumerate(image_ids, start=1):
        dataset["images"].append({**images[old_id], "id": new_id})
        for annotation in coco.imgToAnns[old_id]:
            dataset["annotations"].append({**annotation, "image_id": new_id, "id": len(dataset["annotations"]) + 1})
        results += [{**copy.deepcopy(d), "image_id": new_id} for d in detections if d["image_id"] == old_id]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = dataset
        gt.createIndex()
        evaluator = COCOeval(gt, gt.loadRes(results), "keypoints")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = np.asarray(evaluator.stats, dtype=np.float64)
    stats[stats < 0] = np.nan
    return stats


def test_all_images_once_is_pycocotools_own_result(coco: Any) -> None:
    stats, evaluator = score_keypoints(coco, _shifted(coco, 4.0, -2.0))
    assert resampled_stats(evaluator, np.arange(len(coco.getImgIds()))).tolist() == list(stats.values())


def test_a_resample_equals_pycocotools_on_the_resampled_data_set(coco: Any) -> None:
    detections = _shifted(coco, 6.0, -3.0, every=2)
    _, evaluator = score_keypoints(coco, detections)
    image_ids = sorted(coco.getImgIds())
    positions = np.random.default_rng(7).integers(0, len(image_ids), size=len(image_ids))
    assert len(set(positions.tolist())) < len(positions)  # repeats, the point of the check
    expected = _from_scratch(coco, detections, [image_ids[p] for p in positions])
    np.testing.assert_allclose(resampled_stats(evaluator, positions), expected, rtol=0, atol=1e-12)


def test_paired_differences_and_intervals(coco: Any) -> None:
    better, worse = _shifted(coco, 3.0, -1.0), _shifted(coco, 9.0, -5.0)
    detections = {CANDIDATE: better, PRETRAINED: worse}
    result = bootstrap_detections(coco, detections, resamples=60, seed=3, differences=[(CANDIDATE, PRETRAINED)])
    full_better, _ = score_keypoints(coco, better)
    full_worse, _ = score_keypoints(coco, worse)
    assert result.resamples == 60 and result.seed == 3 and result.num_images == len(coco.getImgIds())
    for name in ("AP", "AR"):
        own, other = result.intervals[CANDIDATE][name], result.intervals[PRETRAINED][name]
        assert own.estimate == full_better[name] and other.estimate == full_worse[name]
        assert own.low <= own.estimate <= own.high and own.low < own.high
        difference = result.difference(CANDIDATE, PRETRAINED, name)
        assert difference is not None
        assert difference.estimate == pytest.approx(full_better[name] - full_worse[name], abs=1e-12)
        # Paired: the same images in both, so the difference is surely positive and its interval is narrower than
        # either model's own (which mostly measures which images were drawn).
        assert 0 < difference.low < difference.estimate < difference.high
        assert difference.high - difference.low < min(own.high - own.low, other.high - other.low)
    # A fixed seed reproduces every number; another seed draws other images.
    again = bootstrap_detections(coco, detections, resamples=60, seed=3, differences=[(CANDIDATE, PRETRAINED)])
    assert again.to_dict() == result.to_dict()
    other_seed = bootstrap_detections(coco, detections, resamples=60, seed=4, differences=[(CANDIDATE, PRETRAINED)])
    assert other_seed.intervals[CANDIDATE]["AP"] != result.intervals[CANDIDATE]["AP"]
    assert BootstrapResult.from_dict(result.to_dict()) == result


def test_a_model_against_itself_differs_by_exactly_zero(coco: Any) -> None:
    _, evaluator = score_keypoints(coco, _shifted(coco, 5.0, 5.0))
    result = paired_bootstrap({"a": evaluator, "b": evaluator}, resamples=20, seed=0, differences=[("a", "b")])
    for name in COCO_STAT_NAMES:
        assert result.differences[difference_name("a", "b")][name] == Interval(0.0, 0.0, 0.0)


def test_no_detections_is_zero_and_other_images_are_refused(coco: Any) -> None:
    _, evaluator = score_keypoints(coco, _shifted(coco, 2.0, 2.0))
    result = paired_bootstrap({"model": evaluator, "empty": None}, resamples=10, differences=[("model", "empty")])
    assert result.intervals["empty"]["AP"] == Interval(0.0, 0.0, 0.0)
    assert result.difference("model", "empty", "AP") == result.intervals["model"]["AP"]
    fewer = load_ground_truth(VAL_JSON)
    fewer.dataset["images"] = fewer.dataset["images"][:50]
    with contextlib.redirect_stdout(io.StringIO()):
        fewer.createIndex()
    kept = set(fewer.getImgIds())
    _, partial = score_keypoints(fewer, [d for d in _shifted(fewer, 2.0, 2.0) if d["image_id"] in kept])
    with pytest.raises(VtposeError, match="other images"):
        paired_bootstrap({"all": evaluator, "some": partial}, resamples=5)
    with pytest.raises(VtposeError, match="no model 'nope'"):
        paired_bootstrap({"all": evaluator}, resamples=5, differences=[("all", "nope")])
    with pytest.raises(VtposeError, match="at least 1"):
        paired_bootstrap({"all": evaluator}, resamples=0)
