"""Training: Ultralytics YOLO-pose on the converted dataset, logged to the pipeline's MLflow run."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

from zenml import log_metadata, step

from materializers import PoseWeightsMaterializer, TrainingCurvesMaterializer
from vtpose.artifacts import PoseWeights, YoloPoseDataset
from vtpose.datasets import write_data_yaml
from vtpose.reports import TrainingCurves
from vtpose.tracking import log_training
from vtpose.train import TrainConfig, train


@step(
    output_materializers={
        "trained_weights": PoseWeightsMaterializer,
        "training_curves": TrainingCurvesMaterializer,
    }
)
def train_model(
    yolo_dataset: YoloPoseDataset, pretrained_weights: PoseWeights, train_config: TrainConfig
) -> tuple[Annotated[PoseWeights, "trained_weights"], Annotated[TrainingCurves, "training_curves"]]:
    """Train, then hand on the best weights file (whatever folder Ultralytics wrote it to)."""
    # The dataset was extracted to a new local folder: point its YAML at where it is now.
    write_data_yaml(yolo_dataset.root, absolute=True)
    out_dir = Path(tempfile.mkdtemp(prefix="vtpose-train-"))
    result = train(train_config, yolo_dataset.data_yaml, out_dir, pretrained=pretrained_weights.path)
    architecture = train_config.architecture(pretrained_weights.path)
    weights = PoseWeights(path=result.best_weights, architecture=architecture, imgsz=train_config.imgsz)
    log_training(result.curves, result.best_weights, architecture)
    log_metadata({"training": {"epochs": len(result.curves.rows), "train_seconds": result.curves.train_seconds}})
    return weights, result.curves
