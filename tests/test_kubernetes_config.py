"""The Kubernetes recipe without a cluster: configs/stacks/kubernetes.yaml and configs/training_k8s.yaml.

Everything is checked with ZenML's and the Kubernetes client's own code: the stack components are registered in
the isolated test store (their flavors validate the configuration), the pipeline is compiled with the run config
against that stack (ZenML resolves the per-step settings into KubernetesOrchestratorSettings), the image builds
come from the stack's own `get_docker_builds`, and the pod specs from ZenML's `build_pod_manifest`, the function
its Kubernetes orchestrator submits them with, serialized by the Kubernetes client as they would go to the API.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from kubernetes.client import ApiClient
from kubernetes.utils import parse_quantity

from vtpose.errors import VtposeError
from vtpose.paths import CONFIGS_DIR, PROJECT_ROOT
from vtpose.stacks import placeholders, render_stack

STACK_YAML = CONFIGS_DIR / "stacks" / "kubernetes.yaml"
RUN_YAML = CONFIGS_DIR / "training_k8s.yaml"
REGISTRY = "registry.example.com/vtpose"
ENV = {
    "KUBE_CONTEXT": "kind-vtpose",
    "K8S_NAMESPACE": "vtpose",
    "MINIO_ENDPOINT": "http://minio.example.com:9000",
    "ARTIFACT_BUCKET": "vtpose-artifacts",
    "REGISTRY_URI": REGISTRY,
    "MLFLOW_TRACKING_URI": "http://mlflow.example.com:5000",
}
GPU_STEP = "train_model"
SECRETS = {"vtpose_minio": {"access_key": "a", "secret_key": "b"}, "vtpose_mlflow": {"username": "u", "password": "p"}}


def test_stack_recipe_needs_every_placeholder() -> None:
    assert set(placeholders(STACK_YAML)) == set(ENV)
    with pytest.raises(VtposeError, match="REGISTRY_URI"):
        render_stack(STACK_YAML, {k: v for k, v in ENV.items() if k != "REGISTRY_URI"})


@pytest.fixture(scope="module")
def k8s_stack():  # type: ignore[no-untyped-def]
    """The recipe's stack, registered in the isolated store; its S3 artifact store validated but left out."""
    from zenml.client import Client
    from zenml.enums import StackComponentType
    from zenml.integrations.s3.flavors import S3ArtifactStoreConfig
    from zenml.stack import Stack

    client = Client()
    for name, values in SECRETS.items():
        try:
            client.get_secret(name)
        except KeyError:
            client.create_secret(name, values=values)
    recipe = render_stack(STACK_YAML, ENV)
    components: dict[StackComponentType, Any] = {}
    for type_name, component in recipe["components"].items():
        component_type = StackComponentType(type_name)
        if component_type == StackComponentType.ARTIFACT_STORE:
            # Instantiating the S3 store imports s3fs, which only the step images carry (ZenML adds it there);
            # its flavor's config class still checks every key.
            assert component["flavor"] == "s3"
            S3ArtifactStoreConfig(**component["configuration"])
            components[component_type] = client.get_stack_component(component_type, "default").id
            continue
        name = component["name"]  # the run config names them (experiment_tracker: vtpose_mlflow)
        try:
            model = client.get_stack_component(component_type, name)
        except KeyError:
            model = client.create_stack_component(
                name=name,
                flavor=component["flavor"],
                component_type=component_type,
                configuration=component["configuration"],
            )
        components[component_type] = model.id
    try:
        model = client.get_stack("vtpose-k8s-test")
    except KeyError:
        model = client.create_stack(name="vtpose-k8s-test", components=components)
    # Not activated: other tests in this session use the active local stack.
    return Stack.from_model(model)


@pytest.fixture(scope="module")
def snapshot(k8s_stack):  # type: ignore[no-untyped-def]
    """The training pipeline compiled with configs/training_k8s.yaml, as `zenml pipeline run` would."""
    from zenml.config.compiler import Compiler
    from zenml.config.pipeline_run_configuration import PipelineRunConfiguration
    from zenml.utils import yaml_utils

    from pipelines import training_pipeline

    run_config = PipelineRunConfiguration.model_validate(yaml_utils.read_yaml(str(RUN_YAML)))
    pipeline = training_pipeline.with_options(config_path=str(RUN_YAML))
    pipeline.prepare()  # the steps, with the parameters from the config file
    return Compiler().compile(pipeline=pipeline, stack=k8s_stack, run_configuration=run_config)


@pytest.fixture(scope="module")
def images(k8s_stack, snapshot) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Step name -> the image ZenML would build, push and run it in (names as ZenML's image builder makes them)."""
    from zenml.container_engines import ContainerEngine
    from zenml.utils.pipeline_docker_image_builder import PipelineDockerImageBuilder

    builds = k8s_stack.get_docker_builds(snapshot)
    by_step: dict[str | None, Any] = {build.step_name: build for build in builds}
    assert None in by_step, "no pipeline-wide image"
    result = {}
    for step_name in snapshot.step_configurations:
        build = by_step.get(step_name, by_step[None])
        tag = f"{snapshot.pipeline_configuration.name}{'-' + step_name if build.step_name else ''}-{build.key}"
        result[step_name] = PipelineDockerImageBuilder._get_target_image_name(
            build.settings, ContainerEngine.sanitize_tag(tag), k8s_stack.container_registry
        )
        result[f"{step_name}.dockerfile"] = build.settings.dockerfile
    return result


def _pod(k8s_stack, snapshot, images: dict[str, str], step_name: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """The step's pod spec as ZenML's Kubernetes orchestrator builds it, serialized for the API server."""
    from zenml.entrypoints.step_entrypoint_configuration import StepEntrypointConfiguration
    from zenml.integrations.kubernetes import kube_utils
    from zenml.integrations.kubernetes.manifest_utils import build_pod_manifest

    step = snapshot.step_configurations[step_name]
    settings = k8s_stack.orchestrator.get_settings(step)
    pod = build_pod_manifest(
        pod_name=None,
        image_name=images[step_name],
        command=StepEntrypointConfiguration.get_entrypoint_command(),
        args=StepEntrypointConfiguration.get_entrypoint_arguments(step_name=step_name, snapshot_id=uuid.uuid4()),
        privileged=settings.privileged,
        # What the orchestrator's entrypoint applies before building each step pod.
        pod_settings=kube_utils.apply_default_resource_requests(memory="400Mi", pod_settings=settings.pod_settings),
        service_account_name=settings.step_pod_service_account_name or settings.service_account_name,
        env={},
    )
    return ApiClient().sanitize_for_serialization(pod)


def test_every_step_resolves_to_kubernetes_orchestrator_settings(k8s_stack, snapshot) -> None:  # type: ignore[no-untyped-def]
    from zenml.integrations.kubernetes.flavors import KubernetesOrchestratorSettings

    assert k8s_stack.orchestrator.flavor == "kubernetes"
    assert set(snapshot.step_configurations) >= {GPU_STEP, "ingest_dataset", "evaluate_model", "package_model"}
    for step in snapshot.step_configurations.values():
        settings = k8s_stack.orchestrator.get_settings(step)
        assert isinstance(settings, KubernetesOrchestratorSettings) and settings.pod_settings is not None


def test_training_runs_in_the_cuda_image_and_the_rest_in_the_cpu_image(images, snapshot) -> None:  # type: ignore[no-untyped-def]
    for step_name in snapshot.step_configurations:
        expected = "docker/cuda.Dockerfile" if step_name == GPU_STEP else "docker/cpu.Dockerfile"
        assert images[f"{step_name}.dockerfile"] == expected, step_name
        assert images[step_name].startswith(f"{REGISTRY}/"), images[step_name]
        assert (PROJECT_ROOT / expected).is_file()
    cpu_images = {images[s] for s in snapshot.step_configurations if s != GPU_STEP}
    assert len(cpu_images) == 1 and images[GPU_STEP] not in cpu_images


def test_training_pod_gets_a_gpu_on_a_gpu_node(k8s_stack, snapshot, images) -> None:  # type: ignore[no-untyped-def]
    spec = _pod(k8s_stack, snapshot, images, GPU_STEP)["spec"]
    (container,) = spec["containers"]
    assert container["image"] == images[GPU_STEP]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["resources"]["requests"]["nvidia.com/gpu"] == "1"
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"]


def test_cpu_pods_are_modest_and_stay_off_gpu_nodes(k8s_stack, snapshot, images) -> None:  # type: ignore[no-untyped-def]
    for step_name in snapshot.step_configurations:
        if step_name == GPU_STEP:
            continue
        spec = _pod(k8s_stack, snapshot, images, step_name)["spec"]
        (container,) = spec["containers"]
        resources = container["resources"]
        assert "nvidia.com/gpu" not in resources.get("limits", {}) and "nvidia.com/gpu" not in resources["requests"]
        assert parse_quantity(resources["requests"]["cpu"]) <= 2, step_name
        assert parse_quantity(resources["limits"]["memory"]) <= parse_quantity("8Gi"), step_name
        assert not spec.get("tolerations") and not spec.get("nodeSelector"), step_name


def test_every_pod_has_requests_within_its_limits(k8s_stack, snapshot, images) -> None:  # type: ignore[no-untyped-def]
    # The API server rejects a pod whose request exceeds its limit; step settings merge key by key with the
    # pipeline-wide ones, so a step that raises a request must raise the limit too.
    for step_name in snapshot.step_configurations:
        (container,) = _pod(k8s_stack, snapshot, images, step_name)["spec"]["containers"]
        requests, limits = container["resources"]["requests"], container["resources"].get("limits", {})
        for resource, limit in limits.items():
            if resource in requests:
                assert parse_quantity(requests[resource]) <= parse_quantity(limit), (step_name, resource)


def test_ingestion_reads_the_dvc_remote_not_a_host_path(snapshot) -> None:  # type: ignore[no-untyped-def]
    for step_name in ("ingest_dataset", "ingest_pretrained"):
        data = snapshot.step_configurations[step_name].config.parameters["data"]
        assert str(data["dvc_remote"]).startswith(("http://", "https://", "s3://")), data
