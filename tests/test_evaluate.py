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

from vtpose.cli.main import main
from vtpose.keypoints import COCO_STAT_NAMES
from vtpose.paths import COCO_MINI_DIR, PRETRAINED_WEIGHTS
from vtpose.training.evaluate import load_ground_truth, score_keypoints

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


def test_report_scores_production_beside_the_candidate_with_paired_intervals() -> None:
    from vtpose.errors import VtposeError
    from vtpose.training.bootstrap import CANDIDATE, PRETRAINED, PRODUCTION, Interval
    from vtpose.training.evaluate import evaluation_report
    from vtpose.training.mlflow_logging import evaluation_metrics
    from vtpose.training.reports import plot_intervals
    from vtpose.training.summary import report_lines

    # The pretrained checkpoint plays all three parts: the same weights on the same split must agree exactly.
    production = evaluation_report(PRETRAINED_WEIGHTS, VAL_JSON, VAL_IMAGES, split="val2017", imgsz=320, previews=0)
    production.model_version = "7"
    report = evaluation_report(
        PRETRAINED_WEIGHTS,
        VAL_JSON,
        VAL_IMAGES,
        split="val2017",
        baseline_weights=PRETRAINED_WEIGHTS,
        imgsz=320,
        previews=1,
        production=production,
        bootstrap_resamples=25,
        bootstrap_seed=1,
    )
    assert report.production_stats == production.stats == report.stats == report.baseline_stats
    assert report.production_version == "7" and report.production_weights_sha256 == production.weights_sha256
    bootstrap = report.bootstrap_result()
    assert bootstrap is not None and (bootstrap.resamples, bootstrap.seed, bootstrap.num_images) == (25, 1, 108)
    ap = bootstrap.intervals[CANDIDATE]["AP"]
    assert ap.estimate == report.stats["AP"] and ap.low < ap.estimate < ap.high
    assert bootstrap.intervals[PRODUCTION]["AP"] == ap == bootstrap.intervals[PRETRAINED]["AP"]
    for role in (PRODUCTION, PRETRAINED):
        assert bootstrap.difference(CANDIDATE, role, "AP") == Interval(0.0, 0.0, 0.0)
    markdown = report.markdown()
    assert "production (version 7)" in markdown and ap.format() in markdown and "25 resamples" in markdown
    assert "| AP | +0.0000 [+0.0000, +0.0000] | +0.0000 [+0.0000, +0.0000] |" in markdown
    metrics = evaluation_metrics(report)
    assert metrics["coco_AP"] == metrics["production_coco_AP"] == report.stats["AP"]
    assert (metrics["coco_AP_ci_low"], metrics["coco_AP_ci_high"]) == (ap.low, ap.high)
    assert metrics["candidate_minus_production_AP"] == metrics["candidate_minus_pretrained_AP_ci_high"] == 0.0
    assert any(ap.format() in line and line.lstrip().startswith("AP ") for line in report_lines(report))
    assert (plot_intervals(report) or b"").startswith(b"\x89PNG")
    with pytest.raises(VtposeError, match="not comparable"):
        evaluation_report(PRETRAINED_WEIGHTS, VAL_JSON, VAL_IMAGES, split="val2017", imgsz=640, production=production)
