"""MPII Human Pose's own annotation file (`mpii_human_pose_v1_u12_1.mat`, MATLAB's `RELEASE` struct) -> COCO-17.

The structure read, as MPII's release documents it (MATLAB indices are 1-based):
    RELEASE.annolist(i).image.name              the image file, under images/
    RELEASE.annolist(i).annorect(k)             one person: x1, y1, x2, y2 (head box), annopoints, scale, objpos
    RELEASE.annolist(i).annorect(k).annopoints.point(p)   id (0-15, MPII's joint order), x, y, is_visible
    RELEASE.img_train(i)                        1 = training image; 0 = test image, whose labels MPII withholds
    RELEASE.single_person{i}                    the annorect indices of the sufficiently separated persons

Coordinates are 1-based pixels, as in mmpose's JSON (which was made from this file), so each person goes through
the same `mpii_person_to_coco` as the JSON path and gets the same COCO keypoints, box and area. What the .mat adds:
- occlusion: is_visible 0 becomes COCO visibility 1 (labelled, occluded) and 1 becomes 2; MPII leaves is_visible
  empty on some points (often head_top and upper_neck), which is read as 2 (labelled), what the JSON path says for
  every labelled joint.
- each annotation keeps its MPII record under "mpii": `record` ("annolist(12).annorect(2)"), the 16 `joints`
  ([x, y, v], 0-based pixels, MPII order), `head_box` ([x1, y1, x2, y2], 0-based, or null) and `single_person`:
  what PCKh (vtpose/training/pckh.py) scores against. COCO tools ignore the extra key.
Skipped, and counted in `info["mat"]`: test images, persons without points (MPII leaves many persons unlabelled)
and training images left with no labelled person (kept, they would teach the model that their persons are
background). Labelled joints outside the image are kept as the file says: validation reports them with the file,
the record and the fix, and drops the person under `validation.on_error: skip`, as it does for COCO.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.io import loadmat
from scipy.io.matlab import MatReadError, mat_struct

from vtpose.artifacts import PoseDataset
from vtpose.data.mpii import mpii_person_to_coco, write_mpii_dataset
from vtpose.data.validate import MESSAGE_ISSUES, ValidationIssue
from vtpose.errors import VtposeError
from vtpose.keypoints import MPII_JOINT_NAMES, MPII_TO_COCO

MPII_MAT = "mpii_human_pose_v1_u12_1.mat"
MAT_FIX = (
    "re-download mpii_human_pose_v1_u12_2.zip from human-pose.mpi-inf.mpg.de and point data.path at the folder "
    f"holding its {MPII_MAT} and images/"
)
NUM_MPII_JOINTS = len(MPII_JOINT_NAMES)
# What `read_mpii_mat` counts: skipped records, and persons whose head box (hence PCKh) is missing.
SKIP_COUNTS = ("test_images", "test_persons", "persons_without_points", "persons_without_head_box")


@dataclass(frozen=True)
class MatPerson:
    """One labelled person of the .mat.

    Attributes:
        record: where it is in the file, MATLAB's 1-based indices: "annolist(12).annorect(2)".
        joints: (16, 2) float64, 1-based pixels as in the file, MPII order; NaN where not labelled.
        visibility: (16,) int64, COCO's flags: 0 not labelled, 1 occluded (is_visible 0), 2 visible or unknown.
        head_box: (x1, y1, x2, y2), 1-based pixels, or None where the file has none (or a degenerate one).
        single_person: listed in RELEASE.single_person for its image.
    """

    record: str
    joints: np.ndarray
    visibility: np.ndarray
    head_box: tuple[float, float, float, float] | None
    single_person: bool


@dataclass
class MatImage:
    """One entry of RELEASE.annolist: index (1-based), image name, img_train, its labelled persons."""

    index: int
    name: str
    is_train: bool
    persons: list[MatPerson]


@dataclass
class MpiiRelease:
    """What `read_mpii_mat` found.

    Attributes:
        path: the .mat read.
        images: every annolist entry, in file order (test images with no persons).
        counts: test_images, test_persons, persons_without_points, persons_without_head_box: what was skipped or
            is missing, for the dataset's info.
    """

    path: Path
    images: list[MatImage]
    counts: Counter[str] = field(default_factory=Counter)


def _structs(value: Any) -> list[mat_struct]:
    """The elements of a MATLAB struct array (an empty array: none)."""
    if isinstance(value, mat_struct):
        return [value]
    if not isinstance(value, np.ndarray) or value.size == 0:
        return []
    items = list(value.ravel(order="F"))
    if not all(isinstance(v, mat_struct) for v in items):
        raise TypeError("not a struct array")
    return items


def _number(value: Any) -> float | None:
    """A MATLAB scalar as a float: a 1x1 numeric array or a char array holding a number; None when empty."""
    if isinstance(value, str):
        return float(value) if value.strip() else None
    array = np.asarray(value)
    if array.size == 0:
        return None
    if array.dtype.kind == "U":
        text = "".join(str(v) for v in array.ravel())
        return float(text) if text.strip() else None
    if array.size != 1 or array.dtype.kind not in "biuf":
        raise ValueError(f"expected one number, got {array.tolist()!r}")
    return float(array.ravel()[0])


def _text(value: Any) -> str | None:
    """A MATLAB char array as a str (None when it is not one)."""
    array = np.asarray(value)
    if array.dtype.kind != "U" or array.size == 0:
        return None
    return "".join(str(v) for v in array.ravel())


def _field(struct: mat_struct, name: str) -> Any:
    return getattr(struct, name) if name in struct._fieldnames else None


def _head_box(rect: mat_struct) -> tuple[float, float, float, float] | None:
    try:
        values = [_number(_field(rect, k)) for k in ("x1", "y1", "x2", "y2")]
    except ValueError:
        return None
    if any(v is None or not math.isfinite(v) for v in values):
        return None
    x1, y1, x2, y2 = (float(v) for v in values if v is not None)
    return (x1, y1, x2, y2) if x2 > x1 and y2 > y1 else None


def _person(
    rect: mat_struct, record: str, image_name: str, single: bool, issues: list[ValidationIssue], file: str
) -> MatPerson | None:
    """One annorect as a person; None when it has no points. Malformed points go to `issues`."""
    label = f"{record} ({image_name})"
    try:
        annopoints = _structs(_field(rect, "annopoints"))
        points = _structs(_field(annopoints[0], "point")) if annopoints else []
    except TypeError:
        issues.append(ValidationIssue(file, label, "annopoints is not a struct with a 'point' struct array"))
        return None
    if not points:
        return None
    joints = np.full((NUM_MPII_JOINTS, 2), np.nan)
    visibility = np.zeros(NUM_MPII_JOINTS, dtype=np.int64)
    for p, point in enumerate(points, start=1):
        where = f"{label} annopoints.point({p})"
        try:
            joint_id, x, y = (_number(_field(point, k)) for k in ("id", "x", "y"))
            is_visible = _number(_field(point, "is_visible"))
        except ValueError as e:
            issues.append(ValidationIssue(file, where, f"id, x, y and is_visible must be numbers: {e}"))
            continue
        if joint_id is None or x is None or y is None or not (math.isfinite(x) and math.isfinite(y)):
            issues.append(ValidationIssue(file, where, f"needs a numeric id, x and y, got id={joint_id} x={x} y={y}"))
            continue
        if joint_id != int(joint_id) or not 0 <= joint_id < NUM_MPII_JOINTS:
            issues.append(ValidationIssue(file, where, f"id {joint_id:g} is not an MPII joint id (0-15)"))
            continue
        j = int(joint_id)
        if visibility[j]:
            issues.append(ValidationIssue(file, where, f"joint id {j} ({MPII_JOINT_NAMES[j]}) is labelled twice"))
            continue
        if is_visible not in (None, 0.0, 1.0):
            issues.append(ValidationIssue(file, where, f"is_visible {is_visible:g} is not 0, 1 or empty"))
            continue
        joints[j] = (x, y)
        visibility[j] = 1 if is_visible == 0.0 else 2
    return MatPerson(record, joints, visibility, _head_box(rect), single)


def read_mpii_mat(path: Path) -> MpiiRelease:
    """Read MPII's RELEASE struct: every image, its split and its labelled persons.

    Raises:
        VtposeError: a missing or unreadable file, no RELEASE struct (or one without annolist / img_train), or
            malformed person records; the message names the file, each record (MATLAB's indices) and the fix.
    """
    path = Path(path)
    if not path.is_file():
        raise VtposeError(f"{path}: MPII annotation file not found; {MAT_FIX}.")
    try:
        mat = loadmat(path, struct_as_record=False, squeeze_me=False)
    except NotImplementedError as e:  # scipy reads MATLAB v4-v7.2; v7.3 files are HDF5
        raise VtposeError(f"{path}: a MATLAB v7.3 (HDF5) file, not MPII's v5 release; {MAT_FIX}.") from e
    except (MatReadError, ValueError, OSError, TypeError) as e:
        raise VtposeError(f"{path}: not a readable MATLAB file ({e}); {MAT_FIX}.") from e
    variables = sorted(k for k in mat if not k.startswith("__"))
    try:
        releases = _structs(mat.get("RELEASE"))
    except TypeError:
        releases = []
    if len(releases) != 1:
        raise VtposeError(
            f"{path}: no RELEASE struct (variables found: {variables}); this is not MPII's {MPII_MAT}: {MAT_FIX}."
        )
    release = releases[0]
    missing = [k for k in ("annolist", "img_train") if k not in release._fieldnames]
    if missing:
        raise VtposeError(f"{path}: RELEASE has no {' or '.join(missing)} field; {MAT_FIX}.")
    try:
        annolist = _structs(release.annolist)
        img_train = np.asarray(release.img_train, dtype=np.float64).ravel()
    except (TypeError, ValueError) as e:
        raise VtposeError(f"{path}: RELEASE.annolist is not a struct array or img_train not numbers; {MAT_FIX}.") from e
    single_cells = _field(release, "single_person")
    singles = list(np.asarray(single_cells, dtype=object).ravel()) if single_cells is not None else []

    file = path.name
    issues: list[ValidationIssue] = []
    release_out = MpiiRelease(path, [], Counter(dict.fromkeys(SKIP_COUNTS, 0)))
    seen: dict[str, int] = {}
    for i, entry in enumerate(annolist, start=1):
        try:
            image = _structs(_field(entry, "image"))
            rects = _structs(_field(entry, "annorect"))
        except TypeError:
            issues.append(ValidationIssue(file, f"annolist({i})", "image or annorect is not a struct array"))
            continue
        name = _text(_field(image[0], "name")) if image else None
        if not name:
            issues.append(ValidationIssue(file, f"annolist({i})", "no image.name"))
            continue
        if name in seen:
            issues.append(
                ValidationIssue(file, f"annolist({i}) {name!r}", f"image also listed as annolist({seen[name]})")
            )
            continue
        seen[name] = i
        is_train = bool(img_train[i - 1] == 1)
        persons: list[MatPerson] = []
        if not is_train:
            release_out.counts["test_images"] += 1
            release_out.counts["test_persons"] += len(rects)
        else:
            single = {int(v) for v in np.asarray(singles[i - 1]).ravel()} if i <= len(singles) else set()
            for k, rect in enumerate(rects, start=1):
                person = _person(rect, f"annolist({i}).annorect({k})", name, k in single, issues, file)
                if person is None:
                    release_out.counts["persons_without_points"] += 1
                    continue
                release_out.counts["persons_without_head_box"] += person.head_box is None
                persons.append(person)
        release_out.images.append(MatImage(i, name, is_train, persons))
    if issues:
        lines = [f"{path}: {len(issues)} malformed record(s):"]
        lines += [f"  - {issue}" for issue in issues[:MESSAGE_ISSUES]]
        if len(issues) > MESSAGE_ISSUES:
            lines.append(f"  ... and {len(issues) - MESSAGE_ISSUES} more")
        lines.append(f"Fix: {MAT_FIX}.")
        raise VtposeError("\n".join(lines))
    return release_out


def _mpii_record(person: MatPerson) -> dict[str, Any]:
    """The annotation's "mpii" key: what PCKh needs, 0-based like the COCO keypoints beside it."""
    joints = [
        [round(float(x) - 1.0, 4), round(float(y) - 1.0, 4), int(v)] if v else [0.0, 0.0, 0]
        for (x, y), v in zip(person.joints, person.visibility, strict=True)
    ]
    box = [round(c - 1.0, 4) for c in person.head_box] if person.head_box else None
    return {"record": person.record, "joints": joints, "head_box": box, "single_person": person.single_person}


def ingest_mpii_mat(
    source_dir: Path,
    dest_dir: Path,
    split: str = "mpii",
    val_fraction: float = 0.0,
    annotation_file: str = MPII_MAT,
    name: str | None = None,
) -> PoseDataset:
    """Ingest MPII from its own .mat (the RELEASE struct) as a COCO person-keypoints dataset.

    The same dataset `ingest_mpii` makes from mmpose's JSON of the same persons (ids, keypoints, boxes, areas,
    splits), plus occlusion flags and each person's "mpii" record (module docstring). Only training images
    (img_train 1) carry labels, so splits are made from them as `ingest_mpii` makes them: all in `split`, or
    `{split}_train` / `{split}_val` by `val_fraction`, ranked by sha256 of the file name.

    Args:
        source_dir: folder with `annotation_file` and `images/` (MPII's images.tar.gz unpacked).
        dest_dir: dataset folder to create (replaced atomically if it exists).
        split: split name (or prefix when `val_fraction > 0`).
        val_fraction: share of labelled images held out for validation, in [0, 1).
        annotation_file: path of the .mat inside `source_dir`.
        name: dataset name; defaults to the source folder's name.

    Returns:
        The dataset; `info["mat"]` counts what was skipped (test images, persons without points, training images
        with no labelled person) and what is missing (head boxes).

    Raises:
        VtposeError: a bad `val_fraction`, an unreadable or malformed .mat (`read_mpii_mat`), no labelled person,
            or a missing/unreadable image.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise VtposeError(f"val_fraction {val_fraction}: must be in [0, 1); use 0 to train and evaluate on one split.")
    source_dir = Path(source_dir)
    mat_path = source_dir / annotation_file
    release = read_mpii_mat(mat_path)
    counts = Counter(release.counts)
    counts["occluded_joints"] = 0
    by_image = {im.name: im for im in release.images if im.is_train and im.persons}
    counts["train_images_without_labelled_persons"] = sum(1 for im in release.images if im.is_train and not im.persons)
    if not by_image:
        raise VtposeError(f"{mat_path}: no training image has a labelled person; {MAT_FIX}.")

    def persons_in(image_name: str, width: int, height: int) -> list[dict[str, Any]]:
        records = []
        for person in by_image[image_name].persons:
            labelled = person.visibility > 0
            kpts, bbox, area, nk, _ = mpii_person_to_coco(
                person.joints.tolist(), labelled.astype(int).tolist(), width, height, keep_outside=True
            )
            for mpii_idx, coco_idx in MPII_TO_COCO.items():
                if person.visibility[mpii_idx] == 1:
                    kpts[3 * coco_idx + 2] = 1
                    counts["occluded_joints"] += 1
            records.append(
                {"keypoints": kpts, "num_keypoints": nk, "bbox": bbox, "area": area, "mpii": _mpii_record(person)}
            )
        return records

    return write_mpii_dataset(
        source_dir, Path(dest_dir), name, sorted(by_image), split, val_fraction,
        annotations=mat_path, images_fix="unpack MPII's images/ there",
        where=lambda image: f"{mat_path} annolist({by_image[image].index}) image {image!r}",
        persons_in=persons_in,
        info=lambda: {
            "format": "mpii (RELEASE .mat)",
            "mat": {"file": annotation_file, "annolist_images": len(release.images), **dict(sorted(counts.items()))},
        },
    )  # fmt: skip
