"""MPII's own .mat read directly, checked against mmpose's JSON of the same persons (data/mpii-sample).

The fixture is written with scipy.io.savemat in the structure MATLAB writes `mpii_human_pose_v1_u12_1.mat`: a 1x1
RELEASE struct whose annolist is a 1xN struct array, annorect 1xK struct arrays, annopoints 1x1 structs holding a
1xP point struct array, every number a 1x1 double, strings char arrays, empties 0x0 doubles, single_person an Nx1
cell. The sample's 5 persons go in with the JSON's own coordinates: the JSON was made from this file and keeps its
1-based pixels.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.io import savemat

from vtpose.data import ingest_mpii, validate_dataset
from vtpose.data.mpii_mat import MPII_MAT, ingest_mpii_mat, read_mpii_mat
from vtpose.errors import VtposeError
from vtpose.keypoints import KEYPOINT_INDEX
from vtpose.paths import MPII_SAMPLE_DIR
from vtpose.testing.mpii_mat import EMPTY, HEAD_TOP, write_release
from vtpose.testing.mpii_mat import annorect as _rect
from vtpose.testing.mpii_mat import head_box_around as _head_box
from vtpose.testing.mpii_mat import num as _num
from vtpose.testing.mpii_mat import point as _point
from vtpose.testing.mpii_mat import sample_entries as _sample_entries
from vtpose.testing.mpii_mat import sample_persons as _sample_persons
from vtpose.testing.mpii_mat import sample_points as _sample_points
from vtpose.testing.mpii_mat import struct_array as _struct
from vtpose.testing.mpii_mat import write_sample_source as _source
from vtpose.training.pckh import pckh


def _without_mpii(coco: dict[str, Any]) -> dict[str, Any]:
    return {**coco, "annotations": [{k: v for k, v in a.items() if k != "mpii"} for a in coco["annotations"]]}


@pytest.mark.parametrize("val_fraction", [0.0, 0.4])
def test_the_mat_gives_the_json_paths_dataset(tmp_path: Path, val_fraction: float) -> None:
    # Beside the 5 persons: an unlabelled second person, annorect(2) of the first image, and a test image
    # (img_train 0: its labels are withheld, its persons have only scale and objpos).
    entries = _sample_entries()
    first = _sample_persons()[0]
    entries[0][2].append(_rect(None))
    objpos = _struct(["x", "y"], [{"x": _num(1), "y": _num(1)}])
    source = _source(tmp_path, [*entries, ("099999999.jpg", 0, [{"scale": _num(2.0), "objpos": objpos}], [])])

    from_json = ingest_mpii(MPII_SAMPLE_DIR, tmp_path / "json", val_fraction=val_fraction)
    from_mat = ingest_mpii_mat(source, tmp_path / "mat", val_fraction=val_fraction)
    assert from_mat.splits == from_json.splits
    assert (from_mat.train_split, from_mat.val_split) == (from_json.train_split, from_json.val_split)
    for split in from_json.splits:
        coco_json = json.loads(from_json.annotation_file(split).read_text())
        coco_mat = json.loads(from_mat.annotation_file(split).read_text())
        assert coco_mat["images"] == coco_json["images"]
        assert _without_mpii(coco_mat)["annotations"] == coco_json["annotations"]  # ids, keypoints, boxes, areas
        assert sorted(p.name for p in from_mat.image_dir(split).iterdir()) == sorted(
            im["file_name"] for im in coco_json["images"]
        )
    assert from_mat.info["mat"] == {
        "file": MPII_MAT, "annolist_images": 6, "test_images": 1, "test_persons": 1, "persons_without_points": 1,
        "persons_without_head_box": 0, "train_images_without_labelled_persons": 0, "occluded_joints": 0,
    }  # fmt: skip
    assert from_mat.info["splits"] == from_json.info["splits"]

    # The MPII record: 0-based joints and head box, what PCKh scores against.
    anns = [a for s in from_mat.splits for a in json.loads(from_mat.annotation_file(s).read_text())["annotations"]]
    record = next(a for a in anns if a["image_id"] == 5808361)["mpii"]
    assert first["image"] == "005808361.jpg"
    assert record["record"] == "annolist(1).annorect(1)" and record["single_person"] is True
    assert record["head_box"] == [round(v - 1.0, 4) for v in _head_box(first)]
    assert record["joints"][HEAD_TOP] == [round(c - 1.0, 4) for c in first["joints"][HEAD_TOP]] + [2]
    ankles = next(a for a in anns if a["image_id"] == 51423444)["mpii"]["joints"]
    assert ankles[0] == ankles[5] == [0.0, 0.0, 0]  # r_ankle, l_ankle unlabelled in the JSON, left out of the .mat

    # PCKh reads these records: the ground truth scored against itself is 1.0 on every labelled joint.
    gt = np.array([a["mpii"]["joints"] for a in anns])
    result = pckh(gt, gt[:, :, :2], np.array([a["mpii"]["head_box"] for a in anns]))
    assert result.mean == 1.0 and result.labelled["r_ankle"] == 3

    _, report = validate_dataset(from_mat, tmp_path / "valid", on_error="fail")
    assert report.ok


def test_occluded_joints_are_labelled_but_not_visible(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "images").mkdir(parents=True)
    (source / "images" / "000000001.jpg").symlink_to(MPII_SAMPLE_DIR / "images" / "005808361.jpg")
    points = [_point(12, 900.0, 250.0, _num(1)), _point(13, 1000.0, 250.0, _num(0)), _point(11, 800.0, 340.0, "0")]
    write_release(source / MPII_MAT, [("000000001.jpg", 1, [_rect(points, (900, 100, 960, 180))], [])])
    dataset = ingest_mpii_mat(source, tmp_path / "out")
    (ann,) = json.loads(dataset.annotation_file("mpii").read_text())["annotations"]
    kp = ann["keypoints"]
    rs, ls, re = KEYPOINT_INDEX["right_shoulder"], KEYPOINT_INDEX["left_shoulder"], KEYPOINT_INDEX["right_elbow"]
    assert kp[3 * rs : 3 * rs + 3] == [899.0, 249.0, 2]  # is_visible 1
    assert kp[3 * ls : 3 * ls + 3] == [999.0, 249.0, 1]  # is_visible 0: labelled, occluded
    assert kp[3 * re : 3 * re + 3] == [799.0, 339.0, 1]  # is_visible '0', a char array in the file
    assert ann["num_keypoints"] == 3 and ann["mpii"]["single_person"] is False
    assert ann["mpii"]["joints"][13] == [999.0, 249.0, 1] and ann["mpii"]["head_box"] == [899.0, 99.0, 959.0, 179.0]
    assert dataset.info["mat"]["occluded_joints"] == 2


def test_an_image_with_no_labelled_person_is_skipped_and_counted(tmp_path: Path) -> None:
    source = _source(tmp_path, [*_sample_entries(), ("052475643.jpg", 1, [_rect(None)], [])])
    with pytest.raises(VtposeError, match=r"annolist\(6\) '052475643.jpg': image also listed as annolist\(2\)"):
        read_mpii_mat(source / MPII_MAT)
    persons = [p for p in _sample_persons() if p["image"] != "052475643.jpg"]
    _source(tmp_path, [*_sample_entries(persons, head_boxes=False), ("052475643.jpg", 1, [_rect(None)], [])])
    dataset = ingest_mpii_mat(source, tmp_path / "out")
    coco = json.loads(dataset.annotation_file("mpii").read_text())
    assert sorted(im["file_name"] for im in coco["images"]) == sorted(p["image"] for p in persons)
    counts = dataset.info["mat"]
    assert counts["train_images_without_labelled_persons"] == 1 and counts["persons_without_points"] == 1
    assert counts["persons_without_head_box"] == 4
    assert all(a["mpii"]["head_box"] is None for a in coco["annotations"])


def test_a_file_without_release_names_the_file_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / MPII_MAT
    savemat(path, {"annot": np.zeros((1, 1))})
    with pytest.raises(VtposeError, match=r"no RELEASE struct \(variables found: \['annot'\]\).*re-download") as e:
        read_mpii_mat(path)
    assert str(path) in str(e.value)
    path.write_bytes(b"not a MATLAB file at all" * 10)
    with pytest.raises(VtposeError, match="not a readable MATLAB file"):
        read_mpii_mat(path)
    with pytest.raises(VtposeError, match="MPII annotation file not found"):
        ingest_mpii_mat(tmp_path / "nowhere", tmp_path / "out")


def test_malformed_points_name_the_record(tmp_path: Path) -> None:
    points = [_point(12, 900.0, 250.0, _num(1)), _point(17, 1.0, 2.0, _num(1)), _point(12, 5.0, 5.0, _num(1))]
    points.append({"id": _num(3), "x": _num(7), "y": EMPTY, "is_visible": _num(1)})
    path = write_release(tmp_path / MPII_MAT, [("005808361.jpg", 1, [_rect(points)], [])])
    with pytest.raises(VtposeError) as e:
        read_mpii_mat(path)
    message = str(e.value)
    assert message.startswith(f"{path}: 3 malformed record(s):")
    assert (
        "annolist(1).annorect(1) (005808361.jpg) annopoints.point(2): id 17 is not an MPII joint id (0-15)" in message
    )
    assert "annopoints.point(3): joint id 12 (r_shoulder) is labelled twice" in message
    assert "annopoints.point(4): needs a numeric id, x and y, got id=3.0 x=7.0 y=None" in message
    assert message.endswith("Fix: re-download mpii_human_pose_v1_u12_2.zip from human-pose.mpi-inf.mpg.de and point "
                            f"data.path at the folder holding its {MPII_MAT} and images/.")  # fmt: skip


def test_a_joint_outside_the_image_is_validations_to_report(tmp_path: Path) -> None:
    persons = _sample_persons()
    entries = _sample_entries(persons)
    # 005808361.jpg is 1280x720: its l_wrist (MPII 15, the last point) moved 100 px past the right edge.
    assert persons[0]["image"] == "005808361.jpg" and persons[0]["joints"][15] == [1142.0, 478.0]
    points = _sample_points(persons[0])
    points[-1] = _point(15, 1381.0, 478.0, _num(1))
    entries[0] = (persons[0]["image"], 1, [_rect(points, _head_box(persons[0]))], [1])
    source = _source(tmp_path, entries)
    dataset = ingest_mpii_mat(source, tmp_path / "out")
    with pytest.raises(VtposeError) as e:
        validate_dataset(dataset, tmp_path / "valid", on_error="fail")
    assert (
        "annotations/person_keypoints_mpii.json: annotation id 2 (image id 5808361): keypoint 9 (left_wrist) at "
        "(1380, 477) is outside the 1280x720 image by more than 1 px" in str(e.value)
    )
    assert "Fix: fix the records, or set validation.on_error: skip" in str(e.value)
    valid, report = validate_dataset(dataset, tmp_path / "valid", on_error="skip")
    assert 5808361 not in {a["image_id"] for a in json.loads(valid.annotation_file("mpii").read_text())["annotations"]}
    assert report.splits["mpii"]["skipped_annotations"] == 1 and report.splits["mpii"]["annotations"] == 4


def test_mpii_mat_is_a_data_source(tmp_path: Path) -> None:
    from steps.data.ingest import ingest_dataset
    from vtpose.training.config import DataConfig, check_run_config

    source = _source(tmp_path, _sample_entries())
    config = tmp_path / "mpii_mat.yaml"
    config.write_text(f"parameters:\n  data:\n    source: mpii_mat\n    path: {source}\n")
    data = check_run_config(config)["data"]
    assert isinstance(data, DataConfig) and data.source == "mpii_mat"
    dataset = ingest_dataset.entrypoint(data)  # the step's own function, as the pipeline calls it
    assert dataset.info["format"] == "mpii (RELEASE .mat)" and dataset.info["splits"]["mpii"]["images"] == 5
