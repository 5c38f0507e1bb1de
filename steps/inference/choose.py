"""Which model the inference run uses: what runs (the resolver), or the version the config pins."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

from zenml import step
from zenml.logger import get_logger

from materializers import ExportedModelMaterializer
from vtpose.artifacts import ExportedModel, sha256_file
from vtpose.inference import InferenceConfig

logger = get_logger(__name__)


# Never cached: the answer depends on the store's production stage. Its outputs are hashed by content, so the same
# model keeps the inference steps cached.
@step(enable_cache=False, output_materializers={"serving_model": ExportedModelMaterializer})
def choose_inference_model(
    inference: InferenceConfig,
) -> tuple[Annotated[ExportedModel, "serving_model"], Annotated[dict[str, Any], "model_choice"]]:
    """The model's file on its serving variant (exported here, once per weights, as the CLI does) and the record of
    which model it is."""
    from vtpose.backends.export import cached_export
    from vtpose.paths import EXPORT_CACHE_DIR
    from vtpose.serving.what_runs import describe, pinned_version, what_runs

    choice = pinned_version(inference.version) if inference.version else what_runs()
    variant = inference.variant or choice.variant
    weights = choice.weights
    if not weights.is_file() and inference.dvc_remote is not None:
        # A step container or a pod has no data/: the pretrained checkpoint comes from the DVC remote too.
        from vtpose.data.dvc_remote import fetch_tracked
        from vtpose.paths import PROJECT_ROOT

        local = Path(tempfile.mkdtemp(prefix="vtpose-inference-weights-")) / weights.name
        weights = fetch_tracked(weights.relative_to(PROJECT_ROOT).as_posix(), inference.dvc_remote, local)
    path = cached_export(weights, variant, inference.imgsz, EXPORT_CACHE_DIR)
    # An IR is its folder (model.xml, model.bin beside it); ONNX and PyTorch are one file.
    model_path = path.parent if path.suffix == ".xml" else path
    record = {
        "model_name": choice.model_name,
        "version": choice.version,
        "variant": variant,
        "source": choice.source,
        "model_version": f"{choice.version}+{variant}",
        "description": describe(choice.source, choice.model_name, choice.version, variant),
        "weights_sha256": sha256_file(weights),
    }
    logger.info("Inference with %s", record["description"])
    sha256 = str(record["weights_sha256"])
    return ExportedModel(path=Path(model_path), variant=variant, imgsz=inference.imgsz, source_sha256=sha256), record
