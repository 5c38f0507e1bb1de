"""The deployment pipeline against real BentoML servers on 127.0.0.1, through ZenML's BentoML model deployer in the
isolated test store: deploy, redeploy (nothing changes), a broken Bento refused while the old service still answers,
a swap to another Bento, and the service's record in ZenML (`zenml model-deployer models list`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from vtpose.paths import PRETRAINED_WEIGHTS, PROJECT_ROOT
from vtpose.testing.local_server import package_bento

pytestmark = pytest.mark.slow


def _get(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=30) as answer:
        return json.loads(answer.read())


def _record(run: Any) -> dict[str, Any]:
    return run.steps["deploy_model"].outputs["deployment"][0].load()


def test_deploy_redeploy_refuse_and_swap(deployments: Any, deploy_port: int, pretrained_bento: dict[str, Any]) -> None:
    from zenml.client import Client

    from vtpose.serving.deployment import deployed_services
    from vtpose.serving.packaging import SERVICE_NAME

    url = f"http://127.0.0.1:{deploy_port}"
    # 1. Nothing in production: the pretrained checkpoint, served as ZenML's BentoML local deployment.
    first = deployments()
    assert first.status.value == "completed"
    record = _record(first)
    assert record["changed"] is True and record["replaced"] == [] and record["url"] == url
    assert record["target"]["model_version"] == "pretrained+openvino-int8"
    assert record["target"]["bento_tag"].startswith(f"{SERVICE_NAME}:")
    model = _get(f"{url}/model")
    assert model["model_version"] == "pretrained+openvino-int8" and model["source"] == "pretrained"
    [service] = deployed_services()
    assert str(service.uuid) == record["service_id"] and service.is_running and service.status.pid == record["pid"]

    # The record in ZenML, as a user lists it.
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "250"}
    zenml = str(Path(sys.executable).with_name("zenml"))
    listed = subprocess.run(
        [zenml, "model-deployer", "models", "list"], env=env, capture_output=True, text=True, timeout=120,
        cwd=PROJECT_ROOT,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    table = listed.stdout + listed.stderr  # the table goes to stderr
    assert str(service.uuid) in table and "bentoml" in table and "deployment_pipeline" in table

    # 2. Again with nothing new: the same service, the same process.
    second = _record(deployments())
    assert second["changed"] is False and second["service_id"] == record["service_id"]
    assert second["pid"] == record["pid"]

    # 3. A broken Bento (its weights truncated in the model store) is refused; the old service still answers.
    broken = package_bento(PRETRAINED_WEIGHTS, "broken", Path(os.environ["BENTOML_HOME"]), "--backend", "pytorch")
    model_dir = Path(os.environ["BENTOML_HOME"]) / "models" / broken["model_tag"].replace(":", "/")
    (model_dir / "model.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match=r"failure in step.*deploy_model"):
        deployments(bento=broken["tag"], start_timeout_s=60)
    assert _get(f"{url}/model")["model_version"] == "pretrained+openvino-int8"
    runs = Client().list_pipeline_runs(pipeline_name="deployment_pipeline", sort_by="desc:created", size=1)
    failed = Client().get_pipeline_run(runs.items[0].id)
    assert failed.status.value == "failed"
    reason = failed.steps["deploy_model"].exception_info.message
    assert f"{broken['tag']} failed its check, so it was not deployed" in reason
    assert f"{record['target']['bento_tag']} keeps serving" in reason
    assert "its process exited" in reason or "not ready within 60 s" in reason
    [still] = deployed_services()
    assert str(still.uuid) == record["service_id"] and still.is_running

    # 4. Another Bento: checked on a free port, then swapped in on the serving port; the old record is gone.
    other = package_bento(PRETRAINED_WEIGHTS, "7", Path(os.environ["BENTOML_HOME"]), "--backend", "pytorch")
    swapped = _record(deployments(bento=other["tag"]))
    assert swapped["changed"] is True and swapped["replaced"] == [record["target"]["bento_tag"]]
    assert _get(f"{url}/model")["model_version"] == "7+pytorch"
    [now] = deployed_services()
    assert str(now.uuid) == swapped["service_id"] != record["service_id"]


def test_no_deployer_in_the_stack_names_the_fix(zenml_stack: str) -> None:
    from zenml.client import Client
    from zenml.enums import StackComponentType

    from vtpose.errors import VtposeError
    from vtpose.serving.deployment import active_deployer

    client = Client()
    bare = "vtpose-test-no-deployer"
    try:
        client.get_stack(bare)
    except KeyError:
        client.create_stack(
            name=bare,
            components={StackComponentType.ORCHESTRATOR: "default", StackComponentType.ARTIFACT_STORE: "default"},
        )
    client.activate_stack(bare)
    try:
        with pytest.raises(VtposeError, match=r"no BentoML model deployer.*make stack"):
            active_deployer()
    finally:
        client.activate_stack(zenml_stack)


def test_config_rejects_unknown_keys() -> None:
    from pydantic import ValidationError

    from vtpose.serving.deployment import DeploymentConfig

    with pytest.raises(ValidationError, match="prot"):
        DeploymentConfig.model_validate({"prot": 3000})
