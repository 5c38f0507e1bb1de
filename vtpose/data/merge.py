"""Several validated datasets (COCO, MPII...) merged into one, which trains on all and is evaluated per source.

Layout of a merged `PoseDataset` (splits `MERGED_TRAIN` and `MERGED_VAL`):
    images/{train,val}/{source name}/{file_name}     each source in its own folder, so names cannot collide
    annotations/person_keypoints_{train,val}.json    one COCO JSON per split

Each source's train split goes into `train` and its val split into `val` (a source that trains and evaluates on one
split, like the 5-image MPII sample, is in both). Image records keep every key of the source's and get
`file_name` = `{source}/{file_name}`, `source` = the source's name and `source_id` = its id there; annotations get
`source_id` too. Ids are renumbered from 1, in source order and, within a source, in the order of its own ids, so
`source_part` gives back exactly the source's own COCO JSON (ids, records, order), only with the folder prefix:
pycocotools' scores of one source on the merged dataset are its scores alone. Persons keep their keypoints as the
source wrote them: MPII persons their 12 mapped joints, the 5 face joints unlabelled (v=0), and their "mpii"
record for PCKh.

Why v=0 is safe to train on: Ultralytics' pose loss (ultralytics 8.4.190, ultralytics/utils/loss.py,
`v8PoseLoss.calculate_keypoints_loss`) builds `kpt_mask = gt_kpt[..., 2] != 0` and `KeypointLoss.forward`
multiplies the per-joint OKS loss by it (rescaled by the labelled count), so an unlabelled joint is never pulled
anywhere. The same mask is the target of the keypoint-confidence BCE (`bce_pose(pred_kpt[..., 2], kpt_mask)`):
the model learns low confidence where a joint is unlabelled, as it already does for COCO's unlabelled joints.

The sampling weight of each source is applied when converting to YOLO (`train_list`): the training list names
each image once per draw, so a weight of 2 shows a source's images twice per epoch.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vtpose.artifacts import PoseDataset
from vtpose.data._fs import atomic_dir, link_or_copy, write_json
from vtpose.data.coco import load_coco_json, split_counts
from vtpose.errors import VtposeError
from vtpose.keypoints import PERSON_CATEGORY

MERGED_FORMAT = "merged"
MERGED_TRAIN = "train"
MERGED_VAL = "val"
# Keys a merged dataset adds to the records of its sources.
SOURCE_KEY = "source"
SOURCE_ID_KEY = "source_id"


@dataclass(frozen=True)
class SourceSpec:
    """One source of a merge, as the config names it.

    Attributes:
        name: folder and file-name prefix in the merged dataset, and the key of its metrics.
        kind: the reader ("coco_folder", "mpii", "mpii_mat", "coco2017"), for the record.
        path: where it was read from, for the record.
        weight: how often its training images are sampled per epoch (see `train_list`).
    """

    name: str
    kind: str = ""
    path: str = ""
    weight: float = 1.0


def is_merged(dataset: PoseDataset) -> bool:
    """Whether `dataset` was made by `merge_datasets`."""
    return dataset.info.get("format") == MERGED_FORMAT


def merged_sources(dataset: PoseDataset) -> list[dict[str, Any]]:
    """The sources of a merged dataset, in order (`merge_datasets`'s `info["sources"]`); [] for any other."""
    return list(dataset.info.get("sources", [])) if is_merged(dataset) else []


def source_names(coco: dict[str, Any]) -> list[str]:
    """The sources whose images a COCO dict holds, in order of first appearance; [] for a single-source one."""
    return list(dict.fromkeys(im[SOURCE_KEY] for im in coco["images"] if SOURCE_KEY in im))


def source_part(coco: dict[str, Any], name: str) -> tuple[dict[str, Any], dict[int, int]]:
    """One source's images and persons of a merged split, with the source's own ids.

    Args:
        coco: a merged split's COCO dict.
        name: the source.

    Returns:
        The COCO dict (file names keep their `{name}/` prefix, so the merged image folder serves it; the merge's
        `source`/`source_id` keys are dropped) and merged image id -> the source's image id.

    Raises:
        VtposeError: no image of the split is from `name`.
    """
    images = [im for im in coco["images"] if im.get(SOURCE_KEY) == name]
    if not images:
        raise VtposeError(f"no image of this split is from source {name!r}; sources here: {source_names(coco)}.")
    to_source = {im["id"]: im[SOURCE_ID_KEY] for im in images}
    drop = {SOURCE_KEY, SOURCE_ID_KEY}
    annotations = [
        {**{k: v for k, v in a.items() if k not in drop}, "id": a[SOURCE_ID_KEY], "image_id": to_source[a["image_id"]]}
        for a in coco["annotations"]
        if a["image_id"] in to_source
    ]
    part = {
        **coco,
        "images": [{**{k: v for k, v in im.items() if k not in drop}, "id": im[SOURCE_ID_KEY]} for im in images],
        "annotations": annotations,
    }
    return part, to_source


def train_entries(file_names: Sequence[str], weight: float) -> list[str]:
    """The training list's entries for one source's images under a sampling weight.

    The source gets round(weight x len(file_names)) entries, halves rounded up (a product below 0.5, no entry at
    all, is an error): every image floor(weight) times, and the remaining entries go to the images first by
    sha256 of their name, so which images are drawn once more is fixed by the names, not by their order or a
    random seed. Weight 1 lists each image once; 2.5 lists each twice and half of them a third time.

    Args:
        file_names: the source's training images (paths as the list should name them).
        weight: above 0; 1 lists each image once.

    Returns:
        The entries, sorted (an image named k times appears k times).

    Raises:
        VtposeError: a weight at or below 0, or so small that the source would get no entry.
    """
    if not weight > 0:
        raise VtposeError(f"sampling weight {weight}: must be above 0 (1 samples each image once per epoch).")
    total = math.floor(weight * len(file_names) + 0.5)
    if file_names and total == 0:
        raise VtposeError(
            f"sampling weight {weight:g} of {len(file_names)} images gives no training entry "
            f"(round({weight:g} x {len(file_names)}) = 0); raise it to at least {0.5 / len(file_names):.3g}."
        )
    copies, extra = divmod(total, len(file_names)) if file_names else (0, 0)
    ranked = sorted(file_names, key=lambda name: hashlib.sha256(name.encode("utf-8")).hexdigest())
    return sorted([*(name for name in file_names for _ in range(copies)), *ranked[:extra]])


def merge_datasets(parts: Sequence[tuple[SourceSpec, PoseDataset]], dest_dir: Path) -> PoseDataset:
    """Merge validated datasets into one (module docstring: layout, ids, what each record keeps).

    Args:
        parts: (source, its validated dataset) in the config's order; names must be unique.
        dest_dir: dataset folder to create (replaced atomically if it exists; nothing is left on failure).

    Returns:
        The merged dataset; `info["sources"]` lists each source: name, kind, path, weight, the dataset's name and
        splits, its own `info` (ingestion and validation counts) and its counts in the merged splits.

    Raises:
        VtposeError: no sources, a name used twice, or a source's images or annotations missing.
    """
    if not parts:
        raise VtposeError("nothing to merge: list at least one source under data.sources.")
    names = [spec.name for spec, _ in parts]
    if len(set(names)) != len(names):
        raise VtposeError(f"source names {names} repeat; give each entry of data.sources its own name.")
    dest_dir = Path(dest_dir)
    cocos: dict[str, dict[str, Any]] = {
        split: {"info": {"description": "merged by vtpose: " + " + ".join(names)}, "images": [], "annotations": [],
                "categories": [PERSON_CATEGORY]}
        for split in (MERGED_TRAIN, MERGED_VAL)
    }  # fmt: skip
    sources: list[dict[str, Any]] = []
    with atomic_dir(dest_dir) as tmp:
        merged = PoseDataset(
            tmp,
            "+".join(names),
            [MERGED_TRAIN, MERGED_VAL],
            MERGED_TRAIN,
            MERGED_VAL,
            source="; ".join(f"{spec.name}: {dataset.source}" for spec, dataset in parts),
        )
        for spec, dataset in parts:
            counts: dict[str, Any] = {}
            for merged_split, split in ((MERGED_TRAIN, dataset.train_split), (MERGED_VAL, dataset.val_split)):
                coco = load_coco_json(dataset.annotation_file(split))
                _append_source(cocos[merged_split], coco, spec.name)
                for image in sorted(coco["images"], key=lambda im: im["id"]):
                    link_or_copy(
                        dataset.image_dir(split) / image["file_name"],
                        merged.image_dir(merged_split) / spec.name / image["file_name"],
                    )
                counts[merged_split] = split_counts(coco)
            sources.append(
                {
                    **asdict(spec),
                    "dataset": dataset.name,
                    "train_split": dataset.train_split,
                    "val_split": dataset.val_split,
                    "info": dataset.info,
                    "splits": counts,
                }
            )
        for split, coco in cocos.items():
            write_json(merged.annotation_file(split), coco)
            merged.image_dir(split).mkdir(parents=True, exist_ok=True)
        merged.info = {
            "format": MERGED_FORMAT,
            "sources": sources,
            "splits": {split: split_counts(coco) for split, coco in cocos.items()},
        }
        merged.write_manifest()
    merged.root = dest_dir
    return merged


def _append_source(merged: dict[str, Any], coco: dict[str, Any], name: str) -> None:
    """Add one source's split to a merged split: prefixed names, renumbered ids, the source's own ids kept.

    Records keep the source's order (the order of persons in an image is the order of rows in its label file);
    new ids follow the order of the source's ids, so sorting by either gives the same order.
    """
    first_image = len(merged["images"]) + 1
    first_annotation = len(merged["annotations"]) + 1
    new_id = {old: first_image + rank for rank, old in enumerate(sorted(im["id"] for im in coco["images"]))}
    new_annotation_id = {
        old: first_annotation + rank for rank, old in enumerate(sorted(a["id"] for a in coco["annotations"]))
    }
    for image in coco["images"]:
        merged["images"].append(
            {
                **image,
                "id": new_id[image["id"]],
                "file_name": f"{name}/{image['file_name']}",
                SOURCE_KEY: name,
                SOURCE_ID_KEY: image["id"],
            }
        )
    for annotation in coco["annotations"]:
        merged["annotations"].append(
            {
                **annotation,
                "id": new_annotation_id[annotation["id"]],
                "image_id": new_id[annotation["image_id"]],
                SOURCE_ID_KEY: annotation["id"],
            }
        )
