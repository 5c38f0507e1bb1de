"""Shared test setup: an isolated ZenML store (a temp config path), offline libraries, the real data."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# Before anything imports zenml: every test session gets its own ZenML config and SQLite store, so tests never
# touch the user's store or the dashboard server that `make run` uses.
_ZENML_HOME = Path(tempfile.mkdtemp(prefix="vtpose-test-zenml-"))
os.environ["ZENML_CONFIG_PATH"] = str(_ZENML_HOME / "config")
# Its own ZenML repository too: the project's .zen/config.yaml remembers the active stack of the user's store, and
# a client on another store would rewrite it. Sources still resolve from the project (set below).
(_ZENML_HOME / "repo" / ".zen").mkdir(parents=True)
os.environ["ZENML_REPOSITORY_PATH"] = str(_ZENML_HOME / "repo")
os.environ.pop("ZENML_STORE_URL", None)
os.environ["ZENML_ANALYTICS_OPT_IN"] = "false"
os.environ["ZENML_AUTO_OPEN_DASHBOARD"] = "false"
os.environ["ZENML_ENABLE_RICH_TRACEBACK"] = "false"
os.environ["YOLO_OFFLINE"] = "1"
os.environ["BENTOML_DO_NOT_TRACK"] = "true"
# BentoML reads its home once, at import: the pipeline test's Bentos land here, not in ~/bentoml.
os.environ["BENTOML_HOME"] = str(_ZENML_HOME / "bentoml")
os.environ["MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING"] = "false"

import pytest  # noqa: E402
import yaml  # noqa: E402
from zenml.utils import source_utils  # noqa: E402

from vtpose.paths import COCO_MINI_DIR, PRETRAINED_WEIGHTS, PROJECT_ROOT  # noqa: E402
from vtpose.training.promotion import ENV_TEST_STORE  # noqa: E402

# This store is a test store: a `promotion.test_only` config (configs/smoke.yaml) may promote into it, never into a
# user's. Subprocesses inherit it; a step container gets it from the run config (tests/test_containers.py).
os.environ[ENV_TEST_STORE] = "1"

source_utils.set_custom_source_root(str(PROJECT_ROOT))

MLFLOW_TRACKER = "mlflow_tracker"
MODEL_DEPLOYER = "bentoml_deployer"
TEST_STACK = "vtpose-test"


@pytest.fixture(scope="session", autouse=True)
def _require_data() -> None:
    if not PRETRAINED_WEIGHTS.is_file() or not COCO_MINI_DIR.is_dir():
        pytest.exit("data/ is missing: run `make data` (dvc pull) first", returncode=2)


@pytest.fixture(scope="session")
def zenml_stack() -> str:
    """The isolated store with a local stack that has the real MLflow experiment tracker and the BentoML model
    deployer (its services' files live under the isolated ZenML config), active."""
    from zenml.client import Client
    from zenml.enums import StackComponentType

    client = Client()
    try:
        client.get_stack_component(StackComponentType.EXPERIMENT_TRACKER, MLFLOW_TRACKER)
    except KeyError:
        client.create_stack_component(
            name=MLFLOW_TRACKER, flavor="mlflow", component_type=StackComponentType.EXPERIMENT_TRACKER, configuration={}
        )
    try:
        client.get_stack_component(StackComponentType.MODEL_DEPLOYER, MODEL_DEPLOYER)
    except KeyError:
        client.create_stack_component(
            name=MODEL_DEPLOYER, flavor="bentoml", component_type=StackComponentType.MODEL_DEPLOYER, configuration={}
        )
    try:
        client.get_stack(TEST_STACK)
    except KeyError:
        client.create_stack(
            name=TEST_STACK,
            components={
                StackComponentType.ORCHESTRATOR: "default",
                StackComponentType.ARTIFACT_STORE: "default",
                StackComponentType.EXPERIMENT_TRACKER: MLFLOW_TRACKER,
                StackComponentType.MODEL_DEPLOYER: MODEL_DEPLOYER,
            },
        )
    client.activate_stack(TEST_STACK)
    return TEST_STACK


@pytest.fixture(scope="session")
def pretrained_bento() -> dict[str, Any]:
    """What runs with nothing in production (the pretrained checkpoint, INT8), packaged in the test session's BentoML
    home with a few calibration images, as `vtpose model bento` packages it with many (the deployment pipeline then
    finds and reuses it)."""
    from vtpose.testing.local_server import STUDIO_CALIBRATION_DIR, package_bento

    options = ("--openvino", "--int8-images", str(STUDIO_CALIBRATION_DIR), "--int8-size", "8",
               "--backend", "openvino-int8")  # fmt: skip
    return package_bento(PRETRAINED_WEIGHTS, "pretrained", Path(os.environ["BENTOML_HOME"]), *options)


@pytest.fixture(scope="module")
def deploy_port() -> int:
    """A free serving port per test module, so tests never meet a `make serve` on 3000."""
    from vtpose.testing.local_server import free_port

    return free_port()


@pytest.fixture(scope="module")
def deployments(
    zenml_stack: str, deploy_port: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., Any]]:
    """`deployments(**overrides)` runs the deployment pipeline on `deploy_port` (config keys as overrides) and
    returns the run; the services it started are stopped and deleted after the module."""
    from zenml.client import Client

    from pipelines import deployment_pipeline
    from vtpose.serving.deployment import active_deployer, deployed_services

    folder = tmp_path_factory.mktemp("deployment-configs")

    def run(**overrides: Any) -> Any:
        config = {"parameters": {"deployment": {"port": deploy_port, **overrides}}}
        path = folder / f"deployment-{len(list(folder.iterdir()))}.yaml"
        path.write_text(yaml.safe_dump(config))
        return Client().get_pipeline_run(deployment_pipeline.with_options(config_path=str(path))().id)

    yield run
    for service in deployed_services():
        active_deployer().delete_model_server(service.uuid)
