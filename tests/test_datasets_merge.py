"""Several sources in one run (issue 19): the merge of the COCO and MPII samples, its YOLO conversion with weights,
the `data.sources` config, and each source evaluated on its own, equal to evaluating it alone."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vtpose.artifacts import PoseDataset
from vtpose.data import (
    SourceSpec,
    convert_to_yolo,
    ingest_coco_folder,
    ingest_mpii,
    merge_datasets,
    source_part,
    validate_dataset,
)
from vtpose.data.merge import MERGED_TRAIN, MERGED_VAL, train_entries
from vtpose.data.mpii_mat import ingest_mpii_mat
from vtpose.data.reports import conversion_markdown, dataset_markdown, dataset_statistics
from vtpose.data.yolo import TRAIN_LIST
from vtpose.errors import VtposeError
from vtpose.keypoints import KEYPOINT_INDEX, MPII_JOINT_NAMES, MPII_TO_COCO, NUM_KEYPOINTS
from vtpose.paths import COCO_MINI_DIR, MPII_SAMPLE_DIR, PRETRAINED_WEIGHTS
from vtpose.testing.mpii_mat import sample_entries, write_sample_source
from vtpose.training.bootstrap import CANDIDATE, PRETRAINED
from vtpose.training.config import DataConfig, PromotionConfig, check_rule_sources
from vtpose.training.evaluate import evaluation_report
from vtpose.training.mlflow_logging import evaluation_metrics
from vtpose.training.per_source import PCKH_MEAN_JOINTS, pckh_of_detections
from vtpose.training.promotion import decide_from_report
from vtpose.training.summary import decision_lines, report_lines

FACE = [KEYPOINT_INDEX[n] for n in ("nose", "left_eye", "right_eye", "left_ear", "right_ear")]


def _validated(dataset: PoseDataset, dest: Path) -> PoseDataset:
    return validate_dataset(dataset, dest, on_error="skip")[0]


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, PoseDataset]:
    """The COCO sample and the MPII sample (mmpose JSON), each validated as a single-source run does it."""
    root = tmp_path_factory.mktemp("samples")
    coco = ingest_coco_folder(COCO_MINI_DIR, root / "coco", train_split="train2017", val_split="val2017")
    mpii = ingest_mpii(MPII_SAMPLE_DIR, root / "mpii")
    return {"coco-person-mini": _validated(coco, root / "coco-valid"), "mpii-sample": _validated(mpii, root / "mv")}


def _labels(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.txt"))}


def test_the_merge_adds_up_and_keeps_each_sources_labels_byte_for_byte(
    samples: dict[str, PoseDataset], tmp_path: Path
) -> None:
    coco, mpii = samples["coco-person-mini"], samples["mpii-sample"]
    specs = [SourceSpec("coco-person-mini", "coco_folder", "data/coco-person-mini"), SourceSpec("mpii-sample", "mpii")]
    merged = merge_datasets(list(zip(specs, [coco, mpii], strict=True)), tmp_path / "merged")
    assert merged.splits == [MERGED_TRAIN, MERGED_VAL]

    # Counts add up: images and persons of each source's train (val) split in the merged train (val) split. The
    # MPII sample trains and evaluates on its one split, so its 5 images are in both.
    def counts(dataset: PoseDataset, split: str) -> tuple[int, int]:
        data = json.loads(dataset.annotation_file(split).read_text())
        return len(data["images"]), len(data["annotations"])

    for merged_split, coco_split in ((MERGED_TRAIN, "train2017"), (MERGED_VAL, "val2017")):
        own = [counts(coco, coco_split), counts(mpii, "mpii")]
        assert counts(merged, merged_split) == (sum(i for i, _ in own), sum(a for _, a in own))
    assert counts(mpii, "mpii") == (5, 5) and counts(coco, "val2017") == (108, 195)

    # Each source's records come back exactly from the merged split, with the source's own ids.
    for name, dataset, split in (("coco-person-mini", coco, "val2017"), ("mpii-sample", mpii, "mpii")):
        own = json.loads(dataset.annotation_file(split).read_text())
        part, to_source = source_part(json.loads(merged.annotation_file(MERGED_VAL).read_text()), name)
        assert [im["file_name"] for im in part["images"]] == [f"{name}/{im['file_name']}" for im in own["images"]]
        assert [{**im, "file_name": im["file_name"].split("/", 1)[1]} for im in part["images"]] == own["images"]
        assert part["annotations"] == own["annotations"]
        assert sorted(to_source.values()) == sorted(im["id"] for im in own["images"])
        for image in part["images"]:
            assert (merged.image_dir(MERGED_VAL) / image["file_name"]).is_file()

    # Labels: each source's files are byte for byte its single-source conversion's, in its own folder.
    yolo = convert_to_yolo(merged, tmp_path / "yolo")
    singles = {
        "coco-person-mini": convert_to_yolo(coco, tmp_path / "y1"),
        "mpii-sample": convert_to_yolo(mpii, tmp_path / "y2"),
    }
    for name, single in singles.items():
        for merged_split, split in (
            (MERGED_TRAIN, single.summary["train_split"]),
            (MERGED_VAL, single.summary["val_split"]),
        ):
            own = _labels(single.root / "labels" / split)
            assert own and _labels(yolo.root / "labels" / merged_split / name) == own
            assert yolo.summary["sources"][name]["splits"][merged_split] == single.summary["splits"][split]
    summary = yolo.summary
    for key in ("images", "label_files", "persons_kept", "zero_keypoint_skipped", "crowd_skipped"):
        assert (
            summary["totals"][key]
            == sum(s.summary["totals"][key] for s in singles.values())
            + (
                singles["mpii-sample"].summary["totals"][key]  # the MPII split is both train and val
            )
        )
    assert summary["splits"][MERGED_VAL]["persons_kept"] == 95 + 5

    # MPII persons keep their 12 mapped joints; the 5 face joints stay unlabelled (0 0 0), never guessed.
    mpii_rows = [
        [float(v) for v in line.split()]
        for text in _labels(yolo.root / "labels" / MERGED_TRAIN / "mpii-sample").values()
        for line in text.decode().splitlines()
    ]
    assert len(mpii_rows) == 5
    for row in mpii_rows:
        keypoints = np.asarray(row[5:]).reshape(NUM_KEYPOINTS, 3)
        assert (keypoints[FACE] == 0).all() and (keypoints[:, 2] > 0).sum() >= 10
    coco_rows = [line for text in _labels(yolo.root / "labels" / MERGED_TRAIN / "coco-person-mini").values()
                 for line in text.decode().splitlines()]  # fmt: skip
    assert any(float(line.split()[5 + 3 * FACE[0] + 2]) > 0 for line in coco_rows)  # COCO persons have noses

    # Weights 1: each training image listed once, by a path relative to the list.
    entries = (yolo.root / TRAIN_LIST).read_text().splitlines()
    assert len(entries) == summary["train_entries"] == 130 + 5
    assert all((yolo.root / entry).is_file() for entry in entries)
    assert "train: train.txt" in (yolo.root / "data.yaml").read_text()

    # The dashboard's views: each source's statistics, and the merge in the conversion summary.
    stats = dataset_statistics(merged)
    assert stats["sources"]["mpii-sample"]["splits"][MERGED_TRAIN]["labelled_per_keypoint"]["nose"] == 0
    assert stats["sources"]["coco-person-mini"]["splits"][MERGED_VAL]["persons_with_keypoints"] == 95
    markdown = dataset_markdown(stats)
    assert "## Source `mpii-sample` (mpii" in markdown and "Never labelled here (v=0" in markdown
    table = conversion_markdown(summary)
    assert "| coco-person-mini | 1 | 130 | 130 | 143 | 95 |" in table
    assert "| **merged** | | 135 | 135 | 148 | 100 |" in table


def test_a_weight_repeats_a_sources_training_entries(samples: dict[str, PoseDataset], tmp_path: Path) -> None:
    names = [f"./images/train/s/{i}.jpg" for i in range(4)]
    assert train_entries(names, 1.0) == sorted(names)
    assert train_entries(names, 2.0) == sorted(names * 2)
    half = train_entries(names, 0.5)
    assert len(half) == 2 and len(set(half)) == 2 and train_entries(list(reversed(names)), 0.5) == half
    more = train_entries(names, 2.5)  # 10 entries: each image twice, two of them a third time
    assert len(more) == 10 and sorted(more.count(n) for n in names) == [2, 2, 3, 3]
    assert len(train_entries(names, 0.125)) == 1  # 0.5 entries: halves round up
    with pytest.raises(VtposeError, match=r"gives no training entry .*raise it to at least 0.125"):
        train_entries(names, 0.1)

    specs = [SourceSpec("coco-person-mini", weight=1.0), SourceSpec("mpii-sample", weight=3.0)]
    merged = merge_datasets(
        list(zip(specs, [samples["coco-person-mini"], samples["mpii-sample"]], strict=True)), tmp_path / "m"
    )
    yolo = convert_to_yolo(merged, tmp_path / "y")
    entries = (yolo.root / TRAIN_LIST).read_text().splitlines()
    mpii_entries = [e for e in entries if "/mpii-sample/" in e]
    assert len(mpii_entries) == 15 and all(mpii_entries.count(e) == 3 for e in mpii_entries)
    assert yolo.summary["sources"]["mpii-sample"] | {"splits": None} == {
        "weight": 3.0, "train_images": 5, "train_entries": 15, "splits": None,
    }  # fmt: skip


def test_the_sources_config(tmp_path: Path) -> None:
    single = DataConfig()
    assert single.sources is None and [s.label for s in single.source_configs()] == ["coco-person-mini"]
    data = DataConfig.model_validate(
        {"sources": [{"source": "coco_folder", "path": "data/coco-person-mini"},
                     {"source": "mpii", "path": "data/mpii-sample", "weight": 2, "val_fraction": 0.4}]}
    )  # fmt: skip
    assert [s.label for s in data.source_configs()] == ["coco-person-mini", "mpii-sample"]
    one = data.for_source(data.source_configs()[1])
    assert (one.source, one.path, one.val_fraction, one.sources, one.pretrained) == (
        "mpii", "data/mpii-sample", 0.4, None, data.pretrained,
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"both data.sources and single-source keys \(data.path\)"):
        DataConfig.model_validate({"path": "data/x", "sources": [{"path": "data/y"}]})
    with pytest.raises(ValueError, match="names coco-person-mini more than once; give each entry its own `name:`"):
        DataConfig.model_validate({"sources": [{"path": "data/coco-person-mini"}, {"path": "x/coco-person-mini"}]})
    with pytest.raises(ValueError, match=r"data\.sources is empty"):
        DataConfig.model_validate({"sources": []})
    with pytest.raises(ValueError, match="greater than 0"):
        DataConfig.model_validate({"sources": [{"path": "data/y", "weight": 0}]})

    rules = PromotionConfig.model_validate({"rules": [{"metric": "AP", "rule": "no_worse", "source": "mpii"}]})
    with pytest.raises(VtposeError, match=r"promotion.rules\[0\].source 'mpii' is not a configured source .*"
                                          r"coco-person-mini, mpii-sample"):  # fmt: skip
        check_rule_sources(data, rules)
    with pytest.raises(VtposeError, match=r"data\.sources is not set"):
        check_rule_sources(single, rules)
    check_rule_sources(data, PromotionConfig.model_validate({"rules": [{"metric": "AP", "rule": "no_worse",
                                                                          "source": "mpii-sample"}]}))  # fmt: skip


def _coco_subset(tmp_path: Path, per_split: int) -> Path:
    """A COCO folder of the first `per_split` images with persons of each split of the COCO sample."""
    root = tmp_path / "coco-subset"
    for split in ("train2017", "val2017"):
        coco = json.loads((COCO_MINI_DIR / "annotations" / f"person_keypoints_{split}.json").read_text())
        with_person = sorted({a["image_id"] for a in coco["annotations"] if a.get("num_keypoints", 0) > 0})
        keep = set(with_person[:per_split])
        coco["images"] = [im for im in coco["images"] if im["id"] in keep]
        coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] in keep]
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        (root / "annotations" / f"person_keypoints_{split}.json").write_text(json.dumps(coco))
        (root / "images" / split).mkdir(parents=True)
        for image in coco["images"]:
            os.symlink(
                COCO_MINI_DIR / "images" / split / image["file_name"], root / "images" / split / image["file_name"]
            )
    return root


def test_each_source_is_scored_as_it_would_be_alone(tmp_path: Path) -> None:
    """The pretrained checkpoint as candidate and baseline's stand-in: per-source numbers, bootstrap and PCKh on the
    merged val split are the ones an evaluation of that source alone gives."""
    coco = _validated(
        ingest_coco_folder(_coco_subset(tmp_path, 6), tmp_path / "c", train_split="train2017", val_split="val2017"),
        tmp_path / "cv",
    )
    mpii = _validated(ingest_mpii_mat(write_sample_source(tmp_path, sample_entries()), tmp_path / "m"), tmp_path / "mv")
    merged = merge_datasets([(SourceSpec("coco"), coco), (SourceSpec("mpii"), mpii)], tmp_path / "merged")

    def evaluate(dataset: PoseDataset) -> Any:
        split = dataset.val_split
        return evaluation_report(
            PRETRAINED_WEIGHTS, dataset.annotation_file(split), dataset.image_dir(split), split=split,
            baseline_weights=PRETRAINED_WEIGHTS, imgsz=320, previews=0, bootstrap_resamples=50, bootstrap_seed=3,
        )  # fmt: skip

    report = evaluate(merged)
    assert list(report.per_source) == ["coco", "mpii"] and report.num_images == 6 + 5
    for name, dataset in (("coco", coco), ("mpii", mpii)):
        alone = evaluate(dataset)
        part = report.per_source[name]
        assert part["num_images"] == alone.num_images
        assert part["stats"] == alone.stats and part["baseline_stats"] == alone.baseline_stats
        assert part["bootstrap"] == alone.bootstrap
        # PCKh on the source's own ground truth and detections (the baseline is the same checkpoint here).
        own = json.loads(dataset.annotation_file(dataset.val_split).read_text())
        expected = pckh_of_detections(own, alone.results_json)
        assert part["pckh"] == ({CANDIDATE: expected, PRETRAINED: expected} if name == "mpii" else {})
    pckh = report.per_source["mpii"]["pckh"][CANDIDATE]
    assert pckh["persons"] == 5 and pckh["persons_without_head_box"] == 0 and 0 < pckh["PCKh"] <= 1
    assert pckh["per_joint"]["head_top"] is None and set(pckh["mean_joints"]) == set(PCKH_MEAN_JOINTS)
    assert report.stats != report.per_source["coco"]["stats"]  # the combined set is both sources together

    # In the model version's metadata, MLflow's metrics and the summary, beside the combined set's.
    brief = report.per_source_summary()["mpii"]
    assert brief["trained"] == report.per_source["mpii"]["stats"] and brief["PCKh"][CANDIDATE] == pckh["PCKh"]
    assert brief["pretrained"] == report.per_source["mpii"]["baseline_stats"] and brief["num_images"] == 5
    metrics = evaluation_metrics(report)
    assert metrics["source/mpii/coco_AP"] == report.per_source["mpii"]["stats"]["AP"]
    assert metrics["source/mpii/pckh"] == pckh["PCKh"] and "source/coco/pckh" not in metrics
    assert metrics["source/coco/candidate_minus_pretrained_AP"] == 0.0
    text = "\n".join(report_lines(report))
    assert "evaluation on val of source mpii (5 images)" in text and "PCKh@0.5 trained: " in text
    assert "## Source `mpii` alone (5 val images)" in report.markdown()

    # The gate reads the source a rule names, and says so.
    rules = PromotionConfig.model_validate(
        {"rules": [{"metric": "AP", "rule": "no_worse", "source": "mpii"}, {"metric": "AP", "rule": "no_worse"}]}
    ).gate_rules()
    decision = decide_from_report(report, rules, None)
    first, second = decision.checks
    assert (decision.source, first["source"], second["source"]) == ("mpii", "mpii", None)
    assert first["candidate"] == report.per_source["mpii"]["stats"]["AP"] and second["candidate"] == report.stats["AP"]
    assert first["reason"].startswith("AP on source mpii ") and decision.promote  # equal weights: ties pass
    record = {**decision.to_dict(), "model_version": "1"}
    assert "rule AP on source mpii no_worse: passed" in "\n".join(decision_lines(record))
    unknown = PromotionConfig.model_validate({"rules": [{"metric": "AP", "rule": "no_worse", "source": "x"}]})
    with pytest.raises(VtposeError, match=r"has no AP on source x \(sources scored: coco, mpii\)"):
        decide_from_report(report, unknown.gate_rules(), None)


def test_pckh_of_detections_against_hand_computed_values() -> None:
    """One MPII person with a head box of diagonal 50 (head size 30, threshold 15 px) and two detections."""
    joints = [[100.0 + 10 * j, 200.0, 2] for j in range(len(MPII_JOINT_NAMES))]
    joints[MPII_JOINT_NAMES.index("l_ankle")] = [0.0, 0.0, 0]  # unlabelled: counts neither way
    # Hips at x 120 and 130, shoulders at 220 and 230: their midpoints 25 px off pelvis, 5 px off thorax.
    joints[MPII_JOINT_NAMES.index("pelvis")] = [150.0, 200.0, 2]
    joints[MPII_JOINT_NAMES.index("thorax")] = [230.0, 200.0, 2]
    person_kpts = np.zeros((NUM_KEYPOINTS, 3))
    for m, c in MPII_TO_COCO.items():
        if joints[m][2]:
            person_kpts[c] = joints[m]
    coco = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 400, "height": 400}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 10000.0, "num_keypoints": 11,
             "keypoints": person_kpts.reshape(-1).tolist(), "bbox": [90, 150, 200, 100],
             "mpii": {"joints": joints, "head_box": [0.0, 0.0, 30.0, 40.0]}},
        ],
    }  # fmt: skip
    exact = {"image_id": 1, "category_id": 1, "score": 0.9, "keypoints": person_kpts.reshape(-1).tolist()}
    result = pckh_of_detections(coco, [exact])
    assert result is not None and result["PCKh"] == 1.0 and result["unmatched_persons"] == 0
    assert result["per_joint"]["l_ankle"] is None and result["labelled"]["l_ankle"] == 0
    # Pelvis and thorax are the midpoints: 25 px off (wrong) and 5 px off (right); neither is in the mean.
    assert result["per_joint"]["pelvis"] == 0.0 and result["per_joint"]["thorax"] == 1.0

    # Right wrist 14 px off (within 15), right elbow 16 px off (outside), left wrist 15 px (the bound counts).
    moved = person_kpts.copy()
    moved[KEYPOINT_INDEX["right_wrist"], 0] += 14
    moved[KEYPOINT_INDEX["right_elbow"], 1] += 16
    moved[KEYPOINT_INDEX["left_wrist"], 0] -= 15
    shifted = {**exact, "keypoints": moved.reshape(-1).tolist()}
    low = {**exact, "score": 0.2}  # below PCKH_MIN_SCORE: never offered to the person
    result = pckh_of_detections(coco, [low, shifted])
    assert result is not None
    assert (result["per_joint"]["r_wrist"], result["per_joint"]["r_elbow"], result["per_joint"]["l_wrist"]) == (
        1.0, 0.0, 1.0,
    )  # fmt: skip
    assert result["PCKh"] == round(10 / 11, 4)  # 11 labelled mapped joints (l_ankle is not), the elbow wrong
    # No detection at all: every labelled joint wrong, and the person counted as unmatched.
    result = pckh_of_detections(coco, [low])
    assert result is not None and result["PCKh"] == 0.0 and result["unmatched_persons"] == 1
    # No head box (mmpose's JSON has none): nothing to score, and said so.
    coco["annotations"][0]["mpii"]["head_box"] = None
    result = pckh_of_detections(coco, [exact])
    assert result is not None and result["PCKh"] is None and result["persons_without_head_box"] == 1
    assert pckh_of_detections({**coco, "annotations": [{**coco["annotations"][0], "mpii": None}]}, [exact]) is None
