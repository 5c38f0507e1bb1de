"""The one `vtpose` command: its groups, each subcommand's options, and the commands `make` and the scripts run.

Commands that `make` or a script runs go through the installed `vtpose` executable in a subprocess, as they do
there: stdout must hold only the result (a YAML to import, a JSON to parse) and an error is one line on stderr.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from vtpose.artifacts import sha256_file
from vtpose.cli.main import main
from vtpose.data.originals import load_pins
from vtpose.paths import CONFIGS_DIR, DATA_DIR, PRETRAINED_WEIGHTS, PROJECT_ROOT

VTPOSE = Path(sys.executable).with_name("vtpose")
STACK_YAML = CONFIGS_DIR / "stacks" / "kubernetes.yaml"
STACK_ENV = {
    "KUBE_CONTEXT": "kind-vtpose",
    "K8S_NAMESPACE": "vtpose",
    "MINIO_ENDPOINT": "http://minio.example.com:9000",
    "ARTIFACT_BUCKET": "vtpose-artifacts",
    "REGISTRY_URI": "registry.example.com/vtpose",
    "MLFLOW_TRACKING_URI": "http://mlflow.example.com:5000",
}
# Every command of the contract (shared/DESIGN.md) and every group, as `vtpose --help` lists them.
TOP_LEVEL = {
    "infer", "evaluate", "avatar", "avatars", "animate", "match", "model", "deployment", "data", "pipeline", "stack",
}  # fmt: skip
# Each group's subcommands and the options each must offer (what the Makefile, the scripts and the README pass).
SUBCOMMANDS = {
    ("model", "which"): ["--json"],
    ("model", "bento"): [],
    ("model", "export"): ["--stage", "--output"],
    ("model", "package"): [
        "--model-version",
        "--model-name",
        "--imgsz",
        "--backend",
        "--openvino",
        "--int8-images",
        "--int8-size",
        "--json",
    ],
    ("data", "rebuild"): ["--data", "--cache", "--mirror", "--no-dvc", "--after-failed-pull"],
    ("data", "check"): ["--data"],
    ("pipeline", "check"): [],
    ("pipeline", "summary"): ["--mlflow-uri"],
    ("pipeline", "promoted"): [],
    ("deployment", "status"): ["--port"],
    ("deployment", "attach"): ["--port", "--path"],
    ("deployment", "stop"): ["--port"],
    ("stack", "render"): [],
}


def _vtpose(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VTPOSE), *map(str, args)],
        cwd=PROJECT_ROOT,
        env=os.environ if env is None else env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _listed_commands(help_text: str) -> set[str]:
    """The command names in the "Commands:" section of a click help page."""
    section = help_text.split("Commands:\n", 1)[1]
    return {line.split()[0] for line in section.splitlines() if line.startswith("  ") and line.split()}


def _assert_one_error_line(result: subprocess.CompletedProcess[str], code: int, *parts: str) -> str:
    assert result.returncode == code, result.stdout + result.stderr
    assert result.stdout == "" and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    line = result.stderr.strip()
    for part in parts:
        assert part in line, (part, line)
    return line


def test_help_lists_every_command_and_group() -> None:
    result = CliRunner().invoke(main, ["--help"], prog_name="vtpose")
    assert result.exit_code == 0, result.output
    assert _listed_commands(result.output) == TOP_LEVEL


@pytest.mark.parametrize("group", sorted({group for group, _ in SUBCOMMANDS}))
def test_each_group_lists_its_subcommands(group: str) -> None:
    result = CliRunner().invoke(main, [group, "--help"], prog_name="vtpose")
    assert result.exit_code == 0, result.output
    assert _listed_commands(result.output) == {name for g, name in SUBCOMMANDS if g == group}


@pytest.mark.parametrize(("command", "options"), SUBCOMMANDS.items(), ids=" ".join)
def test_each_subcommand_has_help_with_its_options(command: tuple[str, str], options: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"], prog_name="vtpose")
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Usage: vtpose {' '.join(command)} [OPTIONS]")
    listed = {
        word.rstrip(",") for line in result.output.split("Options:\n", 1)[1].splitlines() for word in line.split()
    }
    assert set(options) <= listed, set(options) - listed


def test_pipeline_check_passes_the_smoke_config() -> None:
    config = CONFIGS_DIR / "smoke.yaml"
    result = _vtpose("pipeline", "check", config)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{config}: ok\n"


def test_pipeline_check_names_the_file_and_key_of_a_broken_config(tmp_path: Path) -> None:
    config = tmp_path / "broken.yaml"
    config.write_text("parameters:\n  train:\n    epoch: 3\n")  # `epochs` misspelt
    line = _assert_one_error_line(_vtpose("pipeline", "check", config), 2)
    assert line.startswith(f"vtpose: error: {config}: parameters.train.epoch: unknown key"), line
    assert "'epochs'" in line  # the fix


def test_stack_render_fills_the_kubernetes_recipe_for_zenml_stack_import() -> None:
    result = _vtpose("stack", "render", STACK_YAML, env={**os.environ, **STACK_ENV})
    assert result.returncode == 0, result.stderr
    assert "${" not in result.stdout
    stack = yaml.safe_load(result.stdout)
    assert stack["stack_name"] == "vtpose-k8s"
    components = stack["components"]
    assert components["orchestrator"]["configuration"] == {
        "kubernetes_context": "kind-vtpose",
        "kubernetes_namespace": "vtpose",
    }
    store = components["artifact_store"]["configuration"]
    assert store["path"] == "s3://vtpose-artifacts"
    assert store["client_kwargs"]["endpoint_url"] == "http://minio.example.com:9000"
    # Secret references stay for ZenML to resolve: no credential passes through the rendered file.
    assert (store["key"], store["secret"]) == ("{{vtpose_minio.access_key}}", "{{vtpose_minio.secret_key}}")


def test_stack_render_names_every_missing_variable() -> None:
    env = {k: v for k, v in os.environ.items() if k not in STACK_ENV}
    line = _assert_one_error_line(_vtpose("stack", "render", STACK_YAML, env=env), 2, f"vtpose: error: {STACK_YAML}")
    assert all(name in line for name in STACK_ENV), line


def test_data_check_accepts_the_pulled_data_and_counts_what_is_missing(tmp_path: Path) -> None:
    pulled = _vtpose("data", "check")
    assert pulled.returncode == 0, pulled.stderr
    assert pulled.stdout == f"{DATA_DIR}: 0 pinned file(s) missing, 0 differ\n"
    empty = _vtpose("data", "check", "--data", tmp_path)
    assert empty.returncode == 1
    assert empty.stdout == f"{tmp_path}: {len(load_pins())} pinned file(s) missing, 0 differ\n"


def test_model_package_refuses_missing_weights_in_one_line(tmp_path: Path) -> None:
    """Needs `vtpose.serving.packaging.package_weights` (the library function behind the command)."""
    missing = tmp_path / "missing.pt"
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "bentoml")}
    _assert_one_error_line(
        _vtpose("model", "package", missing, "--model-version", "1", env=env), 2, "vtpose: error: ", str(missing)
    )


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_model_package_prints_the_bentos_record_as_json_on_stdout(tmp_path: Path) -> None:
    """The ONNX export (Ultralytics prints its progress) goes to stderr; stdout is the JSON record, whole."""
    home = tmp_path / "bentoml"
    env = {**os.environ, "BENTOML_HOME": str(home)}
    result = _vtpose(
        "model", "package", PRETRAINED_WEIGHTS, "--model-version", "cli test", "--imgsz", "320", "--json", env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    info = json.loads(result.stdout)
    assert info["tag"].startswith("pose-service:cli-test-")
    assert (info["model_version"], info["imgsz"], info["backend_default"]) == ("cli test", 320, "onnx")
    assert set(info["sha256"]) == {"model.pt", "model.onnx"}
    assert info["sha256"]["model.pt"] == sha256_file(PRETRAINED_WEIGHTS)
    assert Path(info["path"]).is_relative_to(home) and (Path(info["path"]) / "bento.yaml").is_file()


@pytest.mark.parametrize("source", [[], ["dance.avi", "--source", "0"]], ids=["neither", "both"])
def test_animate_takes_exactly_one_of_a_video_and_a_camera(source: list[str], tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["animate", *source, "-o", str(tmp_path / "out.mp4")], prog_name="vtpose")
    assert result.exit_code == 2
    assert result.stderr == (
        "vtpose: error: give either a VIDEO file or --source CAMERA (e.g. --source 0), not both or neither.\n"
    )
    assert not (tmp_path / "out.mp4").exists()


def test_model_which_names_the_pretrained_checkpoint_when_nothing_is_in_production(tmp_path: Path) -> None:
    """A fresh ZenML store: `vtpose model which` and the CLI's model line say the pretrained checkpoint runs."""
    from vtpose.serving.what_runs import PRETRAINED_VARIANT

    (tmp_path / "repo" / ".zen").mkdir(parents=True)
    env = {**os.environ, "ZENML_CONFIG_PATH": str(tmp_path / "config"), "ZENML_REPOSITORY_PATH": str(tmp_path / "repo")}
    env.pop("ZENML_STORE_URL", None)
    result = _vtpose("model", "which", "--json", env=env)
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert (record["source"], record["version"], record["variant"]) == ("pretrained", "pretrained", PRETRAINED_VARIANT)
    assert record["weights"] == str(PRETRAINED_WEIGHTS) and record["bento_tag"] is None
    assert record["reason"] == "no pose-estimator version is in production"
    line = _vtpose("model", "which", env=env)
    assert line.stdout == f"model: {record['description']}\n"
    expected = f"pretrained checkpoint yolo11n-pose.pt (nothing in production), {PRETRAINED_VARIANT}"
    assert record["description"] == expected


def test_deployment_commands_name_the_fix_when_nothing_is_deployed(zenml_stack: str) -> None:
    from vtpose.testing.local_server import free_port

    port = str(free_port())
    for command in ("status", "attach", "stop"):
        result = _vtpose("deployment", command, "--port", port)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert result.stderr.strip().splitlines()[-1] == (
            f"vtpose: error: nothing is deployed on port {port}; run `zenml pipeline run deployment_pipeline` "
            "(or `make serve`)."
        )
