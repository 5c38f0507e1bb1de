"""The training config: every Ultralytics argument reachable, typos caught with a suggestion."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from vtpose.errors import VtposeError
from vtpose.training.train import TrainConfig, ultralytics_train_args


def test_every_ultralytics_argument_is_accepted() -> None:
    config = TrainConfig(args={"lr0": 0.001, "mosaic": 0.0, "freeze": 10, "cos_lr": True})
    args = config.ultralytics_args()
    assert args["lr0"] == 0.001 and args["freeze"] == 10 and args["cos_lr"] is True
    assert args["plots"] is False and args["deterministic"] is True
    assert set(config.args) <= set(ultralytics_train_args())


def test_a_typo_names_the_key_and_suggests_the_fix() -> None:
    with pytest.raises(ValidationError, match=r"train.args.lr_0 is not an Ultralytics training argument.*lr0"):
        TrainConfig(args={"lr_0": 0.001})


def test_unknown_top_level_key_is_rejected() -> None:
    with pytest.raises(ValidationError, match="epoch"):
        TrainConfig(epoch=3)


def test_reserved_arguments_are_refused() -> None:
    with pytest.raises(ValidationError, match="set by vtpose itself"):
        TrainConfig(args={"data": "x.yaml"})


def test_device_auto_is_cpu_without_gpus() -> None:
    import torch

    expected = "cpu" if not torch.cuda.is_available() else "0"
    assert TrainConfig().ultralytics_args()["device"].startswith(expected)


def test_model_yaml_resolves_to_ultralytics_cfg() -> None:
    for name in ("yolo11n-pose.yaml", "yolov8n-pose.yaml"):
        assert TrainConfig(model=name).model_source() == name
    with pytest.raises(VtposeError, match="no such model YAML"):
        TrainConfig(model="yolo99-pose.yaml").model_source()


def test_missing_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(VtposeError, match="checkpoint not found"):
        TrainConfig(model=str(tmp_path / "nope.pt")).model_source()
