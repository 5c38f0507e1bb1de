"""COCO OKS evaluation: model + COCO ground truth -> COCO results JSON -> pycocotools COCOeval -> named stats.

The numbers are pycocotools' own: nothing here re-implements COCOeval. Persons with `num_keypoints == 0`
and crowd regions are ignored by COCOeval itself, which is also how `vtpose.data.yolo` leaves them out
of training labels.
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vtpose.artifacts import sha256_file
from vtpose.backends import DEFAULT_IMGSZ, EVAL_CONF, PoseBackend, open_backend
from vtpose.errors import VtposeError
from vtpose.keypoints import COCO_STAT_NAMES, KEYPOINT_NAMES, NUM_KEYPOINTS, OKS_SIGMAS, PERSON_CATEGORY_ID
from vtpose.paths import atomic_path
from vtpose.pose import PersonPose, load_image
from vtpose.training.bootstrap import CANDIDATE, PRETRAINED, PRODUCTION, BootstrapResult, paired_bootstrap
from vtpose.training.per_source import per_source_evaluation
from vtpose.training.reports import EvaluationReport, prediction_previews

# COCOeval's keypoint stats look at the 20 best detections per image.
COCO_KEYPOINT_MAX_DETS = 20
# Images per predictor call: memory only. Each image is letterboxed on its own (vtpose.backends.base.letterbox), so
# the stats are the same for any batch size (tests/test_backends.py checks 1 against 8).
PREDICT_BATCH = 8


@dataclass
class EvaluationResult:
    """What one evaluation produced.

    Attributes:
        stats: COCOeval's 10 keypoint stats by name (AP, AP50, AP75, APm, APl, AR, AR50, AR75, ARm, ARl).
        per_keypoint: one row per COCO keypoint: name, matched (labelled gt joints of matched persons),
            mean_error_px, median_error_px, oks (mean per-joint OKS similarity) for detections matched at OKS 0.5.
        detections: the COCO results records that were scored.
        num_images: images evaluated.
    """

    stats: dict[str, float]
    per_keypoint: list[dict[str, Any]] = field(default_factory=list)
    detections: list[dict[str, Any]] = field(default_factory=list)
    num_images: int = 0


def load_ground_truth(annotations: str | Path) -> Any:
    """pycocotools' COCO object for a person_keypoints JSON, quietly, with a clear error on a bad file."""
    from pycocotools.coco import COCO

    annotations = Path(annotations)
    if not annotations.is_file():
        raise VtposeError(f"{annotations}: annotations file not found; pass --annotations person_keypoints_*.json.")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return COCO(str(annotations))
    except json.JSONDecodeError as error:
        raise VtposeError(
            f"{annotations}: not valid JSON (line {error.lineno}, column {error.colno}: {error.msg}); "
            "fix or re-fetch it."
        ) from error


def poses_to_coco_results(image_id: int, poses: list[PersonPose]) -> list[dict[str, Any]]:
    """COCO results records (keypoints task) for one image's predicted persons."""
    return [
        {
            "image_id": int(image_id),
            "category_id": PERSON_CATEGORY_ID,
            "keypoints": [round(float(v), 3) for v in pose.keypoints.reshape(-1)],
            "score": round(float(pose.score), 5),
        }
        for pose in poses
    ]


def score_keypoints(coco_gt: Any, detections: list[dict[str, Any]]) -> tuple[dict[str, float], Any]:
    """Run pycocotools `COCOeval(gt, dt, "keypoints")` and name its 10 stats.

    Args:
        coco_gt: a pycocotools COCO object (see `load_ground_truth`).
        detections: COCO results records (image_id, category_id, keypoints [51], score).

    Returns:
        The stats by name, and the evaluated COCOeval (for per-keypoint analysis).
    """
    from pycocotools.cocoeval import COCOeval

    if not detections:
        # loadRes rejects an empty list; no detections means nothing found: every AP and AR is 0.
        return dict.fromkeys(COCO_STAT_NAMES, 0.0), None
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(detections)
        evaluator = COCOeval(coco_gt, coco_dt, "keypoints")
        evaluator.params.catIds = [PERSON_CATEGORY_ID]
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = {name: float(value) for name, value in zip(COCO_STAT_NAMES, evaluator.stats, strict=True)}
    return stats, evaluator


def per_keypoint_errors(coco_gt: Any, evaluator: Any) -> list[dict[str, Any]]:
    """Per-joint pixel error and OKS similarity of the detections COCOeval matched at OKS 0.5 (area "all").

    Only labelled (v > 0) ground-truth joints of matched persons count.
    """
    errors: list[list[float]] = [[] for _ in range(NUM_KEYPOINTS)]
    similarities: list[list[float]] = [[] for _ in range(NUM_KEYPOINTS)]
    if evaluator is not None:
        sigmas = np.asarray(OKS_SIGMAS)
        all_area = evaluator.params.areaRng[evaluator.params.areaRngLbl.index("all")]
        for record in evaluator.evalImgs:
            if record is None or record["aRng"] != all_area:
                continue
            for gt_id, dt_id in zip(record["gtIds"], record["gtMatches"][0], strict=True):
                if dt_id <= 0:
                    continue
                gt = coco_gt.anns[gt_id]
                dt = evaluator.cocoDt.anns[int(dt_id)]
                g = np.asarray(gt["keypoints"], dtype=np.float64).reshape(-1, 3)
                d = np.asarray(dt["keypoints"], dtype=np.float64).reshape(-1, 3)
                distance = np.hypot(g[:, 0] - d[:, 0], g[:, 1] - d[:, 1])
                oks = np.exp(-(distance**2) / (2 * (gt["area"] + np.spacing(1)) * (2 * sigmas) ** 2))
                for k in np.flatnonzero(g[:, 2] > 0):
                    errors[k].append(float(distance[k]))
                    similarities[k].append(float(oks[k]))
    return [
        {
            "keypoint": name,
            "matched": len(errors[k]),
            "mean_error_px": round(float(np.mean(errors[k])), 2) if errors[k] else None,
            "median_error_px": round(float(np.median(errors[k])), 2) if errors[k] else None,
            "oks": round(float(np.mean(similarities[k])), 4) if similarities[k] else None,
        }
        for k, name in enumerate(KEYPOINT_NAMES)
    ]


def predict_coco_results(
    predictor: PoseBackend, coco_gt: Any, images_dir: str | Path
) -> tuple[list[dict[str, Any]], int]:
    """Predict every image of the ground truth and return COCO results records and the image count."""
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise VtposeError(f"{images_dir}: images folder not found; pass --images DIR holding the JSON's file_name's.")
    image_infos = [coco_gt.imgs[i] for i in sorted(coco_gt.getImgIds())]
    detections: list[dict[str, Any]] = []
    for start in range(0, len(image_infos), PREDICT_BATCH):
        batch = image_infos[start : start + PREDICT_BATCH]
        images = [load_image(images_dir / info["file_name"]) for info in batch]
        for info, poses in zip(batch, predictor.predict(images), strict=True):
            detections.extend(poses_to_coco_results(info["id"], poses[:COCO_KEYPOINT_MAX_DETS]))
    return detections, len(image_infos)


def evaluate_weights(
    weights: str | Path,
    annotations: str | Path,
    images_dir: str | Path,
    imgsz: int = DEFAULT_IMGSZ,
    conf: float = EVAL_CONF,
    device: str | None = None,
    coco_gt: Any = None,
) -> EvaluationResult:
    """Score a checkpoint on a COCO split with pycocotools OKS.

    Args:
        weights: YOLO-pose weights on any backend: .pt, .onnx or an OpenVINO IR's .xml.
        annotations: the split's person_keypoints JSON.
        images_dir: folder holding the JSON's `file_name`s.
        imgsz: inference size.
        conf: detection threshold; low, so COCOeval sees the whole precision-recall curve.
        device: "cpu", "cuda:0"..., None for automatic.
        coco_gt: the annotations already loaded (`load_ground_truth`), to score several models on one parse.
    """
    coco_gt = coco_gt if coco_gt is not None else load_ground_truth(annotations)
    predictor = open_backend(weights, imgsz=imgsz, conf=conf, device=device)
    detections, num_images = predict_coco_results(predictor, coco_gt, images_dir)
    stats, evaluator = score_keypoints(coco_gt, detections)
    return EvaluationResult(
        stats=stats,
        per_keypoint=per_keypoint_errors(coco_gt, evaluator),
        detections=detections,
        num_images=num_images,
    )


def write_results_json(detections: list[dict[str, Any]], path: str | Path) -> Path:
    """Write COCO results JSON atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(detections))
    return path


def bootstrap_detections(
    coco_gt: Any,
    detections: dict[str, list[dict[str, Any]]],
    resamples: int,
    seed: int,
    differences: list[tuple[str, str]],
) -> BootstrapResult:
    """Paired bootstrap intervals for several models' COCO results on one ground truth.

    Args:
        coco_gt: the split's pycocotools COCO object.
        detections: model role (`vtpose.training.bootstrap.CANDIDATE`...) -> its COCO results records on the split.
        resamples: bootstrap rounds; seed: the generator's seed.
        differences: (a, b) role pairs whose a - b gets an interval.
    """
    evaluators = {role: score_keypoints(coco_gt, records)[1] for role, records in detections.items()}
    return paired_bootstrap(evaluators, resamples=resamples, seed=seed, differences=differences)


def evaluation_report(
    weights: str | Path,
    annotations: str | Path,
    images_dir: str | Path,
    split: str,
    baseline_weights: str | Path | None = None,
    imgsz: int = DEFAULT_IMGSZ,
    previews: int = 6,
    production: EvaluationReport | None = None,
    bootstrap_resamples: int = 0,
    bootstrap_seed: int = 0,
) -> EvaluationReport:
    """Evaluate a model (and optionally a baseline) on a split into the dashboard's report, beside the production
    version's scores on the same split, with paired bootstrap intervals.

    Args:
        weights: the model to score (the candidate).
        annotations: the split's person_keypoints JSON; images_dir: its images.
        split: the split's name, for the record.
        baseline_weights: the pretrained checkpoint, scored on the same split; None to leave it out.
        imgsz: inference size.
        previews: how many preview images go into the report.
        production: the production version's report on this split and imgsz (`production_report`); None or an
            empty report when nothing is in production.
        bootstrap_resamples: paired bootstrap rounds over the images; 0 for no intervals.
        bootstrap_seed: the bootstrap's seed.

    Raises:
        VtposeError: the production report was scored on another split, image count or size.
    """
    coco_gt = load_ground_truth(annotations)
    production = production if production is not None and production.stats else None
    num_images = len(coco_gt.getImgIds())
    scored = (production.split, production.num_images, production.imgsz) if production is not None else None
    if production is not None and scored != (split, num_images, imgsz):
        raise VtposeError(
            f"the production version was scored on {production.split} ({production.num_images} images, imgsz "
            f"{production.imgsz}), the candidate is on {split} ({num_images} images, imgsz {imgsz}): "
            "not comparable; score both on the candidate's split."
        )
    result = evaluate_weights(weights, annotations, images_dir, imgsz=imgsz, coco_gt=coco_gt)
    baseline = (
        evaluate_weights(baseline_weights, annotations, images_dir, imgsz=imgsz, coco_gt=coco_gt)
        if baseline_weights
        else None
    )
    detections = {CANDIDATE: result.detections}
    if production is not None:
        detections[PRODUCTION] = production.results_json
    if baseline is not None:
        detections[PRETRAINED] = baseline.detections
    bootstrap: dict[str, Any] = {}
    if bootstrap_resamples:
        pairs = [(CANDIDATE, role) for role in detections if role != CANDIDATE]
        bootstrap = bootstrap_detections(coco_gt, detections, bootstrap_resamples, bootstrap_seed, pairs).to_dict()
    # A merged split (data.sources): each source's own scores from the same detections, none predicted again.
    per_source = per_source_evaluation(coco_gt, detections, bootstrap_resamples, bootstrap_seed)
    return EvaluationReport(
        stats=result.stats,
        baseline_stats=baseline.stats if baseline else {},
        production_stats=production.stats if production else {},
        per_keypoint=result.per_keypoint,
        split=split,
        num_images=result.num_images,
        imgsz=imgsz,
        bootstrap=bootstrap,
        weights_sha256=sha256_file(weights),
        production_version=production.model_version if production else "",
        production_weights_sha256=production.weights_sha256 if production else "",
        results_json=result.detections,
        previews=prediction_previews(result.detections, coco_gt.dataset, Path(images_dir), count=previews),
        per_source=per_source,
    )
