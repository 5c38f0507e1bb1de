"""pycocotools OKS evaluation: ground truth in, exact numbers out (mmpose's way of testing CocoMetric)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pycocotools.cocoeval import COCOeval

from vtpose.cli import main
from vtpose.evaluate import load_ground_truth, score_keypoints
from vtpose.keypoints import COCO_STAT_NAMES
from vtpose.paths import COCO_MINI_DIR, PRETRAINED_WEIGHTS

VAL_JSON = COCO_MINI_DIR / "annotations" / "person_keypoints_val2017.json"
VAL_IMAGES = COCO_MINI_DIR / "images" / "val2017"
# pycocotools 2.0.11 on the val2017 sample with every labelled keypoint moved by (+4, -2) px (recorded once).
SHIFTED_STATS = {
    "AP": 0.607337, "AP50": 0.940594, "AP75": 0.629848, "APm": 0.467825, "APl": 0.783485,
    "AR": 0.68, "AR50": 0.947368, "AR75": 0.705263, "ARm": 0.469231, "ARl": 0.934884,
}  # fmt: skip


def _ground_truth_as_predictions(coco: Any, dx: float = 0.0, dy: float = 0.0) -> list[dict[str, Any]]:
    detections = []
    for annotation in coco.dataset["annotations"]:
        if annotation.get("iscrowd") or annotation["num_keypoints"] == 0:
            continue  # COCOeval ignores these ground truths; predicting them would count as false positives
        keypoints = list(annotation["keypoints"])
        for i in range(0, len(keypoints), 3):
            if keypoints[i + 2] > 0:
                keypoints[i] += dx
                keypoints[i + 1] += dy
        detections.append({"image_id": annotation["image_id"], "category_id": 1, "keypoints": keypoints, "score": 1.0})
    return detections


def test_ground_truth_fed_back_scores_one_on_every_stat() -> None:
    coco = load_ground_truth(VAL_JSON)
    stats, _ = score_keypoints(coco, _ground_truth_as_predictions(coco))
    assert list(stats) == list(COCO_STAT_NAMES)
    assert stats == pytest.approx(dict.fromkeys(COCO_STAT_NAMES, 1.0))


def test_shifted_predictions_give_pycocotools_numbers() -> None:
    coco = load_ground_truth(VAL_JSON)
    detections = _ground_truth_as_predictions(coco, dx=4.0, dy=-2.0)
    stats, _ = score_keypoints(coco, detections)
    assert stats == pytest.approx(SHIFTED_STATS, abs=1e-6)
    # The same numbers straight from pycocotools, with nothing of ours in between.
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator = COCOeval(coco, coco.loadRes(detections), "keypoints")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    assert list(stats.values()) == pytest.approx(list(evaluator.stats), abs=1e-12)


def test_no_detections_scores_zero() -> None:
    stats, _ = score_keypoints(load_ground_truth(VAL_JSON), [])
    assert stats == dict.fromkeys(COCO_STAT_NAMES, 0.0)


def test_broken_annotations_json_is_one_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "person_keypoints_val2017.json"
    broken.write_text(VAL_JSON.read_text()[:5000])
    result = CliRunner().invoke(
        main, ["evaluate", str(PRETRAINED_WEIGHTS), "--annotations", str(broken), "--images", str(VAL_IMAGES)]
    )
    assert result.exit_code == 2
    assert str(broken) in result.output and "not valid JSON" in result.output
    assert "Traceback" not in result.output


def test_cli_evaluate_json_scores_the_pretrained_checkpoint() -> None:
    result = CliRunner().invoke(
        main,
        ["evaluate", str(PRETRAINED_WEIGHTS), "--annotations", str(VAL_JSON), "--images", str(VAL_IMAGES), "--json"],
    )
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output.strip().splitlines()[-1])
    assert list(stats) == list(COCO_STAT_NAMES)
    # Ultralytics publishes 50.0 AP on all of COCO val2017; this 108-image sample scores close to it.
    assert 0.45 <= stats["AP"] <= 0.56
