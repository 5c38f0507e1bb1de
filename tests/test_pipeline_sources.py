"""The training pipeline on two sources (data.sources): the COCO sample and MPII's own .mat written from the MPII
sample (head boxes, so PCKh), merged, trained one epoch at a tiny size, evaluated per source, gated on one source;
in the isolated ZenML store with the real MLflow tracker (tests/conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import mlflow
import numpy as np
import pytest
import yaml
from zenml.client import Client
from zenml.io import fileio

from vtpose.artifacts import PoseDataset, YoloPoseDataset
from vtpose.data import validate_dataset
from vtpose.data.merge import MERGED_VAL, source_part
from vtpose.data.mpii_mat import ingest_mpii_mat
from vtpose.paths import CONFIGS_DIR, PRETRAINED_WEIGHTS
from vtpose.testing.mpii_mat import sample_entries, write_sample_source
from vtpose.training.bootstrap import CANDIDATE
from vtpose.training.evaluate import evaluation_report
from vtpose.training.registry import STATS_METADATA_KEY
from vtpose.training.reports import EvaluationReport
from vtpose.training.summary import decision_lines, report_lines

pytestmark = pytest.mark.slow  # a training run (minutes on a busy CPU)

IMGSZ = 160


def _output(run: Any, step: str, name: str) -> Any:
    return run.steps[step].outputs[name][0]


def _config(tmp_path: Path, mpii_source: Path) -> Path:
    """configs/smoke.yaml with two sources, no packaging, and a gate that reads the MPII source's APm (no ground
    truth there: its significantly_better rule fails, so this run never changes what the store serves)."""
    config = yaml.safe_load((CONFIGS_DIR / "smoke.yaml").read_text())
    parameters = config["parameters"]
    data = parameters["data"]
    parameters["data"] = {
        "sources": [
            {"source": "coco_folder", "path": data["path"], "train_split": "train2017", "val_split": "val2017"},
            {"source": "mpii_mat", "path": str(mpii_source), "name": "mpii", "weight": 2},
        ],
        "pretrained": data["pretrained"],
    }
    parameters["train"]["imgsz"] = parameters["evaluation"]["imgsz"] = IMGSZ
    parameters["package"] = {"enabled": False}
    parameters["promotion"] = {
        "rules": [
            {"metric": "APm", "rule": "significantly_better", "source": "mpii"},
            {"metric": "AP", "rule": "not_significantly_worse", "margin": 0.05},
        ],
        "fail_on_reject": False,
    }
    path = tmp_path / "sources.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def sources_run(zenml_stack: str, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from pipelines import training_pipeline

    root = tmp_path_factory.mktemp("sources")
    mpii_source = write_sample_source(root, sample_entries())
    run = training_pipeline.with_options(config_path=str(_config(root, mpii_source)))()
    return Client().get_pipeline_run(run.id), mpii_source, root


def test_each_source_is_ingested_validated_and_merged(sources_run) -> None:  # type: ignore[no-untyped-def]
    run, _, _ = sources_run
    assert run.status.value == "completed"
    for name in ("coco-person-mini", "mpii"):
        assert f"ingest_dataset_{name}" in run.steps and f"validate_dataset_{name}" in run.steps
    assert "ingest_dataset" not in run.steps and "validate_dataset" not in run.steps
    dataset = _output(run, "merge_sources", "dataset").load()
    assert isinstance(dataset, PoseDataset) and [s["name"] for s in dataset.info["sources"]] == [
        "coco-person-mini",
        "mpii",
    ]
    assert dataset.info["splits"]["train"]["images"] == 130 + 5 and dataset.info["splits"]["val"]["images"] == 108 + 5
    yolo = _output(run, "convert_dataset", "yolo_dataset").load()
    assert isinstance(yolo, YoloPoseDataset)
    assert yolo.summary["sources"]["mpii"]["train_entries"] == 10 and yolo.summary["train_entries"] == 140
    # The dashboard: each source's previews beside the merged ones, the merge in the conversion summary.
    artifact = _output(run, "merge_sources", "dataset")
    names = {Path(v.uri).name for v in artifact.visualizations}
    assert {"previews.png", "statistics.md", "previews_coco-person-mini.png", "previews_mpii.png"} <= names
    (uri,) = [v.uri for v in artifact.visualizations if v.uri.endswith("previews_mpii.png")]
    with fileio.open(uri, "rb") as f:
        assert cv2.imdecode(np.frombuffer(f.read(), np.uint8), cv2.IMREAD_COLOR) is not None
    assert artifact.run_metadata["mpii_val_persons_with_keypoints"] == 5
    (summary,) = [v.uri for v in _output(run, "convert_dataset", "yolo_dataset").visualizations]
    with fileio.open(summary, "r") as f:
        assert "| mpii | 2 | 5 | 10 |" in f.read()
    assert len(_output(run, "train_model", "training_curves").load().rows) == 1


def test_evaluation_per_source_in_the_report_mlflow_and_summary(sources_run) -> None:  # type: ignore[no-untyped-def]
    run, mpii_source, root = sources_run
    report = _output(run, "evaluate_model", "evaluation_report").load()
    assert isinstance(report, EvaluationReport) and list(report.per_source) == ["coco-person-mini", "mpii"]
    assert report.num_images == 113 and report.per_source["mpii"]["num_images"] == 5
    pckh = report.per_source["mpii"]["pckh"][CANDIDATE]
    assert pckh["persons"] == 5 and pckh["PCKh"] is not None and report.per_source["coco-person-mini"]["pckh"] == {}

    # The MPII numbers are those of the same weights on that source alone (ingested and validated here).
    alone = validate_dataset(ingest_mpii_mat(mpii_source, root / "alone"), root / "alone-valid", on_error="skip")[0]
    weights = _output(run, "train_model", "trained_weights").load()
    own = evaluation_report(
        weights.path, alone.annotation_file(alone.val_split), alone.image_dir(alone.val_split), split=alone.val_split,
        baseline_weights=PRETRAINED_WEIGHTS, imgsz=IMGSZ, previews=0, bootstrap_resamples=200, bootstrap_seed=0,
    )  # fmt: skip
    part = report.per_source["mpii"]
    assert part["stats"] == own.stats and part["baseline_stats"] == own.baseline_stats
    # The run's bootstrap also holds a production version when the store has one (an earlier test promoted it):
    # the models both evaluations have must agree exactly.
    assert own.bootstrap and part["bootstrap"]
    for kind in ("intervals", "differences"):
        assert {k: part["bootstrap"][kind][k] for k in own.bootstrap[kind]} == own.bootstrap[kind], kind
    merged = _output(run, "merge_sources", "dataset").load()
    coco_part, _ = source_part(json.loads(merged.annotation_file(MERGED_VAL).read_text()), "mpii")
    assert [a["mpii"] for a in coco_part["annotations"]] == [
        a["mpii"] for a in json.loads(alone.annotation_file(alone.val_split).read_text())["annotations"]
    ]

    tracker = Client().active_stack.experiment_tracker
    mlflow.set_tracking_uri(tracker.get_tracking_uri())
    (mlflow_run,) = [
        r for r in mlflow.search_runs(experiment_names=["training_pipeline"], output_format="list")
        if r.info.run_name == run.name
    ]  # fmt: skip
    metrics = mlflow_run.data.metrics
    assert metrics["source/mpii/coco_AP"] == pytest.approx(part["stats"]["AP"], abs=1e-12)
    assert metrics["source/mpii/pckh"] == pytest.approx(pckh["PCKh"], abs=1e-12)
    assert metrics["source/coco-person-mini/coco_APl"] == pytest.approx(
        report.per_source["coco-person-mini"]["stats"]["APl"], abs=1e-12
    )
    assert metrics["coco_AP"] == pytest.approx(report.stats["AP"], abs=1e-12)  # the combined set, as before
    version_metadata = run.model_version.run_metadata[f"per_source_{STATS_METADATA_KEY}"]
    assert version_metadata["mpii"]["trained"] == pytest.approx(part["stats"], abs=1e-12)
    text = "\n".join(report_lines(report))
    assert "evaluation on val of source mpii (5 images)" in text and "PCKh@0.5 trained: " in text


def test_the_gate_names_the_source_it_judged(sources_run) -> None:  # type: ignore[no-untyped-def]
    run, _, _ = sources_run
    decision = _output(run, "promote_model", "promotion_decision").load()
    assert decision["promote"] is False and decision["source"] == "mpii"
    first, second = decision["checks"]
    assert (first["source"], first["metric"], first["passed"]) == ("mpii", "APm", False)
    assert first["reason"].startswith("APm on source mpii has no ground truth in its size range")
    assert second["source"] is None
    assert "rule APm on source mpii significantly_better: FAILED" in "\n".join(decision_lines(decision))
