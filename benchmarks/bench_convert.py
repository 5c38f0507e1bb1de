"""COCO -> YOLO-pose label conversion: vtpose's `write_yolo_labels` against Ultralytics' `convert_coco`.

Generates a synthetic person_keypoints JSON the size of COCO train2017's person subset (64,115 images with
persons, ~262k person annotations: ~38 % with no labelled keypoint, ~1 % crowd), then in one run:
    1. `convert_coco(labels_dir, save_dir, use_keypoints=True, cls91to80=False)` (reads the JSON itself),
    2. `load_coco_json` + `write_yolo_labels` (the same work: JSON in, label files out),
each in its own child process so its peak RSS is its own, and checks that every label file convert_coco wrote
is byte-identical to ours. Prints a table and writes it to benchmarks/CONVERT_RESULTS.md.

Run: .venv/bin/python benchmarks/bench_convert.py [--images 64115] [--persons 262465] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from vtpose.keypoints import PERSON_CATEGORY

RESULTS = Path(__file__).resolve().parent / "CONVERT_RESULTS.md"
# COCO's commonest image sizes (width, height), pixels.
SIZES = np.array([(640, 480), (640, 427), (480, 640), (427, 640), (640, 426), (500, 375), (640, 425), (612, 612)])


def make_coco(n_images: int, n_persons: int, seed: int = 0) -> dict:
    """A synthetic COCO person-keypoints dict with COCO-like statistics; fixed seed, so the same every run."""
    rng = np.random.default_rng(seed)
    sizes = SIZES[rng.integers(0, len(SIZES), n_images)]
    images = [
        {"id": i + 1, "file_name": f"{i + 1:012d}.jpg", "width": int(w), "height": int(h)}
        for i, (w, h) in enumerate(sizes.tolist())
    ]
    # Every image gets one person, the rest are spread at random.
    image_of = np.concatenate([np.arange(n_images), rng.integers(0, n_images, n_persons - n_images)])
    w, h = sizes[image_of, 0].astype(float), sizes[image_of, 1].astype(float)
    bw = np.round(rng.uniform(0.05, 0.9, n_persons) * w, 2)
    bh = np.round(rng.uniform(0.05, 0.9, n_persons) * h, 2)
    x0 = np.round(rng.uniform(0, 1, n_persons) * (w - bw), 2)
    y0 = np.round(rng.uniform(0, 1, n_persons) * (h - bh), 2)
    kx = np.floor(x0[:, None] + rng.uniform(0, 1, (n_persons, 17)) * bw[:, None])
    ky = np.floor(y0[:, None] + rng.uniform(0, 1, (n_persons, 17)) * bh[:, None])
    v = rng.choice([0, 1, 2], size=(n_persons, 17), p=[0.35, 0.1, 0.55])
    v[rng.uniform(size=n_persons) < 0.38] = 0  # persons with no labelled keypoint
    crowd = rng.uniform(size=n_persons) < 0.01
    v[crowd] = 0
    kp = np.stack([np.where(v > 0, kx, 0), np.where(v > 0, ky, 0), v], axis=2).astype(np.int64).reshape(n_persons, 51)
    kp_lists = kp.tolist()
    nk = (v > 0).sum(axis=1).tolist()
    boxes = np.stack([x0, y0, bw, bh], axis=1).tolist()
    annotations = [
        {"id": j + 1, "image_id": int(image_of[j]) + 1, "category_id": 1, "iscrowd": int(crowd[j]),
         "bbox": boxes[j], "area": round(boxes[j][2] * boxes[j][3] * 0.6, 2), "keypoints": kp_lists[j],
         "num_keypoints": nk[j]}
        for j in range(n_persons)
    ]  # fmt: skip
    return {"images": images, "annotations": annotations, "categories": [PERSON_CATEGORY]}


CHILD_ULTRALYTICS = """
import sys, time, resource
from ultralytics.data.converter import convert_coco
t = time.perf_counter()
convert_coco(sys.argv[1], sys.argv[2], use_keypoints=True, cls91to80=False)
print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""
CHILD_VTPOSE = """
import sys, time, resource
from pathlib import Path
from vtpose.data import load_coco_json, write_yolo_labels
t = time.perf_counter()
coco = load_coco_json(sys.argv[1] + "/person_keypoints_train2017.json")
t_load = time.perf_counter() - t
write_yolo_labels(coco, Path(sys.argv[2]))
print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter() - t - t_load)
"""


def run_child(code: str, *args: str) -> list[float]:
    env = {**os.environ, "TQDM_DISABLE": "1"}
    out = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True, env=env)
    return [float(x) for x in out.stdout.strip().splitlines()[-1].split()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64115)
    parser.add_argument("--persons", type=int, default=262465)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each converter; the best is reported")
    parser.add_argument("--keep", type=Path, help="work folder to keep (default: a temp folder, removed)")
    args = parser.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="bench_convert_"))
    ann_dir = work / "annotations"
    ann_dir.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    coco = make_coco(args.images, args.persons)
    json_path = ann_dir / "person_keypoints_train2017.json"
    json_path.write_text(json.dumps(coco, separators=(",", ":")))
    n_kept = sum(1 for a in coco["annotations"] if not a["iscrowd"] and a["num_keypoints"] > 0)
    del coco
    json_mib = json_path.stat().st_size / 2**20
    print(f"generated {args.images} images, {args.persons} persons ({n_kept} kept) in {time.perf_counter() - t:.1f} s")

    try:
        # Alternate the two, several times, and keep each one's best: the machine is shared, so single runs
        # pick up other people's load.
        uc_runs, vt_runs = [], []
        for i in range(args.repeat):
            uc_runs.append(run_child(CHILD_ULTRALYTICS, str(ann_dir), str(work / f"ultralytics{i}")))
            vt_runs.append(run_child(CHILD_VTPOSE, str(ann_dir), str(work / f"vtpose{i}")))
        uc_s, uc_rss = min(r[0] for r in uc_runs), max(r[1] for r in uc_runs)
        vt_s, vt_rss, vt_core_s = min(r[0] for r in vt_runs), max(r[1] for r in vt_runs), min(r[2] for r in vt_runs)
        uc_med, vt_med = float(np.median([r[0] for r in uc_runs])), float(np.median([r[0] for r in vt_runs]))
        theirs = work / "ultralytics0" / "labels" / "person_keypoints_train2017"
        ours = work / "vtpose0"
        compared = 0
        for f in theirs.iterdir():
            if f.read_bytes() != (ours / f.name).read_bytes():
                raise SystemExit(f"label files differ: {f.name}")
            compared += 1
    finally:
        if args.keep is None:
            shutil.rmtree(work)

    ratio = uc_s / vt_s
    table = [
        f"| converter | best wall time of {args.repeat} (s) | median (s) | peak RSS (MiB) |",
        "|---|---|---|---|",
        f"| Ultralytics `convert_coco(use_keypoints=True)` | {uc_s:.2f} | {uc_med:.2f} | {uc_rss / 1024:.0f} |",
        f"| vtpose `load_coco_json` + `write_yolo_labels` | {vt_s:.2f} | {vt_med:.2f} | {vt_rss / 1024:.0f} |",
        f"| vtpose `write_yolo_labels` alone (JSON already parsed) | {vt_core_s:.2f} | | |",
    ]
    text = "\n".join(
        [
            "# COCO -> YOLO-pose label conversion benchmark",
            "",
            f"Synthetic COCO-train-sized person_keypoints JSON: {args.images} images, {args.persons} persons "
            f"({n_kept} with keypoints and not crowd, i.e. label rows), {json_mib:.0f} MiB "
            "of JSON. Both converters start from the JSON file and write one label file per image; each ran in "
            "its own process (peak RSS from getrusage). All "
            f"{compared} label files convert_coco wrote are byte-identical to vtpose's.",
            "",
            *table,
            "",
            f"**Ratio (convert_coco / vtpose, best times): {ratio:.1f}x**; on medians {uc_med / vt_med:.1f}x.",
            "",
            f"Machine: {platform.machine()}, {os.cpu_count()} CPU(s) (shared), Python {platform.python_version()}, "
            f"numpy {np.__version__}. Command: `.venv/bin/python benchmarks/bench_convert.py`.",
            "",
        ]
    )
    RESULTS.write_text(text)
    print(text)
    print(f"benchmark process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
