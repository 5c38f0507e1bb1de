"""The training config: every Ultralytics argument reachable, typos caught with a suggestion."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from vtpose.errors import VtposeError
from vtpose.training.train import TrainConfig, ultralytics_train_args


def test_every_ultralytics_argument_is_accepted() -> None:
    config = TrainConfig(device="cpu", args={"lr0": 0.001, "mosaic": 0.0, "freeze": 10, "cos_lr": True})
    assert config.ultralytics_args() == {
        "epochs": 10, "imgsz": 640, "batch": 16, "seed": 0, "deterministic": True, "device": "cpu", "plots": False,
        "lr0": 0.001, "mosaic": 0.0, "freeze": 10, "cos_lr": True,
    }  # fmt: skip
    assert {"lr0", "mosaic", "freeze", "cos_lr", "fraction", "optimizer"} <= set(ultralytics_train_args())


def test_a_typo_names_the_key_and_suggests_the_fix() -> None:
    with pytest.raises(ValidationError, match=r"train.args.lr_0 is not an Ultralytics training argument.*lr0"):
        TrainConfig(args={"lr_0": 0.001})


def test_unknown_top_level_key_is_rejected() -> None:
    with pytest.raises(ValidationError, match="epoch"):
        TrainConfig(epoch=3)


def test_reserved_arguments_are_refused() -> None:
    with pytest.raises(ValidationError, match="set by vtpose itself"):
        TrainConfig(args={"data": "x.yaml"})


def _auto_device(visible: str) -> str:
    """`device: auto` as a fresh process resolves it with CUDA_VISIBLE_DEVICES=`visible`."""
    script = "from vtpose.training.train import TrainConfig; print(TrainConfig().ultralytics_args()['device'])"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": visible}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()[-1]


def test_device_auto_is_cpu_without_gpus() -> None:
    assert _auto_device("") == "cpu"
    assert TrainConfig(device="0,1").ultralytics_args()["device"] == "0,1"  # an explicit device is kept as is


@pytest.mark.skipif(not Path("/dev/nvidia0").exists(), reason="no NVIDIA GPU on this machine")
def test_device_auto_is_the_visible_gpu() -> None:
    assert _auto_device("0") == "0"


def test_model_yaml_resolves_to_ultralytics_cfg() -> None:
    for name in ("yolo11n-pose.yaml", "yolov8n-pose.yaml"):
        assert TrainConfig(model=name).model_source() == name
    with pytest.raises(VtposeError, match="no such model YAML"):
        TrainConfig(model="yolo99-pose.yaml").model_source()


def test_missing_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(VtposeError, match="checkpoint not found"):
        TrainConfig(model=str(tmp_path / "nope.pt")).model_source()
