"""The inference inputs into the artifact store: the only inference step that reads outside it."""

from __future__ import annotations

from typing import Annotated

from zenml import step

from materializers import MediaBatchMaterializer
from vtpose.inference import InferenceConfig, MediaBatch, ingest_media


# Never cached: the folder may have changed under the same path; the batch is hashed by content, so unchanged
# inputs keep every later step cached.
@step(enable_cache=False, output_materializers=MediaBatchMaterializer)
def ingest_inputs(inference: InferenceConfig) -> Annotated[MediaBatch, "media"]:
    """Copy `inference.inputs` (a folder, or a DVC-tracked folder with `inference.dvc_remote`)."""
    return ingest_media(inference.inputs, inference.dvc_remote)
