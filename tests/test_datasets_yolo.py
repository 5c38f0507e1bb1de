"""COCO -> YOLO-pose conversion, checked against Ultralytics' own converter and loader on the real sample."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from ultralytics.data.converter import convert_coco
from ultralytics.data.utils import verify_image_label

from vtpose.artifacts import PoseDataset
from vtpose.data import convert_to_yolo, ingest_coco_folder, ingest_mpii, write_data_yaml, write_yolo_labels
from vtpose.errors import VtposeError
from vtpose.keypoints import FLIP_IDX
from vtpose.paths import COCO_MINI_DIR, MPII_SAMPLE_DIR


@pytest.fixture(scope="module")
def coco_mini(tmp_path_factory: pytest.TempPathFactory) -> PoseDataset:
    return ingest_coco_folder(COCO_MINI_DIR, tmp_path_factory.mktemp("ingest") / "coco-mini")


@pytest.fixture(scope="module")
def yolo_root(coco_mini: PoseDataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return convert_to_yolo(coco_mini, tmp_path_factory.mktemp("yolo") / "coco-mini-yolo").root


def _rows(text: str) -> np.ndarray:
    """Parse a label file into (N, 56) floats."""
    return np.array([[float(v) for v in line.split()] for line in text.splitlines()]).reshape(-1, 56)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("split", ["train2017", "val2017"])
def test_labels_match_ultralytics_convert_coco(coco_mini: PoseDataset, yolo_root: Path, tmp_path: Path, split: str):
    ann_dir = tmp_path / "ann"
    ann_dir.mkdir()
    shutil.copy(coco_mini.annotation_file(split), ann_dir)
    convert_coco(str(ann_dir), str(tmp_path / "uc"), use_keypoints=True, cls91to80=False)
    theirs_dir = tmp_path / "uc" / "labels" / f"person_keypoints_{split}"
    theirs = {p.name: p.read_text() for p in theirs_dir.glob("*.txt")}
    ours = {p.name: p.read_text() for p in (yolo_root / "labels" / split).glob("*.txt")}
    coco = json.loads(coco_mini.annotation_file(split).read_text())

    # Every image gets a label file; convert_coco writes one only for images with an annotation.
    assert len(ours) == len(coco["images"])
    assert set(theirs) <= set(ours)
    rows_total = 0
    for name, text in theirs.items():
        assert ours[name] == text, f"{name} differs from convert_coco's"
        a, b = _rows(ours[name]), _rows(text)
        np.testing.assert_allclose(a, b, atol=1e-6)
        rows_total += len(a)
    for name in set(ours) - set(theirs):  # negatives: empty on our side, absent on theirs
        assert ours[name] == ""
    expected_persons = sum(1 for a in coco["annotations"] if not a["iscrowd"] and a["num_keypoints"] > 0)
    assert rows_total == expected_persons > 0


def test_rows_agree_with_the_json(coco_mini: PoseDataset, yolo_root: Path):
    coco = json.loads(coco_mini.annotation_file("val2017").read_text())
    ann = max(coco["annotations"], key=lambda a: (a["num_keypoints"], a["id"]))
    image = next(im for im in coco["images"] if im["id"] == ann["image_id"])
    w, h = image["width"], image["height"]
    lines = (yolo_root / "labels" / "val2017" / Path(image["file_name"]).with_suffix(".txt").name).read_text()
    rows = _rows(lines)
    x, y, bw, bh = ann["bbox"]
    want = [0, (x + bw / 2) / w, (y + bh / 2) / h, bw / w, bh / h]
    kp = np.array(ann["keypoints"], dtype=float).reshape(17, 3) / [w, h, 1]
    want = np.array(want + kp.reshape(-1).tolist())
    assert np.abs(rows - want).max(axis=1).min() < 1e-6  # the person is one of the rows, to %g precision


def test_ultralytics_loader_accepts_every_label(yolo_root: Path):
    checked = 0
    for split in ("train2017", "val2017"):
        for image in sorted((yolo_root / "images" / split).iterdir()):
            label = yolo_root / "labels" / split / f"{image.stem}.txt"
            out = verify_image_label((str(image), str(label), "", True, 1, 17, 3, False))
            nm, nf, _ne, nc, msg = out[5:10]
            assert (nm, nf, nc) == (0, 1, 0), msg
            keypoints = out[4]
            assert keypoints.shape[1:] == (17, 3)
            checked += 1
    assert checked == 238


def test_data_yaml_is_relocatable(yolo_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from ultralytics.data import utils as data_utils

    data = yaml.safe_load((yolo_root / "data.yaml").read_text())
    assert "path" not in data
    assert data["kpt_shape"] == [17, 3]
    assert data["flip_idx"] == list(FLIP_IDX)
    assert data["names"] == {0: "person"}

    moved = tmp_path / "elsewhere" / "ds"
    shutil.copytree(yolo_root, moved)
    monkeypatch.chdir(tmp_path)  # a cwd unrelated to the dataset
    monkeypatch.setattr(data_utils, "check_font", lambda *a, **k: None)  # a font download, irrelevant, no network
    resolved = data_utils.check_det_dataset(str(moved / "data.yaml"))
    assert Path(resolved["train"]) == (moved / "images" / "train2017").resolve()
    assert Path(resolved["val"]) == (moved / "images" / "val2017").resolve()
    assert resolved["kpt_shape"] == [17, 3]

    write_data_yaml(moved, absolute=True)
    data = yaml.safe_load((moved / "data.yaml").read_text())
    assert data["path"] == str(moved.resolve())
    assert data["train"] == "images/train2017"


def test_conversion_is_deterministic(coco_mini: PoseDataset, yolo_root: Path, tmp_path: Path):
    again = convert_to_yolo(coco_mini, tmp_path / "again")
    assert _tree(again.root) == _tree(yolo_root)
    summary = json.loads((yolo_root / "summary.json").read_text())
    assert summary == again.summary
    val = summary["splits"]["val2017"]
    assert val == {
        "images": 108,
        "label_files": 108,
        "empty_label_files": 72,
        "negative_images": 60,
        "persons_kept": 95,
        "crowd_skipped": 4,
        "empty_box_skipped": 0,
        "zero_keypoint_skipped": 96,
        "other_category_skipped": 0,
        "duplicate_rows_dropped": 0,
    }


def test_failure_mid_way_leaves_nothing(coco_mini: PoseDataset, tmp_path: Path):
    broken = tmp_path / "broken"
    shutil.copytree(coco_mini.root, broken)  # real copies: deleting one must not touch the shared data
    victim = sorted((broken / "images" / "val2017").iterdir())[-1]
    victim.unlink()
    with pytest.raises(VtposeError, match=victim.name):
        convert_to_yolo(PoseDataset.open(broken), tmp_path / "out" / "yolo")
    assert os.listdir(tmp_path / "out") == []  # no dest folder, no temp folder


def test_failure_keeps_previous_output(coco_mini: PoseDataset, yolo_root: Path, tmp_path: Path):
    dest = tmp_path / "yolo"
    shutil.copytree(yolo_root, dest)
    before = _tree(dest)
    coco = json.loads(coco_mini.annotation_file("val2017").read_text())
    coco["annotations"][0]["keypoints"] = coco["annotations"][0]["keypoints"][:50]
    broken = tmp_path / "broken"
    shutil.copytree(coco_mini.root, broken)
    (broken / "annotations" / "person_keypoints_val2017.json").unlink()
    (broken / "annotations" / "person_keypoints_val2017.json").write_text(json.dumps(coco))
    with pytest.raises(VtposeError, match=r"annotation id \d+ needs 4 bbox values and 51 keypoint values"):
        convert_to_yolo(PoseDataset.open(broken), dest)
    assert _tree(dest) == before


def test_negatives_can_be_left_out(coco_mini: PoseDataset, tmp_path: Path):
    out = convert_to_yolo(coco_mini, tmp_path / "pos", include_negatives=False)
    val = out.summary["splits"]["val2017"]
    assert val["label_files"] == 108 - 60
    assert len(list((out.root / "images" / "val2017").iterdir())) == 48


def test_write_yolo_labels_edge_cases(tmp_path: Path):
    kp = [0] * 51
    kp[0:3] = [10, 20, 2]
    person = {"image_id": 1, "category_id": 1, "iscrowd": 0, "bbox": [0, 0, 50, 40], "keypoints": kp}
    coco = {
        "images": [
            {"id": 1, "file_name": "a.jpg", "width": 100, "height": 80},
            {"id": 2, "file_name": "sub/b.jpg", "width": 100, "height": 80},
        ],
        "annotations": [
            {**person, "id": 1},
            {**person, "id": 2},  # identical row: written once, like convert_coco
            {**person, "id": 3, "bbox": [0, 0, 0, 40]},  # zero width
            {**person, "id": 4, "iscrowd": 1},
            {**person, "id": 5, "keypoints": [0] * 51},
            {**person, "id": 6, "category_id": 2},
        ],
    }
    counts = write_yolo_labels(coco, tmp_path)
    assert (tmp_path / "a.txt").read_text() == "0 0.25 0.25 0.5 0.5 0.1 0.25 2" + " 0 0 0" * 16 + "\n"
    assert (tmp_path / "sub" / "b.txt").read_text() == ""
    assert counts["persons_kept"] == 1
    assert counts["duplicate_rows_dropped"] == 1
    assert counts["empty_box_skipped"] == 1
    assert counts["crowd_skipped"] == 1
    assert counts["zero_keypoint_skipped"] == 1
    assert counts["other_category_skipped"] == 1
    assert counts["negative_images"] == 1


def test_mpii_converts_with_one_split_for_train_and_val(tmp_path: Path):
    mpii = ingest_mpii(MPII_SAMPLE_DIR, tmp_path / "mpii")
    out = convert_to_yolo(mpii, tmp_path / "yolo")
    data = yaml.safe_load(out.data_yaml.read_text())
    assert data["train"] == data["val"] == "images/mpii"
    assert out.summary["totals"]["persons_kept"] == 5
