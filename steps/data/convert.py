"""Conversion: COCO keypoints to Ultralytics' YOLO-pose labels and dataset YAML."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

from zenml import step

from materializers import YoloPoseDatasetMaterializer
from vtpose.artifacts import PoseDataset, YoloPoseDataset
from vtpose.data import convert_to_yolo


@step(output_materializers=YoloPoseDatasetMaterializer)
def convert_dataset(dataset: PoseDataset) -> Annotated[YoloPoseDataset, "yolo_dataset"]:
    """Write YOLO-pose labels; deterministic, so the same dataset is a cache hit."""
    return convert_to_yolo(dataset, Path(tempfile.mkdtemp(prefix="vtpose-yolo-")) / "yolo")
