"""Check every record of a PoseDataset; fail with a precise message or write a cleaned copy.

What is checked, per split:
    file level (fatal, cannot be skipped): JSON syntax, top-level `images`/`annotations`/`categories` lists,
        a person category with COCO's 17 keypoints.
    images: required keys and types (`id` int, `file_name` str, `width`/`height` positive ints), duplicate ids
        and file names, the file present, decodable to the end (a truncated JPEG fails), and of the size the
        JSON says.
    annotations: required keys and types (`id`, `image_id`, `category_id`, `iscrowd` ints, `bbox` 4 numbers,
        `area` a number, `keypoints` 51 numbers, `num_keypoints` int), duplicate ids, a known image and category,
        visibility in {0, 1, 2}, `num_keypoints` equal to the labelled count, a positive box, box and labelled
        keypoints inside the image within `tolerance_px`.

Inside-the-image tolerance: measured on data/coco-person-mini, every box and labelled keypoint lies inside
[0, width] x [0, height]. Full COCO is known to have boxes overshooting by a fraction of a pixel (float boxes
rounded to 2 decimals), so the default allows 1 px. Values within the tolerance are kept as they are, never
clipped: clipping would change ground truth that pycocotools scores against, and Ultralytics accepts label
coordinates up to 1 % outside the image. Anything further out is an error, reported and (with "skip") dropped.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeGuard

from PIL import Image

from vtpose.artifacts import PoseDataset
from vtpose.data._fs import atomic_dir, link_or_copy, safe_relative_name, write_json
from vtpose.data.coco import load_coco_json
from vtpose.errors import VtposeError
from vtpose.keypoints import KEYPOINT_NAMES, NUM_KEYPOINTS, PERSON_CATEGORY_ID, VISIBILITY_VALUES

__all__ = ["ValidationIssue", "ValidationReport", "load_coco_json", "validate_dataset"]

OnError = Literal["fail", "skip"]
FIX_HINT = "fix the records, or set validation.on_error: skip to drop bad records (and images that cannot be used)"
# How many issues the error message lists before "and N more".
MESSAGE_ISSUES = 10


@dataclass(frozen=True)
class ValidationIssue:
    """One problem with one record.

    Attributes:
        file: the file holding the record (annotation JSON or image), relative to the dataset root.
        record: which record, e.g. "annotation id 183234" or "image id 139 (000000000139.jpg)".
        problem: what is wrong, with the offending values.
    """

    file: str
    record: str
    problem: str

    def __str__(self) -> str:
        return f"{self.file}: {self.record}: {self.problem}"


@dataclass
class ValidationReport:
    """Everything validation found, for the error message, the logs and the dashboard.

    Attributes:
        dataset: dataset name.
        on_error: the policy applied ("fail" or "skip").
        issues: every problem, in file order.
        splits: per split: images, annotations, persons_with_keypoints (non-crowd, num_keypoints > 0), crowd
            (counted over the records kept), skipped_images, skipped_annotations (records dropped; includes
            annotations dropped because their image was).
    """

    dataset: str
    on_error: str
    issues: list[ValidationIssue] = field(default_factory=list)
    splits: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no record had a problem."""
        return not self.issues

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: counts, totals and every issue."""
        totals: Counter[str] = Counter()
        for counts in self.splits.values():
            totals.update(counts)
        return {
            "dataset": self.dataset,
            "on_error": self.on_error,
            "num_issues": len(self.issues),
            "splits": self.splits,
            "totals": dict(totals),
            "issues": [asdict(i) for i in self.issues],
        }

    def message(self, limit: int = MESSAGE_ISSUES) -> str:
        """The user-facing summary: the first `limit` issues, how many more, and the fix."""
        lines = [f"dataset {self.dataset!r}: {len(self.issues)} invalid record(s):"]
        lines += [f"  - {issue}" for issue in self.issues[:limit]]
        if len(self.issues) > limit:
            lines.append(f"  ... and {len(self.issues) - limit} more")
        lines.append(f"Fix: {FIX_HINT}.")
        return "\n".join(lines)


def _is_int(v: Any) -> TypeGuard[int]:
    # bool is an int subclass in Python; `true` as an id is a schema error, not 1.
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _check_image_file(path: Path, width: int, height: int) -> str | None:
    """Decode an image fully; return the problem, or None when it is readable and of the expected size."""
    if not path.is_file():
        return f"image file missing: {path}"
    try:
        with Image.open(path) as im:
            size = im.size
            im.load()  # decodes every byte: a truncated JPEG raises here, not at open
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        return f"image not decodable ({type(e).__name__}: {e}); re-download or remove it"
    if size != (width, height):
        return f"image is {size[0]}x{size[1]} px but the JSON says {width}x{height}"
    return None


def _check_categories(coco: dict[str, Any], where: str) -> set[int]:
    cats = coco["categories"]
    ids = {c.get("id") for c in cats if isinstance(c, dict)}
    person = next((c for c in cats if isinstance(c, dict) and c.get("id") == PERSON_CATEGORY_ID), None)
    if person is None:
        raise VtposeError(f"{where}: no person category (id {PERSON_CATEGORY_ID}) in 'categories'; {FIX_HINT}.")
    if list(person.get("keypoints") or []) != list(KEYPOINT_NAMES):
        raise VtposeError(
            f"{where}: the person category's keypoints are not COCO's 17 in COCO order {list(KEYPOINT_NAMES)}; "
            "convert the dataset to COCO-17 first."
        )
    return {i for i in ids if _is_int(i)}


def _check_annotation(
    ann: dict[str, Any], images: dict[int, dict[str, Any]], category_ids: set[int], tol: float
) -> list[str]:
    """Problems with one annotation record whose id is already known to be a unique int."""
    problems: list[str] = []
    for key in ("image_id", "category_id", "iscrowd", "num_keypoints"):
        if not _is_int(ann.get(key)):
            problems.append(f"'{key}' must be an integer, got {ann.get(key)!r}")
    if not _is_num(ann.get("area")):
        problems.append(f"'area' must be a finite number, got {ann.get('area')!r}")
    if _is_int(ann.get("iscrowd")) and ann["iscrowd"] not in (0, 1):
        problems.append(f"iscrowd {ann['iscrowd']} is not 0 or 1")
    if _is_int(ann.get("category_id")) and ann["category_id"] not in category_ids:
        problems.append(f"category_id {ann['category_id']} is not in 'categories'")
    image = images.get(ann["image_id"]) if _is_int(ann.get("image_id")) else None
    if _is_int(ann.get("image_id")) and image is None:
        problems.append(f"image_id {ann['image_id']} names no image in 'images'")
    w, h = (image["width"], image["height"]) if image else (math.inf, math.inf)

    bbox = ann.get("bbox")
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_num(v) for v in bbox)):
        problems.append(f"'bbox' must be 4 finite numbers [x, y, w, h], got {bbox!r}")
    else:
        x, y, bw, bh = bbox
        if bw <= 0 or bh <= 0:
            problems.append(f"bbox {bbox} has zero or negative width/height")
        elif x < -tol or y < -tol or x + bw > w + tol or y + bh > h + tol:
            problems.append(f"bbox {bbox} extends outside the {w}x{h} image by more than {tol:g} px")

    kpts = ann.get("keypoints")
    if not (isinstance(kpts, list) and all(_is_num(v) for v in kpts)):
        problems.append("'keypoints' must be a list of finite numbers")
    elif len(kpts) != 3 * NUM_KEYPOINTS:
        problems.append(f"'keypoints' has {len(kpts)} values, COCO-17 needs {3 * NUM_KEYPOINTS} (17 x [x, y, v])")
    else:
        labelled = 0
        for j in range(NUM_KEYPOINTS):
            kx, ky, v = kpts[3 * j : 3 * j + 3]
            if v not in VISIBILITY_VALUES:
                problems.append(f"keypoint {j} ({KEYPOINT_NAMES[j]}) has visibility {v!r}; allowed 0, 1, 2")
                continue
            if v > 0:
                labelled += 1
                if kx < -tol or ky < -tol or kx > w + tol or ky > h + tol:
                    problems.append(
                        f"keypoint {j} ({KEYPOINT_NAMES[j]}) at ({kx:g}, {ky:g}) is outside the {w}x{h} image "
                        f"by more than {tol:g} px"
                    )
        nk = ann.get("num_keypoints")
        if _is_int(nk) and nk != labelled and not any("visibility" in p for p in problems):
            problems.append(f"num_keypoints is {nk} but {labelled} keypoints have visibility > 0")
    return problems


def _validate_split(
    dataset: PoseDataset, split: str, tol: float, decode_images: bool, workers: int
) -> tuple[dict[str, Any], list[ValidationIssue], dict[str, int]]:
    """Validate one split; return the cleaned COCO dict, the issues and the counts."""
    ann_path = dataset.annotation_file(split)
    rel_json = str(ann_path.relative_to(dataset.root))
    coco = load_coco_json(ann_path)
    for key in ("images", "annotations", "categories"):
        if not isinstance(coco.get(key), list):
            raise VtposeError(f"{ann_path}: top-level '{key}' must be a list; this is not a COCO annotation file.")
    category_ids = _check_categories(coco, str(ann_path))
    issues: list[ValidationIssue] = []

    # Images: schema and duplicates first (cheap), then the files (decoding is the slow part: threads, since
    # PIL's decoders release the GIL).
    good_images: dict[int, dict[str, Any]] = {}
    seen_names: dict[str, int] = {}
    n_bad_images = 0
    candidates: list[tuple[str, dict[str, Any]]] = []
    for i, im in enumerate(coco["images"]):
        if not isinstance(im, dict) or not _is_int(im.get("id")):
            issues.append(ValidationIssue(rel_json, f"image #{i}", "not an object with an integer 'id'"))
            n_bad_images += 1
            continue
        record = f"image id {im['id']} ({im.get('file_name')})"
        problems = []
        name = im.get("file_name")
        if not isinstance(name, str):
            problems.append(f"'file_name' must be a string, got {name!r}")
        else:
            try:
                safe_relative_name(name, record)
            except VtposeError:
                problems.append(f"file_name {name!r} points outside the images folder")
        for key in ("width", "height"):
            if not (_is_int(im.get(key)) and im[key] > 0):
                problems.append(f"'{key}' must be a positive integer, got {im.get(key)!r}")
        if not problems and isinstance(name, str) and name in seen_names:
            problems.append(f"duplicate file_name (also image id {seen_names[name]})")
        if problems or not isinstance(name, str):  # a non-string name is already one of the problems
            issues.extend(ValidationIssue(rel_json, record, p) for p in problems)
            n_bad_images += 1
            continue
        seen_names[name] = im["id"]
        candidates.append((record, im))

    first_by_id: dict[int, str] = {}
    unique: list[tuple[str, dict[str, Any]]] = []
    for record, im in candidates:
        if im["id"] in first_by_id:
            issues.append(ValidationIssue(rel_json, record, f"duplicate image id (first: {first_by_id[im['id']]})"))
            n_bad_images += 1
            continue
        first_by_id[im["id"]] = record
        unique.append((record, im))

    image_dir = dataset.image_dir(split)
    if decode_images:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(
                pool.map(lambda c: _check_image_file(image_dir / c[1]["file_name"], c[1]["width"], c[1]["height"]),
                         unique)
            )  # fmt: skip
    else:
        results = [None if (image_dir / c[1]["file_name"]).is_file() else "image file missing" for c in unique]
    for (record, im), problem in zip(unique, results, strict=True):
        if problem:
            rel_image = str((image_dir / im["file_name"]).relative_to(dataset.root))
            issues.append(ValidationIssue(rel_image, record, problem))
            n_bad_images += 1
        else:
            good_images[im["id"]] = im
    all_image_ids = set(first_by_id)

    # Annotations.
    kept: list[dict[str, Any]] = []
    seen_ann: set[int] = set()
    n_bad_anns = 0
    for i, ann in enumerate(coco["annotations"]):
        if not isinstance(ann, dict) or not _is_int(ann.get("id")):
            issues.append(ValidationIssue(rel_json, f"annotation #{i}", "not an object with an integer 'id'"))
            n_bad_anns += 1
            continue
        record = f"annotation id {ann['id']}"
        if ann["id"] in seen_ann:
            issues.append(ValidationIssue(rel_json, record, f"duplicate annotation id (record #{i})"))
            n_bad_anns += 1
            continue
        seen_ann.add(ann["id"])
        image_id = ann.get("image_id")
        if _is_int(image_id) and image_id in all_image_ids and image_id not in good_images:
            n_bad_anns += 1  # its image is unusable and already reported; the annotation goes with it
            continue
        problems = _check_annotation(ann, good_images, category_ids, tol)
        if problems:
            issues.extend(ValidationIssue(rel_json, f"{record} (image id {image_id})", p) for p in problems)
            n_bad_anns += 1
            continue
        kept.append(ann)

    # `good_images` holds the very record objects kept (first of a duplicated id only), so identity filters.
    clean = {
        **coco,
        "images": [im for im in coco["images"] if isinstance(im, dict) and good_images.get(im.get("id", -1)) is im],
        "annotations": kept,
    }
    counts = {
        "images": len(clean["images"]),
        "annotations": len(kept),
        "persons_with_keypoints": sum(1 for a in kept if not a["iscrowd"] and a["num_keypoints"] > 0),
        "crowd": sum(1 for a in kept if a["iscrowd"]),
        "skipped_images": n_bad_images,
        "skipped_annotations": n_bad_anns,
    }
    return clean, issues, counts


def validate_dataset(
    dataset: PoseDataset,
    dest_dir: Path,
    on_error: OnError = "fail",
    tolerance_px: float = 1.0,
    decode_images: bool = True,
    workers: int | None = None,
) -> tuple[PoseDataset, ValidationReport]:
    """Validate every record of every split and write the validated dataset to `dest_dir`.

    Args:
        dataset: the dataset to check (not modified).
        dest_dir: where the validated copy goes (replaced atomically; images are hard-linked when possible).
        on_error: "fail" raises on the first validation pass with any issue; "skip" drops bad records: a bad
            annotation alone, or a missing/undecodable/wrong-size/duplicate image together with its annotations.
        tolerance_px: how far (pixels) boxes and labelled keypoints may reach outside the image.
        decode_images: decode every image fully (slow on full COCO: ~118k JPEGs); False only checks presence.
        workers: threads for decoding; default min(4, CPU count).

    Returns:
        The validated dataset (its `info["validation"]` holds the counts, including skipped records) and the
        report.

    Raises:
        VtposeError: `on_error` is not "fail"/"skip"; a file-level problem (broken JSON, no images list, no
            COCO-17 person category) whatever the policy; with "fail", any record-level issue: the message lists
            the first ones with file and record and says how many more.
    """
    if on_error not in ("fail", "skip"):
        raise VtposeError(f"validation.on_error {on_error!r}: must be 'fail' or 'skip'.")
    workers = workers or min(4, os.cpu_count() or 1)
    report = ValidationReport(dataset=dataset.name, on_error=on_error)
    cleaned: dict[str, dict[str, Any]] = {}
    for split in dataset.splits:
        clean, issues, counts = _validate_split(dataset, split, tolerance_px, decode_images, workers)
        report.issues.extend(issues)
        report.splits[split] = counts
        cleaned[split] = clean
    if on_error == "fail" and report.issues:
        raise VtposeError(report.message())

    dest_dir = Path(dest_dir)
    summary = report.to_dict()
    info = {**dataset.info, "validation": {k: v for k, v in summary.items() if k != "issues"}}
    with atomic_dir(dest_dir) as tmp:
        out = PoseDataset(tmp, dataset.name, list(dataset.splits), dataset.train_split, dataset.val_split,
                          source=dataset.source, info=info)  # fmt: skip
        for split, coco in cleaned.items():
            if report.splits[split]["skipped_images"] or report.splits[split]["skipped_annotations"]:
                write_json(out.annotation_file(split), coco)
            else:
                # Nothing dropped: keep the original bytes, so a clean dataset passes through unchanged.
                out.annotation_file(split).parent.mkdir(parents=True, exist_ok=True)
                link_or_copy(dataset.annotation_file(split), out.annotation_file(split))
            out.image_dir(split).mkdir(parents=True, exist_ok=True)
            for im in coco["images"]:
                link_or_copy(dataset.image_dir(split) / im["file_name"], out.image_dir(split) / im["file_name"])
        write_json(tmp / "validation_report.json", summary, indent=2)
        out.write_manifest()
    out.root = dest_dir
    return out, report
