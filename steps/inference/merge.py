"""The shards' results merged: one results folder, the COCO results JSON and the run's summary, linked to the model
version that ran and logged to MLflow."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

from zenml import log_metadata, step
from zenml.logger import get_logger

from materializers import InferenceResultsMaterializer
from vtpose.inference import InferenceConfig, InferenceResults, merge_results
from vtpose.inference.results import image_ids_from
from vtpose.paths import resolve_project_path

logger = get_logger(__name__)


@step(output_materializers={"inference_results": InferenceResultsMaterializer})
def merge_inference(
    shard_results: list[InferenceResults], model_choice: dict[str, Any], inference: InferenceConfig
) -> tuple[
    Annotated[InferenceResults, "inference_results"],
    Annotated[list[dict[str, Any]], "coco_results"],
    Annotated[dict[str, Any], "inference_summary"],
]:
    """One folder in file-name order; images numbered (or given the annotations' ids) for the COCO results."""
    from vtpose.errors import VtposeError
    from vtpose.training.mlflow_logging import log_inference

    image_ids = image_ids_from(resolve_project_path(inference.annotations)) if inference.annotations else None
    info = {"description": model_choice["description"], "shards": inference.shards, "source": model_choice["source"]}
    out_dir = Path(tempfile.mkdtemp(prefix="vtpose-inference-merged-")) / "results"
    merged = merge_results(shard_results, out_dir, image_ids, info)
    if merged.model_version != model_choice["model_version"]:
        raise VtposeError(f"the shards ran {merged.model_version}, not {model_choice['model_version']}; run again.")
    summary = merged.summary()
    for bad in summary["bad_inputs"]:
        logger.warning("bad input %s: %s", bad["file"], bad["reason"])
    logger.info(
        "Inference with %s: %d images, %d videos (%d frames), %d bad inputs",
        model_choice["description"], summary["images"], summary["videos"], summary["frames"],
        len(summary["bad_inputs"]),
    )  # fmt: skip
    log_inference(summary)
    if model_choice["source"] in ("production", "pinned"):
        log_metadata(
            metadata={"inference": {k: v for k, v in summary.items() if k != "bad_inputs"}},
            model_name=model_choice["model_name"],
            model_version=model_choice["version"],
        )
    return merged, merged.coco_results(), summary
