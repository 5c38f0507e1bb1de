"""COCO person-keypoints JSON: loading with clear errors, counting, and ingesting a COCO-format folder."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from vtpose.artifacts import PoseDataset
from vtpose.data._fs import atomic_dir, link_or_copy, safe_relative_name
from vtpose.errors import VtposeError

ANNOTATION_GLOB = "person_keypoints_*.json"


def load_coco_json(path: str | Path) -> dict[str, Any]:
    """Read a COCO JSON file, turning every way it can be unreadable into one clear message.

    Args:
        path: a COCO annotation file (e.g. `annotations/person_keypoints_val2017.json`).

    Returns:
        The parsed top-level object.

    Raises:
        VtposeError: the file is missing, is not UTF-8, is not valid JSON (the message gives line and column),
            or its top level is not an object.
    """
    path = Path(path)
    if not path.is_file():
        raise VtposeError(f"{path}: annotation file not found; check the dataset folder or the path in the config.")
    raw = path.read_bytes()
    try:
        # orjson parses COCO-train-sized files 3-4x faster than json; its errors are json.JSONDecodeError too.
        data = orjson.loads(raw)
    except json.JSONDecodeError:
        data = _load_with_json(raw, path)
    return _check_top_level(data, path)


def _load_with_json(raw: bytes, path: Path) -> Any:
    # The standard parser's messages (line, column, what was expected) are the ones a person can act on.
    try:
        return json.loads(raw.decode("utf-8"))
    except json.JSONDecodeError as e:
        raise VtposeError(
            f"{path}: broken JSON at line {e.lineno}, column {e.colno}: {e.msg}; "
            "fix or re-download the annotation file."
        ) from e
    except UnicodeDecodeError as e:
        raise VtposeError(f"{path}: not UTF-8 text at byte {e.start}; is this really a COCO JSON file?") from e


def _check_top_level(data: Any, path: Path) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise VtposeError(
            f"{path}: top level is a JSON {type(data).__name__}, a COCO file is an object with "
            "'images', 'annotations' and 'categories'."
        )
    return data


def split_counts(coco: dict[str, Any]) -> dict[str, int]:
    """Counts shown for a split in the dashboard.

    Args:
        coco: a parsed COCO JSON (assumed well-formed; use `validate_dataset` for untrusted data).

    Returns:
        images, annotations, persons_with_keypoints (non-crowd, num_keypoints > 0), crowd, negative_images
        (images no annotation points at).
    """
    anns = coco.get("annotations", [])
    annotated = {a.get("image_id") for a in anns}
    return {
        "images": len(coco.get("images", [])),
        "annotations": len(anns),
        "persons_with_keypoints": sum(1 for a in anns if not a.get("iscrowd") and a.get("num_keypoints", 0) > 0),
        "crowd": sum(1 for a in anns if a.get("iscrowd")),
        "negative_images": sum(1 for im in coco.get("images", []) if im.get("id") not in annotated),
    }


@dataclass(frozen=True)
class SplitSource:
    """Where one split of a COCO-format source lives.

    Attributes:
        annotation_file: its COCO JSON.
        image_dir: the folder its `file_name`s are relative to.
    """

    annotation_file: Path
    image_dir: Path


def ingest_coco_splits(
    sources: dict[str, SplitSource],
    dest_dir: Path,
    name: str,
    train_split: str,
    val_split: str,
    source: str,
    extra_info: dict[str, Any] | None = None,
) -> PoseDataset:
    """Copy COCO splits from anywhere into one PoseDataset folder, atomically.

    The JSON is copied byte for byte (no field is changed); images are hard-linked or copied, and only those the
    JSON names. Images the JSON names but the source lacks are counted in `info`, not fatal here: validation
    reports them per record and its `on_error` setting decides.

    Args:
        sources: dataset split name -> where it comes from.
        dest_dir: the dataset folder to create (replaced if it exists).
        name: dataset name for the manifest.
        train_split / val_split: which of `sources` trains and which evaluates.
        source: where the data came from, for the record.
        extra_info: merged into `info`.

    Returns:
        The dataset, manifest written.

    Raises:
        VtposeError: unreadable JSON, a `file_name` escaping the image folder, or unknown train/val split names.
    """
    for role, split in (("train_split", train_split), ("val_split", val_split)):
        if split not in sources:
            raise VtposeError(f"{role} {split!r} is not one of the ingested splits {sorted(sources)}; fix {role}.")
    dest_dir = Path(dest_dir)
    info: dict[str, Any] = {"splits": {}, **(extra_info or {})}
    with atomic_dir(dest_dir) as tmp:
        dataset = PoseDataset(tmp, name, list(sources), train_split, val_split, source=source, info=info)
        for split, src in sources.items():
            coco = load_coco_json(src.annotation_file)
            images = coco.get("images")
            if not isinstance(images, list):
                raise VtposeError(f"{src.annotation_file}: no 'images' list; this is not a COCO annotation file.")
            out_json = dataset.annotation_file(split)
            out_json.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src.annotation_file, out_json)
            missing: list[str] = []
            for im in images:
                file_name = im.get("file_name") if isinstance(im, dict) else None
                if not isinstance(file_name, str):
                    continue  # a schema problem: validation reports it with the record id
                rel = safe_relative_name(file_name, f"{src.annotation_file} image id {im.get('id')}")
                src_image = src.image_dir / rel
                if src_image.is_file():
                    link_or_copy(src_image, dataset.image_dir(split) / rel)
                else:
                    missing.append(file_name)
            dataset.image_dir(split).mkdir(parents=True, exist_ok=True)
            info["splits"][split] = {**split_counts(coco), "missing_images": len(missing)}
            if missing:
                info["splits"][split]["missing_image_examples"] = sorted(missing)[:5]
        dataset.write_manifest()
    dataset.root = dest_dir
    return dataset


def ingest_coco_folder(
    source_dir: Path,
    dest_dir: Path,
    splits: dict[str, str] | None = None,
    train_split: str = "train2017",
    val_split: str = "val2017",
    name: str | None = None,
) -> PoseDataset:
    """Ingest a COCO-format folder (like `data/coco-person-mini`) into the PoseDataset layout.

    Source layout: `annotations/person_keypoints_{split}.json` and `images/{split}/{file_name}`.

    Args:
        source_dir: the COCO-format folder.
        dest_dir: the dataset folder to create (replaced atomically if it exists).
        splits: source split name -> split name in the dataset (e.g. `{"train2017": "train", "val2017": "val"}`);
            None takes every `person_keypoints_*.json` found, names unchanged.
        train_split / val_split: dataset split names (after renaming) used for training and evaluation.
        name: dataset name; defaults to the source folder's name.

    Returns:
        The ingested dataset; `info["splits"]` holds per-split counts, including images the JSON names but the
        source lacks (`missing_images`).

    Raises:
        VtposeError: no annotation files, a named split missing, broken JSON, or a bad train/val split name.
    """
    source_dir = Path(source_dir)
    ann_dir = source_dir / "annotations"
    if splits is None:
        found = sorted(ann_dir.glob(ANNOTATION_GLOB))
        if not found:
            raise VtposeError(
                f"{ann_dir}: no {ANNOTATION_GLOB} files; a COCO-format folder needs "
                "annotations/person_keypoints_{split}.json and images/{split}/."
            )
        splits = {p.stem.removeprefix("person_keypoints_"): p.stem.removeprefix("person_keypoints_") for p in found}
    if len(set(splits.values())) != len(splits):
        raise VtposeError(f"splits {splits}: two source splits map to one dataset split name; give each its own.")
    sources = {
        dest_split: SplitSource(ann_dir / f"person_keypoints_{src_split}.json", source_dir / "images" / src_split)
        for src_split, dest_split in splits.items()
    }
    for dest_split, src in sources.items():
        if not src.annotation_file.is_file():
            raise VtposeError(
                f"{src.annotation_file}: not found for split {dest_split!r}; check `splits` or the folder."
            )
    return ingest_coco_splits(
        sources,
        dest_dir,
        name=name or source_dir.name,
        train_split=train_split,
        val_split=val_split,
        source=str(source_dir),
    )
