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
from vtpose.data.merge import merged_sources, source_names, source_part
from vtpose.keypoints import KEYPOINT_NAMES, NUM_KEYPOINTS
from vtpose.overlay import PREVIEW_IMAGES, draw_keypoints, fit_within


def _split_statistics(coco: dict[str, Any]) -> dict[str, Any]:
    """One split's counts and how often each joint is labelled."""
    annotations = coco["annotations"]
    with_keypoints = [a for a in annotations if not a.get("iscrowd") and a.get("num_keypoints", 0) > 0]
    labelled = np.zeros(NUM_KEYPOINTS, dtype=np.int64)
    for annotation in with_keypoints:
        labelled += np.asarray(annotation["keypoints"][2::3]) > 0
    images_with_person = {a["image_id"] for a in with_keypoints}
    return {
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


def dataset_statistics(dataset: PoseDataset) -> dict[str, Any]:
    """Per split: images, negatives, annotations, persons with keypoints, crowd, zero-keypoint persons, and
    how often each joint is labelled; plus whatever ingestion and validation recorded in `dataset.info`.

    A merged dataset (`vtpose.data.merge`) also gets "sources": name -> {"kind", "path", "weight", "splits": the
    same statistics of its own part of each split}.
    """
    cocos = {split: json.loads(dataset.annotation_file(split).read_text()) for split in dataset.splits}
    stats: dict[str, Any] = {
        "name": dataset.name,
        "source": dataset.source,
        "splits": {split: _split_statistics(coco) for split, coco in cocos.items()},
        "info": dataset.info,
    }
    sources = merged_sources(dataset)
    if sources:
        stats["sources"] = {
            s["name"]: {
                "kind": s["kind"],
                "path": s["path"],
                "weight": s["weight"],
                "splits": {
                    split: _split_statistics(source_part(coco, s["name"])[0])
                    for split, coco in cocos.items()
                    if s["name"] in source_names(coco)
                },
            }
            for s in sources
        }
    return stats


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
    for name, source in stats.get("sources", {}).items():
        own = source["splits"]
        lines += ["", f"## Source `{name}` ({source['kind']}, `{source['path']}`, weight {source['weight']:g})", ""]
        lines += ["| | " + " | ".join(own) + " |", "|---|" + "---|" * len(own)]
        lines += [f"| {row} | " + " | ".join(str(own[s][row]) for s in own) + " |" for row in rows]
        lines += ["| labelled joints per person | " + " | ".join(
            f"{sum(own[s]['labelled_per_keypoint'].values()) / max(own[s]['persons_with_keypoints'], 1):.1f}"
            for s in own
        ) + " |"]  # fmt: skip
        unlabelled = [j for j in KEYPOINT_NAMES if not any(own[s]["labelled_per_keypoint"][j] for s in own)]
        if unlabelled:
            lines += ["", f"Never labelled here (v=0, left out of the loss and of OKS): {', '.join(unlabelled)}."]
    extra = {k: v for k, v in stats.get("info", {}).items() if k != "skipped"}
    if extra:
        lines += ["", "## Ingestion and validation", "", "```json", json.dumps(extra, indent=2)[:4000], "```"]
    return "\n".join(lines) + "\n"


def dataset_previews(dataset: PoseDataset, count: int = PREVIEW_IMAGES, source: str | None = None) -> list[np.ndarray]:
    """BGR previews of the training split's images with the most labelled persons, ground truth drawn.

    Args:
        dataset: the dataset.
        count: at most this many images.
        source: in a merged dataset, only this source's images (None: any).
    """
    split = dataset.train_split
    coco = json.loads(dataset.annotation_file(split).read_text())
    if source is not None:
        coco = source_part(coco, source)[0]
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


def conversion_markdown(summary: dict[str, Any]) -> str:
    """The YOLO conversion summary (`vtpose.data.yolo.convert_to_yolo`) as Markdown: for a merged dataset, the
    merge first (per source: weight, training images and list entries, persons per split; then the totals)."""
    lines = ["# COCO -> YOLO-pose conversion", ""]
    sources = summary.get("sources") or {}
    if sources:
        splits = list(summary["splits"])
        lines += ["## The merge", ""]
        lines += [f"Training list: {summary['train_entries']} entries (each source's weight x its training images)."]
        head = ["source", "weight", "train images", "train entries"] + [f"persons in {s}" for s in splits]
        lines += ["", "| " + " | ".join(head) + " |", "|---|" + "---|" * (len(head) - 1)]
        for name, info in sources.items():
            persons = [str(info["splits"].get(s, {}).get("persons_kept", 0)) for s in splits]
            lines.append(
                f"| {name} | {info['weight']:g} | {info['train_images']} | {info['train_entries']} | "
                + " | ".join(persons)
                + " |"
            )
        total_images = sum(info["train_images"] for info in sources.values())
        totals = [str(summary["splits"][s]["persons_kept"]) for s in splits]
        lines.append(f"| **merged** | | {total_images} | {summary['train_entries']} | " + " | ".join(totals) + " |")
        lines += [""]
    lines += ["```json", json.dumps(summary, indent=2), "```"]
    return "\n".join(lines) + "\n"
