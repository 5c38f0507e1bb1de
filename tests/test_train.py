"""Training from a model YAML (YOLOv8 and YOLO11 families) and fine-tuning, for real, kept tiny."""

from __future__ import annotations

from pathlib import Path

import pytest

from vtpose.data import convert_to_yolo, ingest_coco_folder, write_data_yaml
from vtpose.paths import COCO_MINI_DIR, PRETRAINED_WEIGHTS
from vtpose.training.train import TrainConfig, train

pytestmark = pytest.mark.slow  # every test here trains, for real

TINY = {"epochs": 1, "imgsz": 96, "batch": 8, "args": {"fraction": 0.25, "val": False, "workers": 0}}


@pytest.fixture(scope="module")
def data_yaml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("train")
    yolo = convert_to_yolo(ingest_coco_folder(COCO_MINI_DIR, root / "dataset"), root / "yolo")
    return write_data_yaml(yolo.root, absolute=True)


@pytest.mark.parametrize("model", ["yolov8n-pose.yaml", "yolo11n-pose.yaml"])
def test_train_from_model_yaml(data_yaml: Path, tmp_path: Path, model: str) -> None:
    result = train(TrainConfig(model=model, **TINY), data_yaml, tmp_path)
    assert result.best_weights.is_file() and result.last_weights.is_file()
    assert len(result.curves.rows) == 1 and "train/pose_loss" in result.curves.rows[0]


def test_fine_tune_pretrained_with_frozen_batchnorm_keeps_statistics(data_yaml: Path, tmp_path: Path) -> None:
    import torch
    from ultralytics import YOLO

    config = TrainConfig(model="pretrained", freeze_batchnorm=True, **TINY)
    result = train(config, data_yaml, tmp_path, pretrained=PRETRAINED_WEIGHTS)

    def running_means(path: Path) -> list[torch.Tensor]:
        model = YOLO(str(path)).model
        return [m.running_mean.float() for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]

    before, after = running_means(PRETRAINED_WEIGHTS), running_means(result.last_weights)
    assert len(before) == len(after) > 0
    # Saved in half precision, so equal up to fp16 rounding.
    assert all(torch.allclose(a, b, atol=1e-2, rtol=1e-3) for a, b in zip(before, after, strict=True))
