"""Ingestion of the real COCO sample and the real MPII sample."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from vtpose.artifacts import PoseDataset
from vtpose.data import ingest_coco_folder, ingest_mpii, validate_dataset
from vtpose.errors import VtposeError
from vtpose.keypoints import KEYPOINT_INDEX
from vtpose.paths import COCO_MINI_DIR, MPII_SAMPLE_DIR


def test_ingest_coco_folder(tmp_path: Path):
    ds = ingest_coco_folder(COCO_MINI_DIR, tmp_path / "ds")
    assert (ds.name, ds.splits, ds.train_split, ds.val_split) == (
        "coco-person-mini", ["train2017", "val2017"], "train2017", "val2017"
    )  # fmt: skip
    # SOURCE.md's table.
    assert ds.info["splits"]["train2017"] | {"missing_images": 0} == {
        "images": 130, "annotations": 271, "persons_with_keypoints": 143, "crowd": 8, "negative_images": 68,
        "missing_images": 0,
    }  # fmt: skip
    assert ds.info["splits"]["val2017"]["crowd"] == 4
    for split, n in (("train2017", 130), ("val2017", 108)):
        assert (
            ds.annotation_file(split).read_bytes()
            == (COCO_MINI_DIR / "annotations" / f"person_keypoints_{split}.json").read_bytes()
        )
        assert len(os.listdir(ds.image_dir(split))) == n
    reopened = PoseDataset.open(tmp_path / "ds")
    assert reopened.info == ds.info and reopened.root == tmp_path / "ds"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left


def test_ingest_copies_only_referenced_images_and_renames_splits(tmp_path: Path):
    src = tmp_path / "src"
    (src / "annotations").mkdir(parents=True)
    coco = json.loads((COCO_MINI_DIR / "annotations" / "person_keypoints_val2017.json").read_text())
    coco["images"] = coco["images"][:3]
    keep = {im["id"] for im in coco["images"]}
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] in keep]
    (src / "annotations" / "person_keypoints_val2017.json").write_text(json.dumps(coco))
    os.symlink(COCO_MINI_DIR / "images", src / "images")  # 108 images on disk, 3 referenced
    ds = ingest_coco_folder(src, tmp_path / "ds", splits={"val2017": "val"}, train_split="val", val_split="val")
    assert ds.splits == ["val"]
    assert sorted(os.listdir(ds.image_dir("val"))) == sorted(im["file_name"] for im in coco["images"])


def test_ingest_errors(tmp_path: Path):
    with pytest.raises(VtposeError, match="no person_keypoints_"):
        ingest_coco_folder(tmp_path, tmp_path / "out")
    with pytest.raises(VtposeError, match="train_split 'train' is not one of"):
        ingest_coco_folder(COCO_MINI_DIR, tmp_path / "out", train_split="train")
    src = tmp_path / "evil"
    (src / "annotations").mkdir(parents=True)
    coco = {"images": [{"id": 1, "file_name": "../../etc/passwd", "width": 1, "height": 1}], "annotations": []}
    (src / "annotations" / "person_keypoints_x.json").write_text(json.dumps(coco))
    with pytest.raises(VtposeError, match="not a plain relative name"):
        ingest_coco_folder(src, tmp_path / "out", train_split="x", val_split="x")
    assert not (tmp_path / "out").exists()


def test_ingest_mpii_maps_joints(tmp_path: Path):
    ds = ingest_mpii(MPII_SAMPLE_DIR, tmp_path / "mpii")
    assert ds.splits == ["mpii"] and ds.train_split == ds.val_split == "mpii"
    coco = json.loads(ds.annotation_file("mpii").read_text())
    raw = json.loads((MPII_SAMPLE_DIR / "annotations" / "test_mpii.json").read_text())
    assert len(coco["images"]) == 5 and len(coco["annotations"]) == 5

    # By hand: 005808361.jpg, MPII joint 10 (r_wrist) is [869.0, 214.0] 1-based -> COCO right_wrist (868, 213).
    image = next(im for im in coco["images"] if im["file_name"] == "005808361.jpg")
    assert (image["id"], image["width"], image["height"]) == (5808361, 1280, 720)
    ann = next(a for a in coco["annotations"] if a["image_id"] == image["id"])
    person = next(p for p in raw if p["image"] == "005808361.jpg")
    assert person["joints"][10] == [869.0, 214.0]
    rw = KEYPOINT_INDEX["right_wrist"]
    assert ann["keypoints"][3 * rw : 3 * rw + 3] == [868.0, 213.0, 2]
    la = KEYPOINT_INDEX["left_ankle"]  # MPII 5 l_ankle [883, 707]
    assert ann["keypoints"][3 * la : 3 * la + 3] == [882.0, 706.0, 2]
    for face in ("nose", "left_eye", "right_eye", "left_ear", "right_ear"):
        i = KEYPOINT_INDEX[face]
        assert ann["keypoints"][3 * i : 3 * i + 3] == [0, 0, 0]
    assert ann["num_keypoints"] == 12 and ann["iscrowd"] == 0 and ann["category_id"] == 1

    # 051423444.jpg: r_ankle and l_ankle unlabelled (joints_vis 0, joints [-1, -1]) -> (0, 0, 0).
    image = next(im for im in coco["images"] if im["file_name"] == "051423444.jpg")
    ann = next(a for a in coco["annotations"] if a["image_id"] == image["id"])
    for name in ("right_ankle", "left_ankle"):
        i = KEYPOINT_INDEX[name]
        assert ann["keypoints"][3 * i : 3 * i + 3] == [0, 0, 0]
    assert ann["num_keypoints"] == 10

    for a in coco["annotations"]:
        im = next(i for i in coco["images"] if i["id"] == a["image_id"])
        x, y, w, h = a["bbox"]
        assert x >= 0 and y >= 0 and x + w <= im["width"] + 0.01 and y + h <= im["height"] + 0.01
        assert a["area"] == pytest.approx(w * h, rel=1e-6)
        kp = a["keypoints"]
        labelled = [(kp[3 * j], kp[3 * j + 1]) for j in range(17) if kp[3 * j + 2]]
        assert all(x <= kx <= x + w and y <= ky <= y + h for kx, ky in labelled)  # the box holds the joints

    _, report = validate_dataset(ds, tmp_path / "valid", on_error="fail")
    assert report.ok


def test_ingest_mpii_split_is_deterministic(tmp_path: Path):
    a = ingest_mpii(MPII_SAMPLE_DIR, tmp_path / "a", val_fraction=0.4)
    b = ingest_mpii(MPII_SAMPLE_DIR, tmp_path / "b", val_fraction=0.4)
    assert a.splits == ["mpii_train", "mpii_val"] and (a.train_split, a.val_split) == ("mpii_train", "mpii_val")
    for split in a.splits:
        assert a.annotation_file(split).read_bytes() == b.annotation_file(split).read_bytes()
    names = {s: {im["file_name"] for im in json.loads(a.annotation_file(s).read_text())["images"]} for s in a.splits}
    assert len(names["mpii_val"]) == 2 and len(names["mpii_train"]) == 3
    assert not names["mpii_val"] & names["mpii_train"]
    with pytest.raises(VtposeError, match="val_fraction"):
        ingest_mpii(MPII_SAMPLE_DIR, tmp_path / "c", val_fraction=1.0)
