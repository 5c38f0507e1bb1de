"""Each source of a merged val split scored on its own: pycocotools OKS, the paired bootstrap, and PCKh for MPII.

A merged split (`vtpose.data.merge`) tags each image with its source; `source_part` gives back that source's own
COCO JSON (its own ids, records and order), and the detections on its images are renumbered to its ids, so every
number here is the one an evaluation of that source alone gives (tests/test_datasets_merge.py checks it).

PCKh@0.5 (`vtpose.training.pckh`) is scored where the ground truth carries MPII records with a head box (MPII's
own .mat, `data.source: mpii_mat`; mmpose's JSON has no head boxes, so its persons count as
`persons_without_head_box` and PCKh is None). MPII scores one given person at a time; a multi-person detector
finds persons itself, so each ground-truth person takes the detection (score at least `PCKH_MIN_SCORE`) that fits
it best by OKS over its labelled COCO joints, one detection per person, best pairs first; a person left without
one has every joint wrong. Of MPII's 16 joints a COCO-17 model predicts the 12 mapped ones; pelvis and thorax are
taken as the midpoints of the hips and of the shoulders (MPII's mean leaves both out anyway), head_top and
upper_neck are not predicted (their PCKh is None). The mean is over the 12 mapped joints (`PCKH_MEAN_JOINTS`):
MPII's own mean also counts head, so the two are close, not equal.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping
from typing import Any, Final

import numpy as np

from vtpose.data.merge import source_names, source_part
from vtpose.keypoints import KEYPOINT_INDEX, MPII_JOINT_NAMES, MPII_TO_COCO, NUM_KEYPOINTS, OKS_SIGMAS
from vtpose.training.bootstrap import CANDIDATE, PRETRAINED, PRODUCTION
from vtpose.training.pckh import PCKH_THRESHOLD, pckh

# Detections below this score are not offered to a ground-truth person for PCKh (COCOeval itself sees them all).
PCKH_MIN_SCORE: Final = 0.25
# The MPII joints PCKh's mean is over: those a COCO-17 model predicts directly.
PCKH_MEAN_JOINTS: Final[tuple[str, ...]] = tuple(MPII_JOINT_NAMES[m] for m in sorted(MPII_TO_COCO))
# MPII joints taken as midpoints of two COCO joints.
_MIDPOINTS: Final[dict[str, tuple[str, str]]] = {
    "pelvis": ("left_hip", "right_hip"),
    "thorax": ("left_shoulder", "right_shoulder"),
}
NOT_PREDICTED: Final[tuple[str, ...]] = ("upper_neck", "head_top")
PCKH_KEY: Final = "PCKh"


def coco_from_dict(dataset: dict[str, Any]) -> Any:
    """pycocotools' COCO object over an in-memory COCO dict, quietly."""
    from pycocotools.coco import COCO

    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def source_detections(detections: list[dict[str, Any]], to_source: Mapping[int, int]) -> list[dict[str, Any]]:
    """The detections on one source's images, renumbered to the source's image ids, in their order."""
    return [{**d, "image_id": to_source[d["image_id"]]} for d in detections if d["image_id"] in to_source]


def mpii_from_coco(keypoints: np.ndarray) -> np.ndarray:
    """MPII's 16 joints from one detection's COCO-17 keypoints (module docstring: which are derived, which NaN).

    Args:
        keypoints: (17, 3) or (17, 2) pixels, COCO order.

    Returns:
        (16, 2) float64 pixels, MPII order; NaN for joints a COCO-17 model does not predict.
    """
    xy = np.asarray(keypoints, dtype=np.float64).reshape(NUM_KEYPOINTS, -1)[:, :2]
    out = np.full((len(MPII_JOINT_NAMES), 2), np.nan)
    for mpii_index, coco_index in MPII_TO_COCO.items():
        out[mpii_index] = xy[coco_index]
    for name, (a, b) in _MIDPOINTS.items():
        out[MPII_JOINT_NAMES.index(name)] = (xy[KEYPOINT_INDEX[a]] + xy[KEYPOINT_INDEX[b]]) / 2.0
    return out


def _oks(gt: dict[str, Any], detection: dict[str, Any]) -> float:
    """COCOeval's OKS of one detection against one person, over the person's labelled COCO joints."""
    g = np.asarray(gt["keypoints"], dtype=np.float64).reshape(NUM_KEYPOINTS, 3)
    d = np.asarray(detection["keypoints"], dtype=np.float64).reshape(NUM_KEYPOINTS, 3)
    labelled = g[:, 2] > 0
    if not labelled.any():
        return 0.0
    variances = (2 * np.asarray(OKS_SIGMAS)) ** 2
    e = ((g[:, 0] - d[:, 0]) ** 2 + (g[:, 1] - d[:, 1]) ** 2) / variances / (gt["area"] + np.spacing(1)) / 2
    return float(np.mean(np.exp(-e[labelled])))


def _match(persons: list[dict[str, Any]], detections: list[dict[str, Any]]) -> list[dict[str, Any] | None]:
    """Each person's detection: one-to-one, the best OKS pairs first; None where none is left."""
    pairs = sorted(
        ((_oks(p, d), i, j) for i, p in enumerate(persons) for j, d in enumerate(detections)),
        key=lambda pair: (-pair[0], pair[1], pair[2]),
    )
    matched: list[dict[str, Any] | None] = [None] * len(persons)
    used: set[int] = set()
    for oks, i, j in pairs:
        if oks > 0 and matched[i] is None and j not in used:
            matched[i] = detections[j]
            used.add(j)
    return matched


def pckh_of_detections(coco: dict[str, Any], detections: list[dict[str, Any]]) -> dict[str, Any] | None:
    """PCKh@0.5 of COCO results against a split's MPII records (module docstring: matching, joints, mean).

    Args:
        coco: a COCO dict whose annotations carry "mpii" records (`vtpose.data.mpii_mat`).
        detections: COCO results records on its images (its ids).

    Returns:
        None when no annotation has an MPII record; else {"PCKh": the mean (None without a scoreable person),
        "per_joint": MPII joint -> PCKh (None: not predicted, or labelled nowhere), "labelled", "persons" scored,
        "persons_without_head_box", "unmatched_persons", "threshold", "mean_joints", "min_score"}.
    """
    records = [a for a in coco["annotations"] if isinstance(a.get("mpii"), dict)]
    if not records:
        return None
    scored = [a for a in records if a["mpii"].get("head_box")]
    by_image: dict[int, list[dict[str, Any]]] = {}
    for d in detections:
        if d["score"] >= PCKH_MIN_SCORE:
            by_image.setdefault(d["image_id"], []).append(d)
    gt_rows, pred_rows, boxes, unmatched = [], [], [], 0
    persons_of: dict[int, list[dict[str, Any]]] = {}
    for a in scored:
        persons_of.setdefault(a["image_id"], []).append(a)
    for image_id, persons in persons_of.items():
        for person, detection in zip(persons, _match(persons, by_image.get(image_id, [])), strict=True):
            gt_rows.append(person["mpii"]["joints"])
            boxes.append(person["mpii"]["head_box"])
            if detection is None:
                unmatched += 1
                pred_rows.append(np.full((len(MPII_JOINT_NAMES), 2), np.nan))
            else:
                pred_rows.append(mpii_from_coco(np.asarray(detection["keypoints"])))
    base: dict[str, Any] = {
        "persons": len(gt_rows),
        "persons_without_head_box": len(records) - len(scored),
        "unmatched_persons": unmatched,
        "threshold": PCKH_THRESHOLD,
        "mean_joints": list(PCKH_MEAN_JOINTS),
        "min_score": PCKH_MIN_SCORE,
    }
    if not gt_rows:
        return {PCKH_KEY: None, "per_joint": {}, "labelled": {}, **base}
    result = pckh(np.array(gt_rows), np.array(pred_rows), np.array(boxes), mean_joints=PCKH_MEAN_JOINTS)
    per_joint = {
        name: None if name in NOT_PREDICTED or not np.isfinite(value) else round(value, 4)
        for name, value in result.per_joint.items()
    }
    mean = round(result.mean, 4) if np.isfinite(result.mean) else None
    return {PCKH_KEY: mean, "per_joint": per_joint, "labelled": result.labelled, **base}


def per_source_evaluation(
    coco_gt: Any,
    detections: Mapping[str, list[dict[str, Any]]],
    resamples: int = 0,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Every source of a merged split scored on its own.

    Args:
        coco_gt: the merged split's pycocotools COCO object.
        detections: model role (`vtpose.training.bootstrap.CANDIDATE`, PRODUCTION, PRETRAINED) -> its COCO results
            on the merged split; the candidate first.
        resamples / seed: the paired bootstrap per source (0: none), as on the combined split.

    Returns:
        {} for a split that is not merged; else source name -> {"num_images", "stats" (the candidate's),
        "production_stats", "baseline_stats" (the pretrained checkpoint's; {} where not scored), "bootstrap"
        (`BootstrapResult.to_dict()` or {}), "pckh" (role -> `pckh_of_detections`; {} for a source without MPII
        records)}: the fields of `EvaluationReport`, per source.
    """
    from vtpose.training.evaluate import bootstrap_detections, score_keypoints

    out: dict[str, dict[str, Any]] = {}
    for name in source_names(coco_gt.dataset):
        part, to_source = source_part(coco_gt.dataset, name)
        gt = coco_from_dict(part)
        own = {role: source_detections(records, to_source) for role, records in detections.items()}
        role_stats = {role: score_keypoints(gt, records)[0] for role, records in own.items()}
        bootstrap: dict[str, Any] = {}
        if resamples:
            pairs = [(CANDIDATE, role) for role in own if role != CANDIDATE]
            bootstrap = bootstrap_detections(gt, own, resamples, seed, pairs).to_dict()
        pckh_by_role = {role: pckh_of_detections(part, records) for role, records in own.items()}
        out[name] = {
            "num_images": len(part["images"]),
            "stats": role_stats[CANDIDATE],
            "production_stats": role_stats.get(PRODUCTION, {}),
            "baseline_stats": role_stats.get(PRETRAINED, {}),
            "bootstrap": bootstrap,
            "pckh": {role: value for role, value in pckh_by_role.items() if value is not None},
        }
    return out
