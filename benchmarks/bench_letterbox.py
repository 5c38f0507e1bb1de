"""Letterbox rules compared: COCO keypoint AP of one checkpoint when only the placement of the image changes.

    .venv/bin/python benchmarks/bench_letterbox.py [--weights W] [--resamples 1000]

Each rule letterboxes every val2017 image of data/coco-person-mini alone (imgsz 640), the PyTorch network runs it,
and the project's shared decoding (`vtpose.backends.base.decode_pose_output`) maps the answer back; pycocotools
scores the whole split and the 640x480 subset (COCOeval's `params.imgIds` restricted to it, so the other images'
persons do not count as missed). A paired bootstrap over images (pycocotools' per-image `evalImgs` resampled, then
its own `accumulate`) gives the 95% interval of square minus rectangle, and leave-one-image-out on the subset shows
which image carries its gap. Results: README.md "How images reach the model" and benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vtpose.backends.base import EVAL_CONF, LETTERBOX_FILL, Letterboxed, decode_pose_output, letterbox
from vtpose.backends.pytorch import TorchPoseModel
from vtpose.keypoints import PERSON_CATEGORY_ID
from vtpose.paths import COCO_MINI_DIR, PRETRAINED_WEIGHTS
from vtpose.pose import load_image
from vtpose.training.evaluate import COCO_KEYPOINT_MAX_DETS, load_ground_truth, poses_to_coco_results

IMGSZ = 640
ANNOTATIONS = COCO_MINI_DIR / "annotations" / "person_keypoints_val2017.json"
IMAGES = COCO_MINI_DIR / "images" / "val2017"
SUBSET_SIZE = (640, 480)


def placed(image: np.ndarray, out_hw: tuple[int, int], offset: tuple[int, int] | None = None) -> Letterboxed:
    """The image scaled (long side IMGSZ) onto a gray canvas of `out_hw`, centred or at `offset` (left, top)."""
    height, width = image.shape[:2]
    ratio = min(IMGSZ / height, IMGSZ / width)
    new_w, new_h = max(round(width * ratio), 1), max(round(height * ratio), 1)
    canvas_h, canvas_w = out_hw
    if offset is None:
        left, top = round((canvas_w - new_w) / 2 - 0.1), round((canvas_h - new_h) / 2 - 0.1)
    else:
        left, top = offset
    resized = image if (new_w, new_h) == (width, height) else cv2.resize(image, (new_w, new_h))
    canvas = np.full((canvas_h, canvas_w, 3), LETTERBOX_FILL, np.uint8)
    canvas[top : top + new_h, left : left + new_w] = resized
    tensor = np.divide(canvas[:, :, ::-1].transpose(2, 0, 1), 255.0, dtype=np.float32)
    return Letterboxed(tensor, (height, width), (new_w / width, new_h / height), (left, top))


def _sides(image: np.ndarray) -> tuple[int, int]:
    height, width = image.shape[:2]
    ratio = IMGSZ / max(height, width)
    return round(height * ratio), round(width * ratio)


def _ceil32(value: float) -> int:
    return math.ceil(value / 32) * 32


RULES: dict[str, Callable[[np.ndarray], Letterboxed]] = {
    "minimal rectangle, centred (the project's rule)": lambda im: letterbox(im, IMGSZ),
    "640 square, centred (Ultralytics' mixed batch)": lambda im: placed(im, (IMGSZ, IMGSZ)),
    "640 square, image at the top-left": lambda im: placed(im, (IMGSZ, IMGSZ), (0, 0)),
    "640 square, offset rounded down to 32 px": lambda im: placed(
        im, (IMGSZ, IMGSZ), ((IMGSZ - _sides(im)[1]) // 2 // 32 * 32, (IMGSZ - _sides(im)[0]) // 2 // 32 * 32)
    ),
    "minimal rectangle + half a stride (Ultralytics val)": lambda im: placed(
        im, (math.ceil(_sides(im)[0] / 32 + 0.5) * 32, math.ceil(_sides(im)[1] / 32 + 0.5) * 32)
    ),
    "minimal rectangle + 32 px gray border": lambda im: placed(
        im,
        (_ceil32(_sides(im)[0]) + 64, _ceil32(_sides(im)[1]) + 64),
        (32 + (_ceil32(_sides(im)[1]) - _sides(im)[1]) // 2, 32 + (_ceil32(_sides(im)[0]) - _sides(im)[0]) // 2),
    ),
}


def evaluated(coco_gt: Any, detections: list[dict[str, Any]], img_ids: list[int] | None = None) -> Any:
    """COCOeval after `evaluate()` (per-image results computed), optionally on some images only."""
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        evaluator = COCOeval(coco_gt, coco_gt.loadRes(detections), "keypoints")
        evaluator.params.catIds = [PERSON_CATEGORY_ID]
        if img_ids is not None:
            evaluator.params.imgIds = sorted(img_ids)
        evaluator.evaluate()
    return evaluator


def ap_on(evaluator: Any, picks: list[int]) -> float:
    """AP (area all, 20 detections) over the evaluated images at positions `picks` (repeats allowed)."""
    params = evaluator.params
    n_img, n_area = len(params.imgIds), len(params.areaRng)
    resampled = copy.copy(evaluator)
    resampled.params = copy.deepcopy(params)
    resampled.evalImgs = [
        evaluator.evalImgs[k * n_area * n_img + a * n_img + i]
        for k in range(len(params.catIds))
        for a in range(n_area)
        for i in picks
    ]
    resampled.params.imgIds = list(range(len(picks)))
    resampled._paramsEval = copy.deepcopy(resampled.params)
    with contextlib.redirect_stdout(io.StringIO()):
        resampled.accumulate()
    precision = resampled.eval["precision"][:, :, :, 0, -1]
    valid = precision[precision > -1]
    return float(valid.mean()) if valid.size else 0.0


def main() -> None:
    """Print each rule's AP, the bootstrap interval and the subset's leave-one-out."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", type=Path, default=PRETRAINED_WEIGHTS)
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()
    coco_gt = load_ground_truth(ANNOTATIONS)
    infos = [coco_gt.imgs[i] for i in sorted(coco_gt.getImgIds())]
    subset = [i["id"] for i in infos if (i["width"], i["height"]) == SUBSET_SIZE]
    labelled = [
        a for a in coco_gt.loadAnns(coco_gt.getAnnIds(imgIds=subset)) if a["num_keypoints"] and not a["iscrowd"]
    ]
    model = TorchPoseModel(args.weights, imgsz=IMGSZ, conf=EVAL_CONF, device="cpu")
    detections: dict[str, list[dict[str, Any]]] = {name: [] for name in RULES}
    for info in infos:
        image = load_image(IMAGES / info["file_name"])
        for name, rule in RULES.items():
            prepared = rule(image)
            (output,) = model._forward(prepared.tensor[None], alone=True)
            poses = decode_pose_output(output, prepared, EVAL_CONF)[:COCO_KEYPOINT_MAX_DETS]
            detections[name].extend(poses_to_coco_results(info["id"], poses))
    print(
        f"{args.weights.name}, {len(infos)} val images; subset {SUBSET_SIZE[0]}x{SUBSET_SIZE[1]}: {len(subset)} "
        f"images, {len(labelled)} persons with labelled keypoints"
    )
    print("| rule | AP, whole split | AP, 640x480 subset |\n|---|---|---|")
    for name, found in detections.items():
        whole, part = evaluated(coco_gt, found), evaluated(coco_gt, found, subset)
        print(f"| {name} | {ap_on(whole, list(range(len(infos)))):.4f} | {ap_on(part, list(range(len(subset)))):.4f} |")
    rect_name, square_name = list(RULES)[:2]
    rect, square = evaluated(coco_gt, detections[rect_name]), evaluated(coco_gt, detections[square_name])
    rng = np.random.default_rng(0)
    differences = []
    for _ in range(args.resamples):
        picks = rng.integers(0, len(infos), len(infos)).tolist()
        differences.append(ap_on(square, picks) - ap_on(rect, picks))
    everything = list(range(len(infos)))
    low, high = np.percentile(differences, [2.5, 97.5])
    print(
        f"\nsquare - rectangle, whole split: {ap_on(square, everything) - ap_on(rect, everything):+.4f}, "
        f"95% interval [{low:+.4f}, {high:+.4f}] ({args.resamples} paired bootstrap resamples over images)"
    )
    rect_part, square_part = (
        evaluated(coco_gt, detections[rect_name], subset),
        evaluated(coco_gt, detections[square_name], subset),
    )
    gaps = []
    for left_out in range(len(subset)):
        picks = [i for i in range(len(subset)) if i != left_out]
        gaps.append((ap_on(rect_part, picks) - ap_on(square_part, picks), subset[left_out]))
    gaps.sort()
    print(f"subset, rectangle - square with one image left out: smallest {gaps[0][0]:+.4f} (image {gaps[0][1]}), "
          f"largest {gaps[-1][0]:+.4f} (image {gaps[-1][1]})")  # fmt: skip


if __name__ == "__main__":
    main()
