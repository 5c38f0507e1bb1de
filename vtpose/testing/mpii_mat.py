"""MPII's own annotation file written in the structure MATLAB writes `mpii_human_pose_v1_u12_1.mat`, for tests.

A 1x1 RELEASE struct whose annolist is a 1xN struct array, annorect 1xK struct arrays, annopoints 1x1 structs holding
a 1xP point struct array, every number a 1x1 double, strings char arrays, empties 0x0 doubles, single_person an Nx1
cell (scipy.io.savemat). `sample_entries` puts the 5 persons of data/mpii-sample in with the JSON's own coordinates
(the JSON was made from this file and keeps its 1-based pixels) and a head box around head_top and upper_neck (the
JSON has none), so PCKh can be scored on them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from scipy.io import savemat

from vtpose.data.mpii_mat import MPII_MAT
from vtpose.keypoints import MPII_JOINT_NAMES
from vtpose.paths import MPII_SAMPLE_DIR

EMPTY = np.zeros((0, 0))
RECT_FIELDS = ["x1", "y1", "x2", "y2", "annopoints", "scale", "objpos"]
HEAD_TOP, UPPER_NECK = MPII_JOINT_NAMES.index("head_top"), MPII_JOINT_NAMES.index("upper_neck")


def num(v: float) -> np.ndarray:
    return np.array([[float(v)]])


def struct_array(fields: list[str], records: list[dict[str, Any]]) -> np.ndarray:
    """A 1xK MATLAB struct array: every record has every field, as MATLAB requires ([] where unset)."""
    array = np.empty((1, len(records)), dtype=[(f, object) for f in fields])
    for k, record in enumerate(records):
        for f in fields:
            array[f][0, k] = record.get(f, EMPTY)
    return array


def point(joint_id: int, x: float, y: float, is_visible: Any) -> dict[str, Any]:
    return {"id": num(joint_id), "x": num(x), "y": num(y), "is_visible": is_visible}


def annorect(points: list[dict[str, Any]] | None, head_box: tuple[float, ...] | None = None) -> dict[str, Any]:
    rect: dict[str, Any] = {"scale": num(3.0), "objpos": struct_array(["x", "y"], [{"x": num(600), "y": num(300)}])}
    if head_box:
        rect.update({k: num(v) for k, v in zip(("x1", "y1", "x2", "y2"), head_box, strict=True)})
    rect["annopoints"] = (
        struct_array(["point"], [{"point": struct_array(["id", "x", "y", "is_visible"], points)}]) if points else EMPTY
    )
    return rect


def sample_persons() -> list[dict[str, Any]]:
    return json.loads((MPII_SAMPLE_DIR / "annotations" / "test_mpii.json").read_text())


def head_box_around(person: dict[str, Any]) -> tuple[float, float, float, float]:
    """A head box around head_top and upper_neck, 1-based like the file's (the sample JSON has none)."""
    (tx, ty), (nx, ny) = person["joints"][HEAD_TOP], person["joints"][UPPER_NECK]
    return (min(tx, nx) - 20.0, min(ty, ny), max(tx, nx) + 20.0, max(ty, ny))


def sample_points(person: dict[str, Any]) -> list[dict[str, Any]]:
    """The person's labelled joints as MATLAB points, with is_visible written each way MPII writes it."""
    points = []
    for j, ((x, y), labelled) in enumerate(zip(person["joints"], person["joints_vis"], strict=True)):
        if not labelled:
            continue  # MPII leaves an unlabelled joint out of the point list
        vis: Any = EMPTY if j in (HEAD_TOP, UPPER_NECK) else ("1" if j % 2 else num(1))
        points.append(point(j, x, y, vis))
    return points


def write_release(path: Path, entries: list[tuple[str, int, list[dict[str, Any]], list[int]]]) -> Path:
    """Write a RELEASE .mat: entries are (image name, img_train, annorects, single_person indices, 1-based)."""
    annolist = struct_array(
        ["image", "annorect", "frame_sec", "vididx"],
        [
            {
                "image": struct_array(["name"], [{"name": name}]),
                "annorect": struct_array(sorted({f for r in rects for f in r}, key=RECT_FIELDS.index), rects)
                if rects
                else EMPTY,
            }
            for name, _, rects, _ in entries
        ],
    )
    single = np.empty((len(entries), 1), dtype=object)
    for i, (_, _, _, singles) in enumerate(entries):
        single[i, 0] = np.array(singles, dtype=np.float64).reshape(-1, 1) if singles else EMPTY
    release = struct_array(
        ["annolist", "img_train", "version", "single_person"],
        [{"annolist": annolist, "img_train": np.array([[float(t) for _, t, _, _ in entries]]), "version": "12",
          "single_person": single}],
    )  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(path, {"RELEASE": release})
    return path


Entry = tuple[str, int, list[dict[str, Any]], list[int]]


def sample_entries(persons: list[dict[str, Any]] | None = None, head_boxes: bool = True) -> list[Entry]:
    """One annolist entry per sample person: a training image, one annorect, listed as single person."""
    return [
        (p["image"], 1, [annorect(sample_points(p), head_box_around(p) if head_boxes else None)], [1])
        for p in (persons or sample_persons())
    ]


def write_sample_source(tmp_path: Path, entries: list[Entry]) -> Path:
    """MPII's folder layout under `tmp_path/mpii-mat`: the .mat beside images/ (a link to the sample's images)."""
    source = tmp_path / "mpii-mat"
    source.mkdir(exist_ok=True)
    if not (source / "images").exists():
        (source / "images").symlink_to(MPII_SAMPLE_DIR / "images")
    write_release(source / MPII_MAT, entries)
    return source
