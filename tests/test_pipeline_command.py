"""The design card's command, `zenml pipeline run training_pipeline [-c CONFIG]`, typed from the project root.

Each test runs the real `zenml` CLI in a subprocess, in the project root, against the session's isolated store
(conftest). The project's own `.zen` (made by `make run`) would make the project root the source root; the tests
keep to their own repository, so they name the same source root with ZenML's ZENML_CUSTOM_SOURCE_ROOT instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from zenml.client import Client

import steps
from vtpose.paths import CONFIGS_DIR, DEFAULT_CONFIG, PROJECT_ROOT
from vtpose.train import TrainConfig

SMOKE_CONFIG = CONFIGS_DIR / "smoke.yaml"


def _zenml(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ZENML_CUSTOM_SOURCE_ROOT": str(PROJECT_ROOT)}
    zenml = Path(sys.executable).with_name("zenml")
    return subprocess.run(
        [str(zenml), *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def _parameters(config: Path) -> dict[str, Any]:
    return yaml.safe_load(config.read_text())["parameters"]


@pytest.mark.parametrize(
    ("source", "config", "expected"),
    [
        ("training_pipeline", None, DEFAULT_CONFIG),
        ("training_pipeline", SMOKE_CONFIG, SMOKE_CONFIG),
        ("pipelines.training_pipeline", SMOKE_CONFIG, SMOKE_CONFIG),
    ],
    ids=["default-config", "c-smoke", "package-path"],
)
def test_the_command_resolves_and_compiles_exactly_one_config(
    zenml_stack: str, source: str, config: Path | None, expected: Path
) -> None:
    """ZenML's own compile path (`snapshot create` shares `run`'s loading and `with_options`), nothing trained."""
    name = f"cmd-{uuid.uuid4().hex[:8]}"
    args = ["pipeline", "snapshot", "create", source, "-n", name]
    if config is not None:
        args += ["-c", str(config.relative_to(PROJECT_ROOT))]
    result = _zenml(*args, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    snapshot = Client().get_snapshot(name)
    # Exactly the chosen file's blocks: none of training.yaml's keys (seed, freeze_batchnorm...) under smoke's.
    assert snapshot.pipeline_configuration.parameters == _parameters(expected)
    train_config = snapshot.step_configurations["train_model"].config.parameters["train_config"]
    assert TrainConfig.model_validate(train_config) == TrainConfig.model_validate(_parameters(expected)["train"])
    assert set(snapshot.step_configurations) == set(steps.__all__)


@pytest.mark.timeout(1200)
def test_the_exact_command_runs_the_pipeline(zenml_stack: str) -> None:
    """`zenml pipeline run training_pipeline -c configs/smoke.yaml`, as typed: a whole run (minutes)."""
    before = Client().list_pipeline_runs(size=1).total
    result = _zenml("pipeline", "run", "training_pipeline", "-c", "configs/smoke.yaml", timeout=1100)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    latest = Client().list_pipeline_runs(sort_by="desc:created", size=1)
    assert latest.total == before + 1
    run = Client().get_pipeline_run(latest.items[0].id)
    assert run.status.value == "completed" and run.pipeline.name == "training_pipeline"
    assert set(run.steps) == set(steps.__all__)
    assert run.config.parameters == _parameters(SMOKE_CONFIG)
