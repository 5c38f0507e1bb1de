"""AP with its 95% interval on coco-person-mini val2017: the paired bootstrap the evaluate step runs.

    .venv/bin/python benchmarks/bench_intervals.py                         # the pretrained checkpoint
    .venv/bin/python benchmarks/bench_intervals.py --weights W --against data/pretrained/yolo11n-pose.pt

Prints every stat of `--weights` with its interval, the paired difference against `--against` when given, the
number of resamples and seed, and how long the bootstrap took (prediction excluded).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")

from vtpose.keypoints import COCO_STAT_NAMES
from vtpose.paths import COCO_MINI_DIR, PRETRAINED_WEIGHTS
from vtpose.training.bootstrap import CANDIDATE, DEFAULT_RESAMPLES, PRETRAINED
from vtpose.training.evaluate import bootstrap_detections, evaluate_weights, load_ground_truth

VAL_JSON = COCO_MINI_DIR / "annotations" / "person_keypoints_val2017.json"
VAL_IMAGES = COCO_MINI_DIR / "images" / "val2017"


def main() -> None:
    """Score, bootstrap, print."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, default=PRETRAINED_WEIGHTS)
    parser.add_argument("--against", type=Path, default=None, help="a second model for the paired difference")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--resamples", type=int, default=DEFAULT_RESAMPLES)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(os.popen("uptime").read().strip())
    coco = load_ground_truth(VAL_JSON)
    detections = {CANDIDATE: evaluate_weights(args.weights, VAL_JSON, VAL_IMAGES, args.imgsz, coco_gt=coco).detections}
    if args.against:
        detections[PRETRAINED] = evaluate_weights(
            args.against, VAL_JSON, VAL_IMAGES, args.imgsz, coco_gt=coco
        ).detections
    pairs = [(CANDIDATE, PRETRAINED)] if args.against else []
    start = time.perf_counter()
    result = bootstrap_detections(coco, detections, args.resamples, args.seed, pairs)
    seconds = time.perf_counter() - start
    print(f"{args.weights.name} on val2017 ({result.num_images} images), imgsz {args.imgsz}:")
    print(f"{result.confidence:.0%} intervals, paired bootstrap, {result.resamples} resamples, seed {result.seed}")
    for name in COCO_STAT_NAMES:
        line = f"  {name:<5} {result.intervals[CANDIDATE][name].format()}"
        if args.against:
            line += (
                f"   minus {args.against.name}: {result.difference(CANDIDATE, PRETRAINED, name).format(signed=True)}"
            )
        print(line)
    print(f"bootstrap: {seconds:.1f} s for {len(detections)} model(s) ({1000 * seconds / args.resamples:.1f} ms/round)")
    print(os.popen("uptime").read().strip())


if __name__ == "__main__":
    main()
