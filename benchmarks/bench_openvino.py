"""OpenVINO arithmetic side by side: the FP32 and INT8 IRs, each at f32 and at the device's default precision.

    .venv/bin/python benchmarks/bench_openvino.py [--calibration 30] [--val-images 8] [--repeat 9] [--imgsz 640]

The IRs are exported from data/pretrained/yolo11n-pose.pt (FP32 by `cached_export`, INT8 by NNCF on the first
--calibration train2017 images, see int8_ir.py), opened as the backend opens them (`OpenVinoPoseModel`, every
core this process may use, one stream) with `inference_precision` "f32" and None (OpenVINO's default: bf16 on a
CPU with native bfloat16). Each runs one image at a time on the streamer photo and the first --val-images val2017
images; the four configurations take turns image by image, so load from other processes falls on all of them
alike. Printed per configuration: the precision OpenVINO reports, the median ms per call over every call, and how
far the keypoints land from PyTorch's (the `.pt` on the same letterbox): persons matched by box IoU >= 0.5,
distances of keypoints PyTorch gives confidence >= 0.5, median and max in pixels.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from int8_ir import cached_ir

from vtpose.backends.openvino import OpenVinoPoseModel
from vtpose.backends.pytorch import TorchPoseModel
from vtpose.paths import COCO_MINI_DIR, MEDIA_DIR, PRETRAINED_WEIGHTS
from vtpose.pose import PersonPose, load_image

STREAMER = MEDIA_DIR / "game-streamer-tips.jpg"
VAL_IMAGES = COCO_MINI_DIR / "images" / "val2017"
MATCH_IOU = 0.5
KEYPOINT_CONF = 0.5
PRECISIONS = ("f32", None)  # None: the device's default


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """IoU of two (x, y, w, h) boxes."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def keypoint_distances(reference: list[PersonPose], other: list[PersonPose]) -> tuple[list[float], int]:
    """Pixel distances of confident reference keypoints to the matched person's, and how many persons had no match.

    Each reference person (highest score first) takes the unmatched person of `other` with the largest box IoU,
    if at least MATCH_IOU.
    """
    distances: list[float] = []
    unmatched = 0
    free = list(other)
    for person in reference:
        best = max(free, key=lambda o: iou(person.bbox, o.bbox), default=None)
        if best is None or iou(person.bbox, best.bbox) < MATCH_IOU:
            unmatched += 1
            continue
        free.remove(best)
        confident = person.keypoints[:, 2] >= KEYPOINT_CONF
        delta = person.keypoints[confident, :2] - best.keypoints[confident, :2]
        distances.extend(np.hypot(delta[:, 0], delta[:, 1]).tolist())
    return distances, unmatched


def main() -> None:
    """Export, measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", type=Path, default=PRETRAINED_WEIGHTS)
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--calibration", type=int, default=30, help="train2017 images INT8 is calibrated on")
    parser.add_argument("--val-images", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=9, help="timed calls per image and configuration")
    args = parser.parse_args()

    paths = [STREAMER, *sorted(VAL_IMAGES.glob("*.jpg"))[: args.val_images]]
    images = [load_image(path) for path in paths]
    t0 = time.perf_counter()
    irs = {kind: cached_ir(args.weights, kind, args.imgsz, args.calibration) for kind in ("fp32", "int8")}
    print(f"IRs ready in {time.perf_counter() - t0:.1f} s: " + ", ".join(f"{k} {v}" for k, v in irs.items()))

    reference = TorchPoseModel(args.weights, imgsz=args.imgsz, device="cpu")
    truth = [reference.predict_one(image) for image in images]
    configs: dict[tuple[str, str | None], OpenVinoPoseModel] = {}
    for (label, xml), arithmetic in ((item, p) for item in irs.items() for p in PRECISIONS):
        model = OpenVinoPoseModel(xml, imgsz=args.imgsz, streams=1, inference_precision=arithmetic)
        for image in images:  # compiles the graph for each input shape before the clock
            model.predict_one(image)
        configs[(label, arithmetic)] = model
    shapes = sorted({tuple(reference.prepare(image).tensor.shape[1:]) for image in images})
    cores = len(os.sched_getaffinity(0))
    print(
        f"{len(images)} images ({STREAMER.name} + {len(images) - 1} val2017), input shapes {shapes}, imgsz "
        f"{args.imgsz}, {cores} threads, 1 stream, {args.repeat} calls per image and configuration; "
        f"load average before {os.getloadavg()[0]:.2f}"
    )

    times: dict[tuple[str, str | None], list[float]] = {key: [] for key in configs}
    for _ in range(args.repeat):
        for image in images:
            for key, model in configs.items():
                t0 = time.perf_counter()
                model.predict_one(image)
                times[key].append(time.perf_counter() - t0)

    print(f"load average after {os.getloadavg()[0]:.2f}")
    print()
    print("| IR | arithmetic | median ms | vs FP32 at f32 | keypoints vs PyTorch: median / max px | unmatched |")
    print("|---|---|---|---|---|---|")
    baseline = float(np.median(times[("fp32", "f32")]))
    for key, model in configs.items():
        distances: list[float] = []
        unmatched = 0
        for image, expected in zip(images, truth, strict=True):
            found, missed = keypoint_distances(expected, model.predict_one(image))
            distances += found
            unmatched += missed
        median = float(np.median(times[key]))
        label = "FP32" if key[0] == "fp32" else f"INT8 ({args.calibration} calibration images)"
        arithmetic = model.inference_precision + (" (device default)" if key[1] is None else "")
        spread = f"{np.median(distances):.2f} / {np.max(distances):.2f}" if distances else "n/a"
        print(
            f"| {label} | {arithmetic} | {1000 * median:.1f} | {baseline / median:.2f}x | {spread} | "
            f"{unmatched} of {sum(len(t) for t in truth)} |"
        )


if __name__ == "__main__":
    main()
