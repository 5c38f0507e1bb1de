"""Validation on the real sample and on small broken copies of it: each problem class, fail vs skip."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from vtpose.artifacts import PoseDataset
from vtpose.data import ingest_coco_folder, load_coco_json, validate_dataset
from vtpose.errors import VtposeError
from vtpose.paths import COCO_MINI_DIR

SPLIT = "val2017"
JSON_REL = f"annotations/person_keypoints_{SPLIT}.json"


@pytest.fixture(scope="module")
def val_only(tmp_path_factory: pytest.TempPathFactory) -> PoseDataset:
    """The real val2017 split alone (108 images), ingested once."""
    return ingest_coco_folder(
        COCO_MINI_DIR, tmp_path_factory.mktemp("v") / "val", splits={SPLIT: SPLIT}, train_split=SPLIT, val_split=SPLIT
    )


def _broken_copy(ds: PoseDataset, dest: Path, edit: Callable[[dict[str, Any], Path], None]) -> PoseDataset:
    """Copy `ds` (JSON rewritten, images hard-linked) and let `edit` break it.

    `edit` must replace an image by unlinking it first, never write into it: images are hard links to the data.
    """
    out = ingest_coco_folder(ds.root, dest, splits={SPLIT: SPLIT}, train_split=SPLIT, val_split=SPLIT)
    coco = json.loads(out.annotation_file(SPLIT).read_text())
    edit(coco, out.image_dir(SPLIT))
    out.annotation_file(SPLIT).unlink()
    out.annotation_file(SPLIT).write_text(json.dumps(coco, indent=1))
    return out


def _person(coco: dict[str, Any]) -> dict[str, Any]:
    return next(a for a in coco["annotations"] if a["num_keypoints"] >= 10)


def _image_of(coco: dict[str, Any], ann: dict[str, Any]) -> dict[str, Any]:
    return next(im for im in coco["images"] if im["id"] == ann["image_id"])


def _replace_file(path: Path, data: bytes) -> None:
    path.unlink()  # break the hard link first
    path.write_bytes(data)


def bad_visibility(coco, images):
    a = _person(coco)
    a["keypoints"][2] = 3
    return f"annotation id {a['id']}", "visibility 3"


def fifty_values(coco, images):
    a = _person(coco)
    a["keypoints"] = a["keypoints"][:50]
    return f"annotation id {a['id']}", "has 50 values"


def box_outside(coco, images):
    a = _person(coco)
    a["bbox"][0] = _image_of(coco, a)["width"] - 5.0
    return f"annotation id {a['id']}", "extends outside"


def keypoint_outside(coco, images):
    a = _person(coco)
    i = next(j for j in range(17) if a["keypoints"][3 * j + 2] > 0)
    a["keypoints"][3 * i + 1] = _image_of(coco, a)["height"] + 10
    return f"annotation id {a['id']}", "is outside"


def num_keypoints_wrong(coco, images):
    a = _person(coco)
    a["num_keypoints"] += 1
    return f"annotation id {a['id']}", "num_keypoints is"


def missing_image(coco, images):
    im = _image_of(coco, _person(coco))
    (images / im["file_name"]).unlink()
    return f"image id {im['id']} ({im['file_name']})", "image file missing"


def truncated_jpeg(coco, images):
    im = _image_of(coco, _person(coco))
    data = (images / im["file_name"]).read_bytes()
    _replace_file(images / im["file_name"], data[: len(data) // 2])
    return f"image id {im['id']} ({im['file_name']})", "not decodable"


def wrong_size(coco, images):
    im = _image_of(coco, _person(coco))
    im["width"] += 7
    return f"image id {im['id']} ({im['file_name']})", f"JSON says {im['width']}x"


def duplicate_image_id(coco, images):
    first = coco["images"][0]
    coco["images"].append({**first, "file_name": "copy_of_first.jpg"})
    return f"image id {first['id']} (copy_of_first.jpg)", "duplicate image id"


def duplicate_annotation_id(coco, images):
    a = _person(coco)
    coco["annotations"].append(dict(a))
    return f"annotation id {a['id']}", "duplicate annotation id"


def unknown_image(coco, images):
    a = _person(coco)
    a["image_id"] = 999_999_999
    return f"annotation id {a['id']}", "names no image"


def string_width(coco, images):
    im = coco["images"][3]
    im["height"] = str(im["height"])
    return f"image id {im['id']}", "'height' must be a positive integer"


CASES = [
    bad_visibility,
    fifty_values,
    box_outside,
    keypoint_outside,
    num_keypoints_wrong,
    missing_image,
    truncated_jpeg,
    wrong_size,
    duplicate_image_id,
    duplicate_annotation_id,
    unknown_image,
    string_width,
]


def test_real_sample_passes_unchanged(tmp_path: Path):
    ds = ingest_coco_folder(COCO_MINI_DIR, tmp_path / "in")
    out, report = validate_dataset(ds, tmp_path / "out", on_error="fail")
    assert report.ok
    assert report.splits["train2017"] == {
        "images": 130, "annotations": 271, "persons_with_keypoints": 143, "crowd": 8,
        "skipped_images": 0, "skipped_annotations": 0,
    }  # fmt: skip
    assert report.splits["val2017"]["persons_with_keypoints"] == 95  # data/coco-person-mini/SOURCE.md's table
    for split in ds.splits:
        assert out.annotation_file(split).read_bytes() == ds.annotation_file(split).read_bytes()
    assert PoseDataset.open(out.root).info["validation"]["totals"]["skipped_annotations"] == 0


@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
def test_each_problem_fails_then_skips(val_only: PoseDataset, tmp_path: Path, case: Callable[..., tuple[str, str]]):
    expected: list[tuple[str, str]] = []
    broken = _broken_copy(val_only, tmp_path / "broken", lambda c, i: expected.append(case(c, i)))
    record, problem = expected[0]

    with pytest.raises(VtposeError) as err:
        validate_dataset(broken, tmp_path / "fail", on_error="fail")
    message = str(err.value)
    assert record in message and problem in message
    assert "validation.on_error: skip" in message
    assert not (tmp_path / "fail").exists()  # nothing half-written

    out, report = validate_dataset(broken, tmp_path / "skip", on_error="skip")
    assert any(record in i.record and problem in i.problem for i in report.issues), report.issues
    counts = report.splits[SPLIT]
    assert counts["skipped_images"] + counts["skipped_annotations"] >= 1
    assert out.info["validation"]["splits"][SPLIT] == counts
    # The cleaned copy is valid, and nothing bad made it through.
    _, again = validate_dataset(PoseDataset.open(out.root), tmp_path / "again", on_error="fail")
    assert again.ok
    assert again.splits[SPLIT]["annotations"] == counts["annotations"]


def test_bad_image_takes_its_annotations_along(val_only: PoseDataset, tmp_path: Path):
    info: dict[str, Any] = {}

    def edit(coco, images):
        im = _image_of(coco, _person(coco))
        info["n"] = sum(1 for a in coco["annotations"] if a["image_id"] == im["id"])
        info["id"] = im["id"]
        (images / im["file_name"]).unlink()

    broken = _broken_copy(val_only, tmp_path / "b", edit)
    out, report = validate_dataset(broken, tmp_path / "out", on_error="skip")
    assert report.splits[SPLIT]["skipped_images"] == 1
    assert report.splits[SPLIT]["skipped_annotations"] == info["n"]
    coco = json.loads(out.annotation_file(SPLIT).read_text())
    assert info["id"] not in {im["id"] for im in coco["images"]}
    assert info["id"] not in {a["image_id"] for a in coco["annotations"]}
    assert len(os.listdir(out.image_dir(SPLIT))) == 107


def test_many_issues_are_summarised(val_only: PoseDataset, tmp_path: Path):
    def edit(coco, images):
        for a in coco["annotations"][:25]:
            a["num_keypoints"] = 99

    broken = _broken_copy(val_only, tmp_path / "b", edit)
    with pytest.raises(VtposeError, match=r"25 invalid record\(s\)[\s\S]*and 15 more"):
        validate_dataset(broken, tmp_path / "out", on_error="fail")


def test_broken_json_names_file_line_and_column(val_only: PoseDataset, tmp_path: Path):
    broken = _broken_copy(val_only, tmp_path / "b", lambda c, i: None)
    text = broken.annotation_file(SPLIT).read_text()
    broken.annotation_file(SPLIT).write_text(text[:5000])  # indent=1 JSON cut mid-record
    line = text[:5000].count("\n") + 1
    with pytest.raises(VtposeError, match=rf"person_keypoints_val2017\.json: broken JSON at line {line}, column"):
        load_coco_json(broken.annotation_file(SPLIT))
    with pytest.raises(VtposeError, match="broken JSON"):  # no record-level skip can repair a file
        validate_dataset(broken, tmp_path / "out", on_error="skip")
    assert not (tmp_path / "out").exists()


def test_small_overshoot_is_tolerated(val_only: PoseDataset, tmp_path: Path):
    def edit(coco, images):
        a = _person(coco)
        im = _image_of(coco, a)
        a["bbox"][2] = im["width"] - a["bbox"][0] + 0.5  # 0.5 px past the right edge

    broken = _broken_copy(val_only, tmp_path / "b", edit)
    _, report = validate_dataset(broken, tmp_path / "out", on_error="fail")
    assert report.ok
    with pytest.raises(VtposeError, match="extends outside"):
        validate_dataset(broken, tmp_path / "strict", on_error="fail", tolerance_px=0.0)


def test_bad_policy_and_missing_person_category(val_only: PoseDataset, tmp_path: Path):
    with pytest.raises(VtposeError, match="must be 'fail' or 'skip'"):
        validate_dataset(val_only, tmp_path / "x", on_error="ignore")  # type: ignore[arg-type]
    broken = _broken_copy(val_only, tmp_path / "b", lambda c, i: c.update(categories=[]))
    with pytest.raises(VtposeError, match="no person category"):
        validate_dataset(broken, tmp_path / "out", on_error="skip")


def test_image_size_check_uses_real_pixels(val_only: PoseDataset, tmp_path: Path):
    def edit(coco, images):
        im = coco["images"][0]
        Image.new("RGB", (im["width"] // 2, im["height"])).save(images / "tmp.jpg")
        os.replace(images / "tmp.jpg", images / im["file_name"])  # replaces the link, not the shared file

    broken = _broken_copy(val_only, tmp_path / "b", edit)
    _, report = validate_dataset(broken, tmp_path / "out", on_error="skip")
    assert [i.problem for i in report.issues if "JSON says" in i.problem]
