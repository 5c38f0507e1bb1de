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

import pipelines.training
import steps
from vtpose.keypoints import COCO_STAT_NAMES
from vtpose.paths import CONFIGS_DIR, DEFAULT_CONFIG, PROJECT_ROOT
from vtpose.training.train import TrainConfig

SMOKE_CONFIG = CONFIGS_DIR / "smoke.yaml"
# The steps the training pipeline's module imports (the package also holds the other pipelines' steps), but
# merge_sources, which runs only with data.sources (tests/test_pipeline_sources.py).
TRAINING_STEPS = {name for name in steps.__all__ if name in vars(pipelines.training)} - {"merge_sources"}
VTPOSE = Path(sys.executable).with_name("vtpose")


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
    parameters = _parameters(expected)  # read first: the file may change while the command runs
    name = f"cmd-{uuid.uuid4().hex[:8]}"
    args = ["pipeline", "snapshot", "create", source, "-n", name]
    if config is not None:
        args += ["-c", str(config.relative_to(PROJECT_ROOT))]
    result = _zenml(*args, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    snapshot = Client().get_snapshot(name)
    # Exactly the chosen file's blocks: none of training.yaml's keys (seed, freeze_batchnorm...) under smoke's.
    assert snapshot.pipeline_configuration.parameters == parameters
    train_config = snapshot.step_configurations["train_model"].config.parameters["train_config"]
    assert TrainConfig.model_validate(train_config) == TrainConfig.model_validate(parameters["train"])
    assert set(snapshot.step_configurations) == TRAINING_STEPS


@pytest.fixture(scope="module")
def cli_run(zenml_stack: str) -> Any:
    """`zenml pipeline run training_pipeline -c configs/smoke.yaml`, as typed: a whole run (minutes)."""
    before = Client().list_pipeline_runs(size=1).total
    parameters = _parameters(SMOKE_CONFIG)  # as the command reads it
    result = _zenml("pipeline", "run", "training_pipeline", "-c", "configs/smoke.yaml", timeout=1700)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    latest = Client().list_pipeline_runs(sort_by="desc:created", size=1)
    assert latest.total == before + 1
    return Client().get_pipeline_run(latest.items[0].id), parameters


@pytest.mark.slow  # runs the smoke pipeline
@pytest.mark.timeout(1800)  # the run itself, in the fixture
def test_the_exact_command_runs_the_pipeline(cli_run: Any) -> None:
    run, parameters = cli_run
    assert run.status.value == "completed" and run.pipeline.name == "training_pipeline"
    assert set(run.steps) == TRAINING_STEPS
    assert run.config.parameters == parameters


@pytest.mark.slow  # runs the smoke pipeline
@pytest.mark.timeout(1800)  # the run, when this test runs alone
def test_summary_prints_the_runs_numbers_and_decision(cli_run: Any) -> None:
    """`vtpose pipeline summary` (what `make run` ends with) against the run's own artifacts."""
    run = cli_run[0]
    env = {**os.environ, "ZENML_CUSTOM_SOURCE_ROOT": str(PROJECT_ROOT)}
    result = subprocess.run(
        [str(VTPOSE), "pipeline", "summary"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert f"run: {run.name} (completed)" in lines
    report = run.steps["evaluate_model"].outputs["evaluation_report"][0].load()
    rows: dict[str, str] = {}
    for line in lines:
        if line.startswith("  ") and line.split():
            rows.setdefault(line.split()[0], line)  # the stats table comes before the paired differences
    for name in COCO_STAT_NAMES:
        assert f"{report.stats[name]:.4f}" in rows[name], (name, rows.get(name))  # the trained model's value
    decision = run.steps["promote_model"].outputs["promotion_decision"][0].load()
    verdict = "PROMOTED to production" if decision["promote"] else "NOT promoted"
    promotion = [line for line in lines if line.startswith("promotion")]
    assert len(promotion) == 1 and f"version {decision['model_version']} {verdict}" in promotion[0]
    assert promotion[0].endswith(decision["reason"]) and len(decision["checks"]) > 1  # smoke's rules
    # One line per rule check, right after the verdict (and the note on a production version below pretrained).
    start = lines.index(promotion[0]) + 1 + bool(decision["production_below_pretrained"])
    for offset, check in enumerate(decision["checks"]):
        outcome = "passed" if check["passed"] else "FAILED"
        margin = f", margin {check['margin']:g}" if check["margin"] else ""
        assert (
            lines[start + offset] == f"  rule {check['metric']} {check['rule']}{margin}: {outcome}: {check['reason']}"
        )
    uri = subprocess.run(
        [str(VTPOSE), "pipeline", "summary", "--mlflow-uri"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert uri.stdout.strip().splitlines()[-1] == Client().active_stack.experiment_tracker.get_tracking_uri()


def test_summary_without_a_run_says_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "repo" / ".zen").mkdir(parents=True)
    env = {**os.environ, "ZENML_CONFIG_PATH": str(tmp_path / "config"), "ZENML_REPOSITORY_PATH": str(tmp_path / "repo")}
    result = subprocess.run(
        [str(VTPOSE), "pipeline", "summary"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "vtpose: error: no run of training_pipeline in this ZenML store yet; run `make run` "
        "(or `zenml pipeline run training_pipeline`) first."
    )
