"""The inference pipeline's configs without running them: configs/inference.yaml and, the way
test_kubernetes_config.py checks the training one, configs/inference_containers.yaml compiled by ZenML's own
compiler against the container stack (local Docker orchestrator, local image builder) in the isolated test store:
one container image for every step, each shard its own step, the inputs and the checkpoint read from the DVC remote
rather than a host path."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from vtpose.inference import InferenceConfig
from vtpose.paths import CONFIGS_DIR, INFERENCE_CONFIG, PROJECT_ROOT

CONTAINERS_YAML = CONFIGS_DIR / "inference_containers.yaml"
STACK = "vtpose-inference-containers-test"


@pytest.mark.parametrize("path", [INFERENCE_CONFIG, CONTAINERS_YAML])
def test_the_configs_parameters_are_valid(path: Any) -> None:
    InferenceConfig.model_validate(yaml.safe_load(path.read_text())["parameters"]["inference"])


def test_the_default_config_runs_the_bundled_media_through_what_runs() -> None:
    config = InferenceConfig.model_validate(yaml.safe_load(INFERENCE_CONFIG.read_text())["parameters"]["inference"])
    assert (config.inputs, config.version, config.variant, config.shards) == ("data/media", None, None, 1)
    assert (PROJECT_ROOT / config.inputs / "game-streamer-tips.jpg").is_file()
    assert config == InferenceConfig()  # the file says what the defaults are


@pytest.fixture(scope="module")
def containers_stack(zenml_stack: str) -> Any:
    """scripts/containers/stack.sh's stack, registered in the isolated store (not activated)."""
    from zenml.client import Client
    from zenml.enums import StackComponentType
    from zenml.stack import Stack

    client = Client()
    components = {}
    for kind, name, flavor, configuration in (
        (StackComponentType.ORCHESTRATOR, "vtpose_docker_test", "local_docker",
         {"run_args": {"network_mode": "host", "remove": True}}),
        (StackComponentType.IMAGE_BUILDER, "vtpose_local_builder_test", "local", {}),
    ):  # fmt: skip
        try:
            components[kind] = client.get_stack_component(kind, name).id
        except KeyError:
            components[kind] = client.create_stack_component(
                name=name, flavor=flavor, component_type=kind, configuration=configuration
            ).id
    components[StackComponentType.ARTIFACT_STORE] = client.get_stack_component(
        StackComponentType.ARTIFACT_STORE, "default"
    ).id
    components[StackComponentType.EXPERIMENT_TRACKER] = client.get_stack_component(
        StackComponentType.EXPERIMENT_TRACKER, "mlflow_tracker"
    ).id
    try:
        model = client.get_stack(STACK)
    except KeyError:
        model = client.create_stack(name=STACK, components=components)
    return Stack.from_model(model)


@pytest.fixture(scope="module")
def snapshot(containers_stack: Any) -> Any:
    """The inference pipeline compiled with configs/inference_containers.yaml, as `zenml pipeline run` would."""
    from zenml.config.compiler import Compiler
    from zenml.config.pipeline_run_configuration import PipelineRunConfiguration
    from zenml.utils import yaml_utils

    from pipelines import inference_pipeline

    run_config = PipelineRunConfiguration.model_validate(yaml_utils.read_yaml(str(CONTAINERS_YAML)))
    pipeline = inference_pipeline.with_options(config_path=str(CONTAINERS_YAML))
    pipeline.prepare()
    return Compiler().compile(pipeline=pipeline, stack=containers_stack, run_configuration=run_config)


def test_each_shard_is_its_own_step_and_the_merge_takes_them_all(snapshot: Any) -> None:
    steps = snapshot.step_configurations
    assert set(steps) == {
        "ingest_inputs",
        "choose_inference_model",
        "infer_shard_0",
        "infer_shard_1",
        "merge_inference",
    }
    for index in (0, 1):
        parameters = steps[f"infer_shard_{index}"].config.parameters
        assert parameters["shard"] == index and parameters["inference"]["shards"] == 2
    merge_inputs = steps["merge_inference"].spec.inputs["shard_results"]
    assert sorted(str(getattr(i, "step_name", i)) for i in _as_list(merge_inputs)) == ["infer_shard_0", "infer_shard_1"]
    assert steps["merge_inference"].config.experiment_tracker == "mlflow_tracker"


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def test_every_step_runs_in_the_cpu_image_built_from_the_projects_dockerfile(
    containers_stack: Any, snapshot: Any
) -> None:
    builds = containers_stack.get_docker_builds(snapshot)
    assert builds and {build.settings.dockerfile for build in builds} == {"docker/cpu.Dockerfile"}
    assert all(build.settings.parent_image_build_config.build_options.network == "host" for build in builds)
    assert (PROJECT_ROOT / "docker" / "cpu.Dockerfile").is_file()
    assert containers_stack.orchestrator.flavor == "local_docker"


def test_no_step_reads_a_host_path(snapshot: Any) -> None:
    inference = snapshot.step_configurations["ingest_inputs"].config.parameters["inference"]
    assert inference["dvc_remote"].startswith("http://127.0.0.1:")
    chosen = snapshot.step_configurations["choose_inference_model"].config.parameters["inference"]
    # An INT8 export calibrates on the sample's train images, which a container lacks: FP32 in containers.
    assert chosen["dvc_remote"] == inference["dvc_remote"] and chosen["variant"] == "openvino"
    for name, step in snapshot.step_configurations.items():
        assert not step.config.parameters.get("inference", {}).get("annotations"), name
