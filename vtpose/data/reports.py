"""What the dashboard shows for a dataset: per-split statistics, the same as Markdown, and previews of the
training split with its ground-truth skeletons drawn.

Pure functions over `PoseDataset`; the dataset materializer only saves what these return.
"""

from __future__ import annotations

import json
from typing import Any

import cv2
import numpy as np

from vtpose.artifacts import PoseDataset
from vtpose.keypoints import KEYPOINT_NAMES, NUM_KEYPOINTS
from vtpose.overlay import PREVIEW_IMAGES, draw_keypoints, fit_within


def dataset_statistics(dataset: PoseDataset) -> dict[str, Any]:
    """Per split: images, negatives, annotations, persons with keypoints, crowd, zero-keypoint persons, and
    how often each joint is labelled; plus whatever ingestion and validation recorded in `dataset.info`."""
    splits: dict[str, Any] = {}
    for split in dataset.splits:
        coco = json.loads(dataset.annotation_file(split).read_text())
        annotations = coco["annotations"]
        with_keypoints = [a for a in annotations if not a.get("iscrowd") and a.get("num_keypoints", 0) > 0]
        labelled = np.zeros(NUM_KEYPOINTS, dtype=np.int64)
        for annotation in with_keypoints:
            labelled += np.asarray(annotation["keypoints"][2::3]) > 0
        images_with_person = {a["image_id"] for a in with_keypoints}
        splits[split] = {
            "images": len(coco["images"]),
            "images_without_person": len(coco["images"]) - len(images_with_person),
            "annotations": len(annotations),
            "persons_with_keypoints": len(with_keypoints),
            "crowd": sum(1 for a in annotations if a.get("iscrowd")),
            "persons_without_keypoints": sum(
                1 for a in annotations if not a.get("iscrowd") and a.get("num_keypoints", 0) == 0
            ),
            "labelled_per_keypoint": dict(zip(KEYPOINT_NAMES, labelled.tolist(), strict=True)),
        }
    return {"name": dataset.name, "source": dataset.source, "splits": splits, "info": dataset.info}


def dataset_markdown(stats: dict[str, Any]) -> str:
    """The statistics as a Markdown report."""
    splits = stats["splits"]
    names = list(splits)
    rows = [
        "images",
        "images_without_person",
        "annotations",
        "persons_with_keypoints",
        "persons_without_keypoints",
        "crowd",
    ]
    lines = [f"# Dataset `{stats['name']}`", "", f"Source: `{stats['source']}`", ""]
    lines += ["| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    lines += [f"| {row} | " + " | ".join(str(splits[s][row]) for s in names) + " |" for row in rows]
    skipped = stats.get("info", {}).get("skipped", {})
    if skipped or "skipped" in stats.get("info", {}):
        lines += ["| skipped by validation | " + " | ".join(str(skipped.get(s, 0)) for s in names) + " |"]
    lines += ["", "## Labelled keypoints per joint", "", "| joint | " + " | ".join(names) + " |"]
    lines += ["|---|" + "---|" * len(names)]
    for joint in KEYPOINT_NAMES:
        lines.append(f"| {joint} | " + " | ".join(str(splits[s]["labelled_per_keypoint"][joint]) for s in names) + " |")
    extra = {k: v for k, v in stats.get("info", {}).items() if k != "skipped"}
    if extra:
        lines += ["", "## Ingestion and validation", "", "```json", json.dumps(extra, indent=2)[:4000], "```"]
    return "\n".join(lines) + "\n"


def dataset_previews(dataset: PoseDataset, count: int = PREVIEW_IMAGES) -> list[np.ndarray]:
    """BGR previews of the training split's images with the most labelled persons, ground truth drawn."""
    split = dataset.train_split
    coco = json.loads(dataset.annotation_file(split).read_text())
    by_image: dict[int, list[dict[str, Any]]] = {}
    for annotation in coco["annotations"]:
        if not annotation.get("iscrowd") and annotation.get("num_keypoints", 0) > 0:
            by_image.setdefault(annotation["image_id"], []).append(annotation)
    images = {image["id"]: image for image in coco["images"]}
    chosen = sorted(by_image, key=lambda i: (-sum(a["num_keypoints"] for a in by_image[i]), i))[:count]
    previews = []
    for image_id in chosen:
        bgr = cv2.imread(str(dataset.image_dir(split) / images[image_id]["file_name"]))
        if bgr is None:
            continue
        for annotation in by_image[image_id]:
            keypoints = np.asarray(annotation["keypoints"], dtype=np.float32).reshape(-1, 3)
            draw_keypoints(bgr, keypoints, min_confidence=1, color=None)
        previews.append(fit_within(bgr)[0])
    return previews
