"""COCO person keypoints -> Ultralytics YOLO-pose labels, data.yaml and a conversion summary.

Label format, matching `ultralytics.data.converter.convert_coco(use_keypoints=True, cls91to80=False)` byte for
byte where both write a file: one `.txt` per image, one line per person:
    `0 cx cy w h x1 y1 v1 ... x17 y17 v17`
with the box centre and size divided by the image width/height, keypoint x by width, y by height, visibility
left as 0/1/2, every number printed with `%g` (6 significant digits) and single spaces. Unlabelled keypoints are
`0 0 0`; Ultralytics' pose loader reads the third value as the visibility and masks v == 0 out of the loss.

Which persons are written (the evaluator's rules, so training and pycocotools scoring agree):
    - crowd regions (`iscrowd: 1`) are left out: COCOeval matches them as "ignore" regions, never as persons;
    - persons with no labelled keypoint are left out: `COCOeval(..., "keypoints")` sets
      `ignore = num_keypoints == 0`, so such a person is neither a true positive nor a miss. Like convert_coco we
      test the visibilities themselves (any v != 0); validation guarantees `num_keypoints` agrees;
    - boxes with zero width or height are left out (convert_coco does the same);
    - identical rows within one image are written once (convert_coco's `dict.fromkeys`).

Deliberate differences from convert_coco:
    - every image in the JSON gets a label file, negatives (no annotation) an empty one, so the dataset says
      explicitly that they are backgrounds (convert_coco writes no file for them; Ultralytics treats a missing
      label as a background too, so training sees the same data). `include_negatives=False` leaves negatives
      out entirely (no image, no label), which is how Ultralytics' own coco-pose subset is built;
    - the class is always 0 (person) and annotations of any other category are skipped and counted;
      convert_coco writes `category_id - 1`, which is 0 for persons, so person rows are identical;
    - labels go to `labels/{split}/` beside `images/{split}/` (convert_coco: `labels/person_keypoints_{split}/`,
      no images);
    - nothing is appended to existing files: the output folder is built in a temp folder and renamed, so a
      re-run gives the same bytes and a failure leaves nothing behind.

Speed: `write_yolo_labels` pulls every number out of the JSON once into numpy arrays, normalizes all persons in
a few vectorized operations, and formats each line with a single `%` over a precomputed format string; convert_coco
does several small numpy operations per person. See benchmarks/bench_convert.py.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from vtpose.artifacts import PoseDataset, YoloPoseDataset
from vtpose.data._fs import atomic_dir, link_or_copy, safe_relative_name, write_json
from vtpose.data.coco import load_coco_json
from vtpose.data.merge import merged_sources, source_names, source_part, train_entries
from vtpose.errors import VtposeError
from vtpose.keypoints import FLIP_IDX, NUM_KEYPOINTS, PERSON_CATEGORY_ID

__all__ = ["convert_to_yolo", "write_data_yaml", "write_yolo_labels"]

DATA_YAML = "data.yaml"
SUMMARY_JSON = "summary.json"
# A merged dataset's training list: one `./images/train/{source}/{file}` line per draw (its source's weight).
TRAIN_LIST = "train.txt"
_NKV = 3 * NUM_KEYPOINTS  # 51 values per person
_ROW_FORMAT = " ".join(["%g"] * (5 + _NKV)) + "\n"  # class, 4 box values, 17 x (x, y, v): 56 numbers


def _fail(where: str, what: str) -> VtposeError:
    return VtposeError(f"{where}: {what}; run validate_dataset on it (validation.on_error: skip drops bad records).")


def _annotation_arrays(coco: dict[str, Any], where: str) -> dict[str, np.ndarray]:
    """Every number the labels need, as flat numpy arrays, in annotation order.

    Returns:
        image_index: (N,) int64, index into `coco["images"]`.
        crowd: (N,) bool.
        person: (N,) bool, category is person.
        bbox: (N, 4) float64, [x, y, w, h] pixels.
        keypoints: (N, 17, 3) float64, pixels and visibility.
    """
    images = coco["images"]
    anns = coco["annotations"]
    n = len(anns)
    id_to_index = {im["id"]: i for i, im in enumerate(images)}
    if len(id_to_index) != len(images):
        raise _fail(where, "duplicate image ids")
    try:
        image_index = np.fromiter((id_to_index[a["image_id"]] for a in anns), dtype=np.int64, count=n)
    except KeyError as e:
        bad = next(a for a in anns if a["image_id"] not in id_to_index)
        raise _fail(where, f"annotation id {bad.get('id')} names unknown image_id {e.args[0]}") from e
    crowd = np.fromiter((bool(a.get("iscrowd", 0)) for a in anns), dtype=bool, count=n)
    person = np.fromiter((a.get("category_id") == PERSON_CATEGORY_ID for a in anns), dtype=bool, count=n)
    zeros = [0] * _NKV
    kp_lists = [a.get("keypoints") or zeros for a in anns]  # crowd regions in other datasets may lack keypoints
    box_lists = [a["bbox"] for a in anns]
    if any(len(k) != _NKV for k in kp_lists) or any(len(b) != 4 for b in box_lists):
        bad = next(a for a, k, b in zip(anns, kp_lists, box_lists, strict=True) if len(k) != _NKV or len(b) != 4)
        raise _fail(where, f"annotation id {bad.get('id')} needs 4 bbox values and {_NKV} keypoint values")
    # fromiter over one flat chain avoids building N small arrays (np.array on a list of lists is ~3x slower).
    bbox = np.fromiter(itertools.chain.from_iterable(box_lists), dtype=np.float64, count=4 * n).reshape(n, 4)
    kpts = np.fromiter(itertools.chain.from_iterable(kp_lists), dtype=np.float64, count=_NKV * n)
    return {
        "image_index": image_index,
        "crowd": crowd,
        "person": person,
        "bbox": bbox,
        "keypoints": kpts.reshape(n, NUM_KEYPOINTS, 3),
    }


def write_yolo_labels(
    coco: dict[str, Any], labels_dir: Path, include_negatives: bool = True, where: str = "COCO JSON"
) -> dict[str, Any]:
    """Write one YOLO-pose label file per image from a COCO person-keypoints dict; needs no image files.

    Args:
        coco: parsed COCO JSON with `images` (id, file_name, width, height) and `annotations`.
        labels_dir: folder to write `{file_name stem}.txt` into (sub-folders of `file_name` are kept).
        include_negatives: write empty label files for images with no annotation at all.
        where: the source file, for error messages.

    Returns:
        Counts: images, label_files, empty_label_files, negative_images, persons_kept, crowd_skipped,
        zero_keypoint_skipped, empty_box_skipped, other_category_skipped, duplicate_rows_dropped.

    Raises:
        VtposeError: duplicate image ids, an annotation naming an unknown image, wrong value counts, a
            non-positive image size, or a file_name escaping `labels_dir`.
    """
    images = coco["images"]
    arr = _annotation_arrays(coco, where)
    widths = np.array([im["width"] for im in images], dtype=np.float64)
    heights = np.array([im["height"] for im in images], dtype=np.float64)
    if len(images) and (widths.min() <= 0 or heights.min() <= 0):
        raise _fail(where, "an image has a non-positive width or height")

    idx = arr["image_index"]
    w, h = widths[idx], heights[idx]
    box = arr["bbox"]
    # Same float64 operations in the same order as convert_coco, so the printed digits are identical.
    norm_box = np.empty_like(box)
    norm_box[:, 0] = (box[:, 0] + box[:, 2] / 2) / w
    norm_box[:, 1] = (box[:, 1] + box[:, 3] / 2) / h
    norm_box[:, 2] = box[:, 2] / w
    norm_box[:, 3] = box[:, 3] / h
    kp = arr["keypoints"]
    labelled = (kp[:, :, 2] != 0).any(axis=1)
    good_box = (norm_box[:, 2] > 0) & (norm_box[:, 3] > 0)
    crowd, person = arr["crowd"], arr["person"]
    keep = person & ~crowd & good_box & labelled

    sel = np.flatnonzero(keep)
    sel = sel[np.argsort(idx[sel], kind="stable")]  # group by image, JSON order within an image
    rows = np.empty((len(sel), 5 + _NKV), dtype=np.float64)
    rows[:, 0] = 0.0  # class 0: person
    rows[:, 1:5] = norm_box[sel]
    rows[:, 5:] = (kp[sel] / np.stack([w[sel], h[sel], np.ones(len(sel))], axis=1)[:, None, :]).reshape(-1, _NKV)
    row_image = idx[sel]
    # Boundaries of each image's run of rows.
    starts = np.flatnonzero(np.r_[True, row_image[1:] != row_image[:-1]]) if len(sel) else np.array([], np.int64)
    ends = np.r_[starts[1:], len(sel)]
    row_lists = rows.tolist()

    texts: dict[int, str] = {}
    duplicates = 0
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        if e - s == 1:
            texts[int(row_image[s])] = _ROW_FORMAT % tuple(row_lists[s])
        else:
            unique = dict.fromkeys(map(tuple, row_lists[s:e]))
            duplicates += (e - s) - len(unique)
            texts[int(row_image[s])] = "".join([_ROW_FORMAT % r for r in unique])

    annotated = np.zeros(len(images), dtype=bool)
    annotated[idx] = True
    labels_dir = Path(labels_dir)
    labels_dir.mkdir(parents=True, exist_ok=True)
    base = os.fspath(labels_dir)
    made_dirs = {""}
    written: set[str] = set()
    empty = 0
    for i, im in enumerate(images):
        if not annotated[i] and not include_negatives:
            continue
        name = im["file_name"]
        # Plain strings, not pathlib: with 64k images pathlib's parsing alone costs over a second. A flat COCO
        # name takes the fast path; anything with a separator or a drive goes through the full safety check.
        if isinstance(name, str) and name not in ("", ".", "..") and not any(c in name for c in "/\\:"):
            rel = os.path.splitext(name)[0] + ".txt"
        else:
            rel = safe_relative_name(name, f"{where} image id {im['id']}").with_suffix(".txt").as_posix()
        if rel in written:
            raise _fail(where, f"two images share the label file {rel} (duplicate file_name)")
        written.add(rel)
        parent = os.path.dirname(rel)
        if parent not in made_dirs:
            os.makedirs(os.path.join(base, parent), exist_ok=True)
            made_dirs.add(parent)
        text = texts.get(i, "")
        empty += not text
        with open(os.path.join(base, rel), "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
    not_crowd = person & ~crowd
    return {
        "images": len(images),
        "label_files": len(written),
        "empty_label_files": empty,
        "negative_images": int((~annotated).sum()),
        "persons_kept": len(sel) - duplicates,
        "crowd_skipped": int((person & crowd).sum()),
        "empty_box_skipped": int((not_crowd & ~good_box).sum()),
        "zero_keypoint_skipped": int((not_crowd & good_box & ~labelled).sum()),
        "other_category_skipped": int((~person).sum()),
        "duplicate_rows_dropped": duplicates,
    }


def write_data_yaml(
    root: Path,
    absolute: bool,
    train_split: str | None = None,
    val_split: str | None = None,
    train_list: str | None = None,
) -> Path:
    """Write (or rewrite) `root/data.yaml` for Ultralytics.

    How Ultralytics finds the dataset (`ultralytics.data.utils.check_det_dataset`): the root is the YAML's
    `path` key if present, else the YAML file's own folder. A relative `path` (even `.`) is resolved against
    the current working directory, and only if that does not exist against Ultralytics' DATASETS_DIR, never
    against the YAML's folder. So the relocatable form omits `path` altogether; `train`/`val` are relative to
    the root either way.

    Args:
        root: the YOLO dataset folder (with `images/{split}/`).
        absolute: True writes `path: <root, absolute>` (for a run that copies the YAML elsewhere); False omits
            `path`, so the folder works wherever it is moved.
        train_split / val_split: split folders under `images/`; None keeps what the existing data.yaml says.
        train_list: train from this list file under `root` (one `./images/...` line per draw: a merged dataset's
            weighted sampling, `TRAIN_LIST`) instead of the `train_split` folder.

    Returns:
        The YAML's path.

    Raises:
        VtposeError: no split names given and no readable data.yaml to take them from.
    """
    root = Path(root)
    target = root / DATA_YAML
    train = train_list if train_list else f"images/{train_split}" if train_split else None
    val = f"images/{val_split}" if val_split else None
    if train is None or val is None:
        if not target.is_file():
            raise VtposeError(f"{target}: missing; pass train_split and val_split to write a new one.")
        old = yaml.safe_load(target.read_text(encoding="utf-8")) or {}
        train, val = train or str(old["train"]), val or str(old["val"])
    data: dict[str, Any] = {"path": str(root.resolve())} if absolute else {}
    data |= {
        "train": train,
        "val": val,
        "kpt_shape": [NUM_KEYPOINTS, 3],
        "flip_idx": list(FLIP_IDX),
        "names": {0: "person"},
    }
    header = "# Ultralytics YOLO-pose dataset written by vtpose.data.yolo (no `path`: the root is this folder)\n"
    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=None)
    target.write_text(("" if absolute else header) + text, encoding="utf-8")
    return target


def _sum_counts(parts: list[dict[str, Any]]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for counts in parts:
        for k, v in counts.items():
            totals[k] = totals.get(k, 0) + v
    return totals


def convert_to_yolo(dataset: PoseDataset, dest_dir: Path, include_negatives: bool = True) -> YoloPoseDataset:
    """Convert a (validated) PoseDataset into an Ultralytics YOLO-pose folder, atomically and reproducibly.

    Output under `dest_dir`: `images/{split}/` (hard links when on the same filesystem, else copies),
    `labels/{split}/*.txt` (see the module docstring for the format and which persons are kept), `data.yaml`
    (relocatable: no `path`; `kpt_shape: [17, 3]`, `flip_idx` from `vtpose.keypoints.FLIP_IDX`,
    `names: {0: person}`) and `summary.json`. Files are written in sorted order with fixed formatting and no
    timestamps, so the same input gives the same bytes, and a ZenML step over it is a cache hit.

    A merged dataset (`vtpose.data.merge`) is converted source by source, each by the same `write_yolo_labels`
    into its own folder (`labels/{split}/{source}/`), so each source's label files are byte for byte its
    single-source conversion's; training reads `TRAIN_LIST`, which names every training image as often as its
    source's weight says (`vtpose.data.merge.train_entries`), and the summary counts each source and the totals.

    Args:
        dataset: the source; every image its JSON lists must exist (validate first).
        dest_dir: folder to create (replaced atomically if it exists; nothing is left on failure).
        include_negatives: keep images without any annotation as backgrounds (empty label files).

    Returns:
        The YOLO dataset; `summary` = {"format", "train_split", "val_split", "include_negatives",
        "splits": {split: counts from `write_yolo_labels`}, "totals": summed counts}, and for a merged dataset
        "sources": {name: {"weight", "train_images", "train_entries", "splits": {split: counts}}} and
        "train_entries" (the training list's length).

    Raises:
        VtposeError: broken JSON, inconsistent records, or a missing image (the message names it).
    """
    dest_dir = Path(dest_dir)
    per_split: dict[str, dict[str, Any]] = {}
    sources = merged_sources(dataset)
    per_source: dict[str, dict[str, Any]] = {s["name"]: {"weight": s["weight"], "splits": {}} for s in sources}
    train_images: dict[str, list[str]] = {s["name"]: [] for s in sources}
    with atomic_dir(dest_dir) as tmp:
        for split in dataset.splits:
            ann_file = dataset.annotation_file(split)
            coco = load_coco_json(ann_file)
            groups = [(name, source_part(coco, name)[0]) for name in source_names(coco)] if sources else [("", coco)]
            counts_of_groups = []
            for name, part in groups:
                images = sorted(part["images"], key=lambda im: str(im["file_name"]))
                part = {**part, "images": images}
                counts = write_yolo_labels(part, tmp / "labels" / split, include_negatives, where=str(ann_file))
                counts_of_groups.append(counts)
                annotated = {a["image_id"] for a in part["annotations"]}
                (tmp / "images" / split).mkdir(parents=True, exist_ok=True)
                for im in images:
                    if not include_negatives and im["id"] not in annotated:
                        continue
                    src = dataset.image_dir(split) / im["file_name"]
                    if not src.is_file():
                        raise VtposeError(
                            f"{src}: image id {im['id']} listed in {ann_file} is missing; restore it, or run "
                            "validate_dataset with on_error: skip to drop it."
                        )
                    link_or_copy(src, tmp / "images" / split / im["file_name"])
                    if name and split == dataset.train_split:
                        train_images[name].append(f"./images/{split}/{im['file_name']}")
                if name:
                    per_source[name]["splits"][split] = counts
            per_split[split] = _sum_counts(counts_of_groups)
        summary: dict[str, Any] = {
            "format": "ultralytics-yolo-pose",
            "source": dataset.name,
            "train_split": dataset.train_split,
            "val_split": dataset.val_split,
            "include_negatives": include_negatives,
            "splits": per_split,
            "totals": _sum_counts(list(per_split.values())),
        }
        if sources:
            entries: list[str] = []
            for name, info in per_source.items():
                drawn = train_entries(train_images[name], info["weight"])
                info["train_images"] = len(train_images[name])
                info["train_entries"] = len(drawn)
                entries += drawn
            (tmp / TRAIN_LIST).write_text("".join(f"{entry}\n" for entry in sorted(entries)), encoding="utf-8")
            write_data_yaml(tmp, absolute=False, val_split=dataset.val_split, train_list=TRAIN_LIST)
            summary |= {"sources": per_source, "train_entries": len(entries)}
        else:
            write_data_yaml(tmp, absolute=False, train_split=dataset.train_split, val_split=dataset.val_split)
        write_json(tmp / SUMMARY_JSON, summary, indent=2)
    return YoloPoseDataset(root=dest_dir, summary=summary)
