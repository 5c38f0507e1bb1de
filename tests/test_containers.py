"""The training pipeline with every step in its own container (ZenML's local Docker orchestrator on podman).

Minutes long and it needs the podman path (README: Containers and Kubernetes), so only `make test-containers` runs it
(VTPOSE_CONTAINER_TESTS=1, with DOCKER_HOST and the 127.0.0.1 sources up), never in the default `make test`.
It runs configs/smoke.yaml's parameters with configs/containers.yaml's container settings, in the isolated test
store: the containers reach that store's SQLite file and artifact store through the local-stores mount.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from zenml.client import Client

import steps
from vtpose.keypoints import COCO_STAT_NAMES
from vtpose.paths import CONFIGS_DIR
from vtpose.training.promotion import ENV_TEST_STORE
from vtpose.training.registry import MODEL_NAME, STATS_METADATA_KEY

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(3600),  # image builds and container runs: 9 min the first time on a quiet machine
    pytest.mark.skipif(
        os.environ.get("VTPOSE_CONTAINER_TESTS") != "1", reason="container run: `make test-containers` runs it"
    ),
]

STACK = "vtpose-containers-test"
ALL_STEPS = set(steps.__all__)  # every step the package exports runs in the pipeline


def _config(tmp_path: Path, dvc_remote: bool) -> Path:
    """configs/smoke.yaml's run with configs/containers.yaml's settings and DVC remote."""
    containers = yaml.safe_load((CONFIGS_DIR / "containers.yaml").read_text())
    smoke = yaml.safe_load((CONFIGS_DIR / "smoke.yaml").read_text())
    config: dict[str, Any] = {**smoke, "settings": containers["settings"]}
    # A step container sees only the environment ZenML passes it (the run config's `environment`, set at run
    # time, not baked into the image): without the test-store marker smoke's `promotion.test_only` would keep
    # the model out of production, unlike the same run on the host.
    config["environment"] = {**config.get("environment", {}), ENV_TEST_STORE: "1"}
    if dvc_remote:
        config["parameters"]["data"]["dvc_remote"] = containers["parameters"]["data"]["dvc_remote"]
    path = tmp_path / f"containers-smoke-{dvc_remote}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def container_stack(zenml_stack: str) -> str:
    """The test store's local stack, with ZenML's local Docker orchestrator and the local image builder."""
    from zenml.enums import StackComponentType

    if not os.environ.get("DOCKER_HOST"):
        pytest.fail("DOCKER_HOST is not set: run through `make test-containers` (podman's Docker API socket)")
    client = Client()
    run_args = {"network_mode": "host", "remove": True}  # as scripts/containers/stack.sh registers it
    components = {
        StackComponentType.ORCHESTRATOR: ("vtpose_docker", "local_docker", {"run_args": run_args}),
        StackComponentType.IMAGE_BUILDER: ("vtpose_local_builder", "local", {}),
    }
    ids = {}
    for component_type, (name, flavor, configuration) in components.items():
        try:
            ids[component_type] = client.get_stack_component(component_type, name).id
        except KeyError:
            ids[component_type] = client.create_stack_component(
                name=name, flavor=flavor, component_type=component_type, configuration=configuration
            ).id
    local = client.get_stack(zenml_stack)
    for component_type in (StackComponentType.ARTIFACT_STORE, StackComponentType.EXPERIMENT_TRACKER):
        ids[component_type] = local.components[component_type][0].id
    try:
        client.get_stack(STACK)
    except KeyError:
        client.create_stack(name=STACK, components=ids)
    return STACK


def _run(config: Path, stack: str):  # type: ignore[no-untyped-def]
    from pipelines import training_pipeline

    client = Client()
    previous = client.active_stack_model.id
    client.activate_stack(stack)
    try:
        return training_pipeline.with_options(config_path=str(config))()
    finally:
        client.activate_stack(previous)


def test_a_container_sees_no_host_data(container_stack: str, tmp_path: Path) -> None:
    # Without data.dvc_remote the ingestion step looks for the checkout's data/, which exists on this machine
    # but not in the container: the run must fail there, in the first step, for that reason.
    from vtpose.paths import COCO_MINI_DIR

    assert COCO_MINI_DIR.is_dir(), "the host has the data; only the container must miss it"
    with pytest.raises(RuntimeError, match="ingest_dataset"):
        _run(_config(tmp_path, dvc_remote=False), container_stack)
    run = Client().get_pipeline("training_pipeline").last_run
    step = run.steps["ingest_dataset"]
    assert step.status.value == "failed"
    assert step.exception_info is not None, "the step failed before it ran (image or store problem?)"
    assert "coco-person-mini" in step.exception_info.traceback, step.exception_info.traceback[-2000:]


def test_every_step_runs_in_a_container_and_records_like_make_run(container_stack: str, tmp_path: Path) -> None:
    result = _run(_config(tmp_path, dvc_remote=True), container_stack)
    run = Client().get_pipeline_run(result.id)
    assert run.status.value == "completed"
    assert set(run.steps) == ALL_STEPS
    assert run.stack is not None and run.stack.name == container_stack
    assert run.build is not None and run.build.images, "no image build recorded"
    assert all(info.image.startswith("zenml:") for info in run.build.images.values()), run.build.images
    raw = run.steps["ingest_dataset"].outputs["raw_dataset"][0].load()
    assert raw.annotation_file(raw.val_split).is_file()
    archive = run.steps["package_model"].outputs["bento_archive"][0].load()
    assert archive.is_file() and archive.stat().st_size > 1_000_000  # the Bento outlived its container
    version = run.model_version
    assert version is not None and version.model.name == MODEL_NAME
    assert set(version.run_metadata[STATS_METADATA_KEY]) == set(COCO_STAT_NAMES)
    import mlflow

    mlflow.set_tracking_uri(Client().active_stack.experiment_tracker.get_tracking_uri())
    runs = mlflow.search_runs(experiment_names=["training_pipeline"], output_format="list")
    assert [r.info.run_name for r in runs].count(run.name) == 1
