"""One shard of the inputs through the model: poses, overlays, avatars, videos (vtpose/inference/batch.py)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

from zenml import step

from materializers import InferenceResultsMaterializer
from vtpose.artifacts import ExportedModel
from vtpose.inference import InferenceConfig, InferenceResults, MediaBatch, infer_shard
from vtpose.inference.results import image_ids_from
from vtpose.paths import resolve_project_path

# The file inside an exported IR folder the backend opens.
IR_FILE = "model.xml"


@step(output_materializers=InferenceResultsMaterializer)
def infer_inputs(
    media: MediaBatch,
    serving_model: ExportedModel,
    model_choice: dict[str, Any],
    inference: InferenceConfig,
    shard: int = 0,
) -> Annotated[InferenceResults, "shard_results"]:
    """Every file of shard `shard` of `inference.shards`; a bad one is recorded with its reason (or, with
    `on_error: fail`, stops the run)."""
    model_path = serving_model.path / IR_FILE if serving_model.path.is_dir() else serving_model.path
    image_ids = image_ids_from(resolve_project_path(inference.annotations)) if inference.annotations else None
    out_dir = Path(tempfile.mkdtemp(prefix="vtpose-inference-")) / f"shard-{shard}"
    return infer_shard(
        media,
        media.shard(shard, inference.shards, inference.exclude),
        model_path,
        str(model_choice["model_version"]),
        inference,
        out_dir,
        image_ids,
    )
