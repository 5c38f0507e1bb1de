"""Validation: every record checked; bad ones fail the run or are dropped and counted, as configured."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

from zenml import log_metadata, step

from materializers import PoseDatasetMaterializer
from vtpose.artifacts import PoseDataset
from vtpose.data import validate_dataset as check_records
from vtpose.training.config import ValidationConfig


@step(output_materializers={"dataset": PoseDatasetMaterializer})
def validate_dataset(
    raw_dataset: PoseDataset, validation: ValidationConfig
) -> tuple[Annotated[PoseDataset, "dataset"], Annotated[dict[str, Any], "validation_report"]]:
    """Check schema, keypoints, boxes and images of every record."""
    dest = Path(tempfile.mkdtemp(prefix="vtpose-valid-")) / "dataset"
    dataset, report = check_records(raw_dataset, dest, on_error=validation.on_error)
    summary = report.to_dict()
    log_metadata({"validation": {k: v for k, v in summary.items() if k != "issues"}})
    return dataset, summary
