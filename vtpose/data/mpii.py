"""MPII Human Pose (mmpose JSON) -> COCO person-keypoints, with the standard 12-joint map."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from vtpose.artifacts import PoseDataset
from vtpose.data._fs import atomic_dir, link_or_copy, safe_relative_name, write_json
from vtpose.data.coco import split_counts
from vtpose.errors import VtposeError
from vtpose.keypoints import KEYPOINT_NAMES, MPII_JOINT_NAMES, MPII_TO_COCO, NUM_KEYPOINTS, PERSON_CATEGORY

MPII_ANNOTATION = "annotations/test_mpii.json"
# A box around the labelled joints is too tight: hands extend past wrists, feet past ankles, hair past head_top.
# mmpose pads joint boxes by 1.25 for top-down crops; we pad the same, split evenly on both sides.
BOX_PADDING = 1.25


def _val_rank(image_name: str) -> str:
    """A stable pseudo-random rank for an image: the split does not depend on list order or Python's hash seed."""
    return hashlib.sha256(image_name.encode("utf-8")).hexdigest()


def assign_splits(names: list[str], split: str, val_fraction: float) -> tuple[dict[str, str], list[str]]:
    """Each image's split: all in `split`, or `{split}_train` / `{split}_val` ranked by sha256 of the name.

    Returns:
        image name -> split name, and the split names in order (train first).
    """
    if val_fraction <= 0:
        return dict.fromkeys(names, split), [split]
    n_val = min(len(names) - 1, int(np.ceil(len(names) * val_fraction)))
    val_names = set(sorted(names, key=_val_rank)[:n_val])
    split_of = {n: f"{split}_val" if n in val_names else f"{split}_train" for n in names}
    return split_of, [f"{split}_train", f"{split}_val"]


def mpii_person_to_coco(
    joints: list[list[float]], joints_vis: list[int], width: int, height: int, keep_outside: bool = False
) -> tuple[list[float], list[float], float, int, int]:
    """Map one MPII person to COCO keypoints, box and area.

    Args:
        joints: 16 x [x, y], 1-based pixels (MATLAB convention), MPII joint order (`MPII_JOINT_NAMES`).
        joints_vis: 16 flags, 1 = labelled. (mmpose's JSON keeps no occlusion flag, so labelled joints become
            COCO visibility 2.)
        width / height: image size, pixels.
        keep_outside: keep labelled joints outside the image as they are, for validation to report (and drop
            the person with on_error "skip") instead of unlabelling them here.

    Returns:
        keypoints: 51 values, COCO order, (x, y, v) with 0-based pixels; unmapped or unlabelled joints (0, 0, 0).
            Labelled joints outside the image are set to (0, 0, 0) too (unless `keep_outside`): COCO never labels
            off-image points and Ultralytics rejects a label file with coordinates outside [-0.01, 1.01].
        bbox: [x, y, w, h] pixels: the box around all labelled MPII joints (head_top and neck included, since they
            bound the person), padded by `BOX_PADDING` and clipped to the image.
        area: bbox w * h, pixels^2. MPII has no masks; COCO's `area` is the mask area, which COCOeval uses for OKS
            scale and area ranges, so OKS on MPII-derived ground truth is somewhat more lenient than on COCO.
        num_keypoints: labelled COCO joints.
        dropped_outside: labelled mapped joints dropped for lying outside the image.
    """
    xy = np.asarray(joints, dtype=np.float64).reshape(len(MPII_JOINT_NAMES), 2) - 1.0  # 1-based -> 0-based
    vis = np.asarray(joints_vis, dtype=np.int64).reshape(len(MPII_JOINT_NAMES)) > 0
    kpts = np.zeros((NUM_KEYPOINTS, 3), dtype=np.float64)
    dropped = 0
    for mpii_idx, coco_idx in MPII_TO_COCO.items():
        if not vis[mpii_idx]:
            continue
        x, y = xy[mpii_idx]
        if not keep_outside and not (0.0 <= x <= width and 0.0 <= y <= height):
            dropped += 1
            continue
        kpts[coco_idx] = (x, y, 2.0)
    labelled = xy[vis]
    if len(labelled):
        lo, hi = labelled.min(axis=0), labelled.max(axis=0)
        center, size = (lo + hi) / 2.0, (hi - lo) * BOX_PADDING
        x0, y0 = np.maximum(center - size / 2.0, 0.0)
        x1, y1 = np.minimum(center + size / 2.0, (width, height))
        bbox = [round(float(x0), 2), round(float(y0), 2), round(float(x1 - x0), 2), round(float(y1 - y0), 2)]
    else:
        bbox = [0.0, 0.0, 0.0, 0.0]
    area = round(bbox[2] * bbox[3], 4)
    keypoints = [float(v) if i % 3 < 2 else int(v) for i, v in enumerate(kpts.reshape(-1).tolist())]
    num_keypoints = int((kpts[:, 2] > 0).sum())
    return keypoints, bbox, area, num_keypoints, dropped


def ingest_mpii(
    source_dir: Path,
    dest_dir: Path,
    split: str = "mpii",
    val_fraction: float = 0.0,
    annotation_file: str = MPII_ANNOTATION,
    name: str | None = None,
) -> PoseDataset:
    """Ingest MPII in mmpose's JSON format (like `data/mpii-sample`) as a COCO person-keypoints dataset.

    Splits: MPII's official test labels are withheld and mmpose's "valid" list is carved out of the training
    images, so one annotation file carries no train/val split of its own. With `val_fraction=0` (the default, and
    the right choice for the 5-image sample) everything goes into one split, `split`, used for both training and
    evaluation: fine for a smoke run, meaningless as a held-out score. With `val_fraction > 0` the images are
    ranked by sha256 of their file name and the first `ceil(n * val_fraction)` form `{split}_val`, the rest
    `{split}_train`: deterministic, independent of list order, and an image never moves split when others are
    added. All persons of an image stay in one split.

    Ids: image id = the numeric file stem (MPII names are 9-digit numbers) else its 1-based rank in sorted order;
    annotation ids count from 1 in (file name, order in the JSON) order.

    Args:
        source_dir: folder with `annotation_file` and `images/`.
        dest_dir: dataset folder to create (replaced atomically if it exists).
        split: split name (or prefix when `val_fraction > 0`).
        val_fraction: share of images held out for validation, in [0, 1).
        annotation_file: path of the mmpose JSON inside `source_dir`.
        name: dataset name; defaults to the source folder's name.

    Returns:
        The dataset; `info` records the joint map, the padding and any joints dropped for lying off-image.

    Raises:
        VtposeError: a bad `val_fraction`, a missing/unreadable JSON or image, or a malformed person record.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise VtposeError(f"val_fraction {val_fraction}: must be in [0, 1); use 0 to train and evaluate on one split.")
    source_dir = Path(source_dir)
    ann_path = source_dir / annotation_file
    if not ann_path.is_file():
        raise VtposeError(f"{ann_path}: MPII annotation file not found; check the MPII source folder in the config.")
    try:
        persons = json.loads(ann_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise VtposeError(f"{ann_path}: broken JSON at line {e.lineno}, column {e.colno}: {e.msg}.") from e
    if not isinstance(persons, list):
        raise VtposeError(f"{ann_path}: expected a list of persons (mmpose MPII format), got {type(persons).__name__}.")

    by_image: dict[str, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
    for i, p in enumerate(persons):
        ok = (
            isinstance(p, dict)
            and isinstance(p.get("image"), str)
            and isinstance(p.get("joints"), list)
            and len(p["joints"]) == len(MPII_JOINT_NAMES)
            and isinstance(p.get("joints_vis"), list)
            and len(p["joints_vis"]) == len(MPII_JOINT_NAMES)
        )
        if not ok:
            raise VtposeError(
                f"{ann_path}: person #{i} lacks 'image', 16 'joints' [x, y] or 16 'joints_vis'; fix or remove it."
            )
        by_image[p["image"]].append((i, p))

    dropped_total = 0

    def persons_in(image_name: str, width: int, height: int) -> list[dict[str, Any]]:
        nonlocal dropped_total
        records = []
        for _, p in by_image[image_name]:
            kpts, bbox, area, nk, dropped = mpii_person_to_coco(p["joints"], p["joints_vis"], width, height)
            dropped_total += dropped
            records.append({"keypoints": kpts, "num_keypoints": nk, "bbox": bbox, "area": area})
        return records

    return write_mpii_dataset(
        source_dir, Path(dest_dir), name, sorted(by_image), split, val_fraction,
        annotations=ann_path, images_fix="restore it (dvc pull)", where=lambda image: f"{ann_path} image {image!r}",
        persons_in=persons_in,
        info=lambda: {"format": "mpii (mmpose JSON)", "joints_dropped_outside_image": dropped_total},
    )  # fmt: skip


def write_mpii_dataset(
    source_dir: Path,
    dest_dir: Path,
    name: str | None,
    image_names: list[str],
    split: str,
    val_fraction: float,
    *,
    annotations: Path,
    images_fix: str,
    where: Callable[[str], str],
    persons_in: Callable[[str, int, int], list[dict[str, Any]]],
    info: Callable[[], dict[str, Any]],
) -> PoseDataset:
    """The COCO dataset both MPII readers write: splits, image records, persons, the manifest, atomically.

    Args:
        source_dir: the MPII folder, with `images/`.
        dest_dir: dataset folder to create (replaced atomically if it exists).
        name: dataset name; defaults to the source folder's name.
        image_names: the labelled images, in the order ids are given (sorted).
        split, val_fraction: as `assign_splits` takes them.
        annotations: the annotation file, for messages and the description.
        images_fix: what to do about a missing image ("restore it (dvc pull)").
        where: an image's record as messages name it.
        persons_in: image name, width, height -> its persons' COCO fields (keypoints, num_keypoints, bbox, area and
            any extra keys), in order; called once per image, before `info`.
        info: the reader's own `dataset.info` entries (format, counts), merged over the common ones.
    """
    split_of, splits = assign_splits(image_names, split, val_fraction)
    cocos: dict[str, dict[str, Any]] = {
        s: {"info": {"description": f"MPII via vtpose from {annotations}"}, "images": [], "annotations": [],
            "categories": [PERSON_CATEGORY]}
        for s in splits
    }  # fmt: skip
    ann_id = 0
    with atomic_dir(dest_dir) as tmp:
        dataset = PoseDataset(tmp, name or source_dir.name, splits, splits[0], splits[-1], source=str(source_dir))
        for rank, image_name in enumerate(image_names, start=1):
            rel = safe_relative_name(image_name, where(image_name))
            src_image = source_dir / "images" / rel
            try:
                with Image.open(src_image) as im:
                    width, height = im.size
            except FileNotFoundError as e:
                raise VtposeError(f"{src_image}: image named in {annotations} is missing; {images_fix}.") from e
            except UnidentifiedImageError as e:
                raise VtposeError(f"{src_image}: not a readable image; re-download it.") from e
            stem = Path(image_name).stem
            image_id = int(stem) if stem.isdigit() else rank
            s = split_of[image_name]
            cocos[s]["images"].append({"id": image_id, "file_name": image_name, "width": width, "height": height})
            link_or_copy(src_image, dataset.image_dir(s) / rel)
            for person in persons_in(image_name, width, height):
                ann_id += 1
                cocos[s]["annotations"].append(
                    {"id": ann_id, "image_id": image_id, "category_id": PERSON_CATEGORY["id"], "iscrowd": 0, **person}
                )
        for s in splits:
            write_json(dataset.annotation_file(s), cocos[s])
            dataset.image_dir(s).mkdir(parents=True, exist_ok=True)
        own = info()
        dataset.info = {
            "format": own.pop("format"),
            "joint_map": {MPII_JOINT_NAMES[m]: KEYPOINT_NAMES[c] for m, c in MPII_TO_COCO.items()},
            "box_padding": BOX_PADDING,
            "val_fraction": val_fraction,
            **own,
            "splits": {s: split_counts(cocos[s]) for s in splits},
        }
        dataset.write_manifest()
    dataset.root = dest_dir
    return dataset
