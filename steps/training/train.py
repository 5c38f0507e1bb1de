"""Training: Ultralytics YOLO-pose on the converted dataset, logged to the pipeline's MLflow run."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

from zenml import get_step_context, log_metadata, step
from zenml.client import Client

from materializers import PoseWeightsMaterializer, TrainingCurvesMaterializer
from vtpose.artifacts import PoseWeights, YoloPoseDataset
from vtpose.data import write_data_yaml
from vtpose.training.checkpoints import TrainingCheckpoints, checkpoint_key
from vtpose.training.mlflow_logging import log_training
from vtpose.training.reports import TrainingCurves
from vtpose.training.train import TrainConfig, train

# Under the artifact store: `<root>/<checkpoint key>/` holds the resumable checkpoints of one training.
CHECKPOINTS_DIR = "checkpoints/train_model"


def _checkpoints(train_config: TrainConfig) -> TrainingCheckpoints:
    # The inputs by content (what their materializers hash), so a rerun with re-ingested but equal inputs
    # finds the checkpoints of the attempt that was interrupted.
    inputs = {
        name: artifacts[0].content_hash or str(artifacts[0].id) for name, artifacts in get_step_context().inputs.items()
    }
    root = Client().active_stack.artifact_store.path.rstrip("/")
    uri = f"{root}/{CHECKPOINTS_DIR}/{checkpoint_key(train_config, inputs)}"
    return TrainingCheckpoints(uri, save_period=train_config.save_period)


@step(
    output_materializers={
        "trained_weights": PoseWeightsMaterializer,
        "training_curves": TrainingCurvesMaterializer,
    }
)
def train_model(
    yolo_dataset: YoloPoseDataset, pretrained_weights: PoseWeights, train_config: TrainConfig
) -> tuple[Annotated[PoseWeights, "trained_weights"], Annotated[TrainingCurves, "training_curves"]]:
    """Train (resuming an interrupted attempt with the same inputs), then hand on the best weights file."""
    # The dataset was extracted to a new local folder: point its YAML at where it is now.
    write_data_yaml(yolo_dataset.root, absolute=True)
    out_dir = Path(tempfile.mkdtemp(prefix="vtpose-train-"))
    result = train(
        train_config,
        yolo_dataset.data_yaml,
        out_dir,
        pretrained=pretrained_weights.path,
        checkpoints=_checkpoints(train_config),
    )
    architecture = train_config.architecture(pretrained_weights.path)
    weights = PoseWeights(path=result.best_weights, architecture=architecture, imgsz=train_config.imgsz)
    log_training(result.curves, result.best_weights, architecture)
    log_metadata(
        {
            "training": {
                "epochs": len(result.curves.rows),
                "train_seconds": result.curves.train_seconds,
                "resumed_from_epoch": result.resumed_from_epoch,
            }
        }
    )
    return weights, result.curves
