"""The inference pipeline: ingest the inputs -> choose the model (what runs) -> infer each shard (parallel steps,
pods on Kubernetes) -> merge: poses, COCO results, overlays, avatars, videos and a summary.

`zenml pipeline run inference_pipeline [-c configs/inference.yaml]`.
"""

from __future__ import annotations

from zenml import pipeline

from steps import choose_inference_model, infer_inputs, ingest_inputs, merge_inference
from vtpose.inference import InferenceConfig


@pipeline
def inference_pipeline(inference: InferenceConfig | None = None) -> None:
    """Run what runs (or the pinned version) over a folder of photos and videos, in `inference.shards` shards."""
    inference = inference or InferenceConfig()
    media = ingest_inputs(inference=inference)
    serving_model, model_choice = choose_inference_model(inference=inference)
    shards = [
        infer_inputs(
            media=media, serving_model=serving_model, model_choice=model_choice, inference=inference, shard=index,
            id=f"infer_shard_{index}",
        )
        for index in range(inference.shards)
    ]  # fmt: skip
    merge_inference(shard_results=shards, model_choice=model_choice, inference=inference)
