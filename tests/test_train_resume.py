"""Training that survives interruption: checkpoints in the artifact store, Ultralytics' resume, nothing left over.

The process that trains is killed for real (SIGKILL, as a preempted pod is), first for the library alone, then
for the whole smoke pipeline through the design card's command.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
import yaml
from zenml.client import Client

from vtpose.data import convert_to_yolo, ingest_coco_folder, write_data_yaml
from vtpose.paths import COCO_MINI_DIR, CONFIGS_DIR, PRETRAINED_WEIGHTS, PROJECT_ROOT
from vtpose.training.checkpoints import CHECKPOINT_MANIFEST, TrainingCheckpoints, checkpoint_key
from vtpose.training.train import TrainConfig, train

EPOCHS = 3
TINY = {
    "model": "pretrained",
    "epochs": EPOCHS,
    "imgsz": 96,
    "batch": 8,
    "freeze_batchnorm": True,
    "args": {"fraction": 0.25, "val": False, "workers": 0, "optimizer": "SGD", "lr0": 1e-4, "warmup_epochs": 0},
}
# A bound on every wait, generous for 2 busy cores; a hang fails the test instead of stalling the suite.
WAIT_S = 900


HOLD_HOOK = Path(__file__).with_name("hold_after_epoch")  # its sitecustomize.py holds a process after an epoch


def _held_after_epoch_1(marker: Path, **env: str) -> dict[str, str]:
    """The environment of a training process that stops for good after saving epoch 1's checkpoint (it writes
    `marker` and waits to be killed): epoch 2 never starts before the test kills it."""
    path = os.pathsep.join(p for p in (str(HOLD_HOOK), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, **env, "PYTHONPATH": path, "VTPOSE_TEST_HOLD_AFTER_EPOCH": "1",
            "VTPOSE_TEST_HOLD_MARKER": str(marker)}  # fmt: skip


def _wait_until_held(marker: Path, process: subprocess.Popen[str]) -> None:
    """Poll until the process holds after epoch 1's checkpoint (`marker` written); it must still run."""
    deadline = time.monotonic() + WAIT_S
    while not marker.is_file():
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            pytest.fail(f"training ended (rc {process.returncode}) before its first checkpoint:\n{output[-3000:]}")
        if time.monotonic() > deadline:
            _kill(process)
            pytest.fail(f"no checkpoint of epoch 1 within {WAIT_S} s")
        time.sleep(0.2)
    assert process.poll() is None and marker.read_text() == "1"


def _kill(process: subprocess.Popen[str]) -> str:
    os.killpg(process.pid, signal.SIGKILL)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    return output


def _assert_complete_set(folder: Path) -> dict[str, object]:
    """Every file the manifest names is whole: the checkpoint loads and resumes from epoch 2."""
    manifest = json.loads((folder / CHECKPOINT_MANIFEST).read_text())
    assert manifest["epoch"] == 1 and manifest["epochs"] == EPOCHS
    ckpt = torch.load(folder / manifest["last"], map_location="cpu", weights_only=False)
    assert ckpt["epoch"] == 0 and ckpt["optimizer"] is not None  # 0-based: epoch 1 done, resumable
    rows = (folder / manifest["results"]).read_text().strip().splitlines()
    assert len(rows) == 2  # header and epoch 1
    return manifest


# --- the checkpoint folder itself (no training) ---


def test_only_the_manifest_is_trusted_and_stray_files_go(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "weights").mkdir(parents=True)
    (run / "weights" / "last.pt").write_bytes(b"epoch-1 last")
    (run / "weights" / "best.pt").write_bytes(b"epoch-1 best")
    (run / "results.csv").write_text("epoch\n1\n")
    store = TrainingCheckpoints(str(tmp_path / "ckpt"))
    store.save(run, epoch=1, epochs=3)
    # A killed second save: its files half-written under temporary names, the manifest not yet replaced.
    (tmp_path / "ckpt" / ".tmp-0123-last-e2.pt").write_bytes(b"half")
    (tmp_path / "ckpt" / "last-e2.pt").write_bytes(b"renamed, but the manifest never named it")
    latest = store.latest()
    assert latest is not None and (latest.epoch, latest.last, latest.best) == (1, "last-e1.pt", "best-e1.pt")
    restored = tmp_path / "restored"
    store = TrainingCheckpoints(str(tmp_path / "ckpt"))  # the process that resumes
    assert store.latest() == latest
    last = store.restore(latest, restored)
    assert last.read_bytes() == b"epoch-1 last" and (restored / "weights" / "best.pt").read_bytes() == b"epoch-1 best"
    assert (restored / "results.csv").read_text() == "epoch\n1\n"
    # The next save names a new set and removes everything else; best.pt unchanged is not copied again.
    last.write_bytes(b"epoch-2 last")
    store.save(restored, epoch=2, epochs=3)
    names = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert names == ["best-e1.pt", CHECKPOINT_MANIFEST, "last-e2.pt", "results-e2.csv"]
    store.clear()
    assert not (tmp_path / "ckpt").exists()


def test_checkpoint_key_follows_inputs_and_config_not_device() -> None:
    config = TrainConfig(**TINY)
    inputs = {"yolo_dataset": "a", "pretrained_weights": "b"}
    key = checkpoint_key(config, inputs)
    assert key == checkpoint_key(TrainConfig(**TINY, device="0", save_period=2), dict(reversed(inputs.items())))
    assert key != checkpoint_key(TrainConfig(**{**TINY, "epochs": 4}), inputs)
    assert key != checkpoint_key(config, {**inputs, "yolo_dataset": "c"})


# --- the library, killed right after epoch 1's checkpoint ---


@pytest.fixture(scope="module")
def data_yaml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("resume")
    yolo = convert_to_yolo(ingest_coco_folder(COCO_MINI_DIR, root / "dataset"), root / "yolo")
    return write_data_yaml(yolo.root, absolute=True)


@pytest.mark.slow  # trains for real: epoch 1 in the killed process, epochs 2-3 resumed
def test_killed_training_resumes_from_its_checkpoint(data_yaml: Path, tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    checkpoints = tmp_path / "checkpoints"
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from vtpose.training.checkpoints import TrainingCheckpoints
        from vtpose.training.train import TrainConfig, train
        train(TrainConfig(**{TINY!r}), Path({str(data_yaml)!r}), Path({str(tmp_path / "killed")!r}),
              pretrained=Path({str(PRETRAINED_WEIGHTS)!r}), checkpoints=TrainingCheckpoints({str(checkpoints)!r}))
        """
    )
    marker = tmp_path / "held"
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        env=_held_after_epoch_1(marker),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    _wait_until_held(marker, process)
    _kill(process)
    _assert_complete_set(checkpoints)

    with caplog.at_level("INFO", logger="vtpose.training.train"):
        result = train(
            TrainConfig(**TINY),
            data_yaml,
            tmp_path / "resumed",
            pretrained=PRETRAINED_WEIGHTS,
            checkpoints=TrainingCheckpoints(str(checkpoints)),
        )
    assert "Resuming the interrupted training from its checkpoint of epoch 1/3" in caplog.text
    assert result.resumed_from_epoch == 1
    assert [row["epoch"] for row in result.curves.rows] == [1.0, 2.0, 3.0]
    # The final weights carry the whole run's curves (Ultralytics strips the resume state at the end).
    assert torch.load(result.best_weights, map_location="cpu", weights_only=False)["train_results"]["epoch"] == [
        1,
        2,
        3,
    ]
    assert not checkpoints.exists()  # finished: nothing stale


# --- the smoke pipeline, its process killed right after epoch 1's checkpoint, run again ---


@pytest.mark.slow
@pytest.mark.timeout(2 * WAIT_S + 300)  # two pipeline runs, each waited on for at most WAIT_S
def test_killed_pipeline_run_resumes_and_completes(zenml_stack: str, tmp_path: Path) -> None:
    config = yaml.safe_load((CONFIGS_DIR / "smoke.yaml").read_text())
    config["parameters"]["train"]["epochs"] = EPOCHS
    config["parameters"]["package"]["enabled"] = False  # the Bento is not what this test is about
    config_path = tmp_path / "resume.yaml"
    config_path.write_text(yaml.safe_dump(config))
    command = [
        str(Path(sys.executable).with_name("zenml")),
        "pipeline",
        "run",
        "training_pipeline",
        "-c",
        str(config_path),
    ]
    env = {**os.environ, "ZENML_CUSTOM_SOURCE_ROOT": str(PROJECT_ROOT)}
    store_root = Path(Client().active_stack.artifact_store.path)
    before = Client().list_pipeline_runs(size=1).total

    marker = tmp_path / "held"
    process = subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        env=_held_after_epoch_1(marker, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    _wait_until_held(marker, process)
    _kill(process)
    (manifest,) = store_root.glob(f"checkpoints/train_model/*/{CHECKPOINT_MANIFEST}")
    folder = manifest.parent
    _assert_complete_set(folder)
    killed = Client().list_pipeline_runs(sort_by="desc:created", size=1).items[0]
    assert Client().list_pipeline_runs(size=1).total == before + 1
    killed_train = Client().get_pipeline_run(killed.id).steps["train_model"]
    assert killed_train.status.value != "completed" and not killed_train.outputs  # no half-stored artifact

    again = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=WAIT_S)
    output = again.stdout + again.stderr
    assert again.returncode == 0, output[-4000:]
    assert "Resuming the interrupted training from its checkpoint of epoch 1/3" in output
    assert f"from epoch 2 to {EPOCHS} total epochs" in output  # Ultralytics' own resume
    run = Client().get_pipeline_run(Client().list_pipeline_runs(sort_by="desc:created", size=1).items[0].id)
    assert run.id != killed.id and run.status.value == "completed"
    step = run.steps["train_model"]
    assert step.status.value == "completed"
    assert step.run_metadata["training"]["epochs"] == EPOCHS
    assert step.run_metadata["training"]["resumed_from_epoch"] == 1
    curves = step.outputs["training_curves"][0].load()
    assert [row["epoch"] for row in curves.rows] == [1.0, 2.0, 3.0]
    weights = step.outputs["trained_weights"][0].load()
    assert torch.load(weights.path, map_location="cpu", weights_only=False)["train_results"]["epoch"] == [1, 2, 3]
    assert not folder.exists()  # finished: no stale checkpoints
