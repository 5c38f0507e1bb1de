"""The whole training pipeline on configs/smoke.yaml, in an isolated ZenML store with the real MLflow tracker."""

from __future__ import annotations

import importlib
import importlib.metadata

import mlflow
import pytest
from zenml.client import Client

import steps
from vtpose.artifacts import PoseDataset, PoseWeights, YoloPoseDataset
from vtpose.keypoints import COCO_STAT_NAMES
from vtpose.paths import CONFIGS_DIR
from vtpose.registry import MODEL_NAME, STATS_METADATA_KEY, WEIGHTS_ARTIFACT
from vtpose.reports import EvaluationReport, TrainingCurves

EXPECTED_STEPS = set(steps.__all__)  # every step the package exports runs in the pipeline
PACKAGES_AROUND_RUN: dict[str, set[str]] = {}  # "before"/"after" the smoke run: the environment's name==version


def _installed_packages() -> set[str]:
    importlib.invalidate_caches()  # see a distribution installed since the last look
    return {f"{d.metadata['Name'].lower()}=={d.version}" for d in importlib.metadata.distributions()}


@pytest.fixture(scope="module")
def smoke_run(zenml_stack: str):  # type: ignore[no-untyped-def]
    from pipelines import training_pipeline

    PACKAGES_AROUND_RUN["before"] = _installed_packages()
    run = training_pipeline.with_options(config_path=str(CONFIGS_DIR / "smoke.yaml"))()
    PACKAGES_AROUND_RUN["after"] = _installed_packages()
    return run


def test_the_run_installed_nothing(smoke_run) -> None:  # type: ignore[no-untyped-def]
    # BentoML's build pip-installs uv when it is missing (issue 11); a run must leave its environment as it was.
    before, after = PACKAGES_AROUND_RUN["before"], PACKAGES_AROUND_RUN["after"]
    assert after == before, f"installed during the run: {sorted(after - before)}; removed: {sorted(before - after)}"


def _output(run, step: str, name: str):  # type: ignore[no-untyped-def]
    return run.steps[step].outputs[name][0]


def test_every_step_ran_and_handed_on_artifacts(smoke_run) -> None:  # type: ignore[no-untyped-def]
    run = Client().get_pipeline_run(smoke_run.id)
    assert run.status.value == "completed"
    assert set(run.steps) == EXPECTED_STEPS
    dataset = _output(run, "validate_dataset", "dataset").load()
    assert isinstance(dataset, PoseDataset) and dataset.annotation_file(dataset.val_split).is_file()
    yolo = _output(run, "convert_dataset", "yolo_dataset").load()
    assert isinstance(yolo, YoloPoseDataset) and any((yolo.root / "labels").rglob("*.txt"))
    weights = _output(run, "train_model", "trained_weights").load()
    assert isinstance(weights, PoseWeights) and weights.path.stat().st_size > 1_000_000
    curves = _output(run, "train_model", "training_curves").load()
    assert isinstance(curves, TrainingCurves) and len(curves.rows) == 1
    report = _output(run, "evaluate_model", "evaluation_report").load()
    assert isinstance(report, EvaluationReport)
    assert list(report.stats) == list(COCO_STAT_NAMES) and set(report.baseline_stats) == set(COCO_STAT_NAMES)
    assert 0.0 < report.stats["AP"] <= 1.0 and len(report.per_keypoint) == 17 and report.previews


def test_artifacts_have_dashboard_visualizations(smoke_run) -> None:  # type: ignore[no-untyped-def]
    run = Client().get_pipeline_run(smoke_run.id)
    for step, name in [
        ("validate_dataset", "dataset"),
        ("convert_dataset", "yolo_dataset"),
        ("train_model", "training_curves"),
        ("evaluate_model", "evaluation_report"),
    ]:
        artifact = _output(run, step, name)
        assert artifact.visualizations, f"{step}.{name} has no visualization"
        kinds = {v.type.value for v in artifact.visualizations}
        if name in ("dataset", "evaluation_report", "training_curves"):
            assert "image" in kinds


def test_one_mlflow_run_with_params_epoch_metrics_stats_and_weights(smoke_run) -> None:  # type: ignore[no-untyped-def]
    tracker = Client().active_stack.experiment_tracker
    mlflow.set_tracking_uri(tracker.get_tracking_uri())
    runs = mlflow.search_runs(experiment_names=["training_pipeline"], output_format="list")
    matching = [r for r in runs if r.info.run_name == smoke_run.name]
    assert len(matching) == 1
    mlflow_run = matching[0]
    assert mlflow_run.data.params["train.epochs"] == "1" and mlflow_run.data.params["train.imgsz"] == "320"
    client = mlflow.MlflowClient()
    assert len(client.get_metric_history(mlflow_run.info.run_id, "train/pose_loss")) == 1
    for name in COCO_STAT_NAMES:
        assert f"coco_{name}" in mlflow_run.data.metrics and f"pretrained_coco_{name}" in mlflow_run.data.metrics
    artifacts = [a.path for a in client.list_artifacts(mlflow_run.info.run_id, "weights")]
    assert artifacts == ["weights/best.pt"]


def test_model_version_has_metrics_decision_and_weights(smoke_run) -> None:  # type: ignore[no-untyped-def]
    run = Client().get_pipeline_run(smoke_run.id)
    version = run.model_version
    assert version is not None and version.model.name == MODEL_NAME
    metadata = version.run_metadata
    assert set(metadata[STATS_METADATA_KEY]) == set(COCO_STAT_NAMES)
    decision = metadata["promotion"]
    assert decision["reference"] == "pretrained"  # the first version in this store
    promoted = decision["promote"]
    assert promoted == (metadata[STATS_METADATA_KEY]["AP"] >= metadata["pretrained_coco_keypoints"]["AP"])
    assert (version.stage == "production") == promoted
    assert version.get_artifact(WEIGHTS_ARTIFACT) is not None


def test_a_second_run_reuses_cached_steps(smoke_run) -> None:  # type: ignore[no-untyped-def]
    from pipelines import training_pipeline

    second = training_pipeline.with_options(config_path=str(CONFIGS_DIR / "smoke.yaml"))()
    run = Client().get_pipeline_run(second.id)
    assert run.status.value == "completed"
    # Ingestion always reads the source again; unchanged content keeps everything after it cached.
    for step in ("ingest_dataset", "ingest_pretrained", "promote_model", "package_model"):
        assert run.steps[step].status.value == "completed", step
    for step in ("validate_dataset", "convert_dataset", "train_model", "evaluate_model"):
        assert run.steps[step].status.value == "cached", step


def test_model_export_writes_the_registered_weights(smoke_run, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from vtpose.artifacts import sha256_file
    from vtpose.cli import main

    run = Client().get_pipeline_run(smoke_run.id)
    output = tmp_path / "exported.pt"
    result = CliRunner().invoke(main, ["model", "export", "--stage", str(run.model_version.name), "-o", str(output)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(output)
    trained = _output(run, "train_model", "trained_weights").load()
    assert sha256_file(output) == sha256_file(trained.path)


def test_package_step_built_the_bento(smoke_run) -> None:  # type: ignore[no-untyped-def]
    import bentoml

    run = Client().get_pipeline_run(smoke_run.id)
    record = _output(run, "package_model", "bento").load()
    assert record["built"] is True and record["model_version"] == str(run.model_version.name)
    bento = bentoml.get(record["tag"])
    assert str(bento.tag) == record["tag"] and record["size_bytes"] > 1_000_000
    assert run.model_version.run_metadata["bento"]["tag"] == record["tag"]
    # The exported Bento in the artifact store: what outlives a step container or a pod.
    archive = _output(run, "package_model", "bento_archive").load()
    assert archive.is_file() and archive.stat().st_size > 1_000_000  # `bentoml import` takes it as is
