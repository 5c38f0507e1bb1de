"""The inference pipeline: ingest the inputs -> choose the model (what runs) -> infer each shard (parallel steps,
pods on Kubernetes) -> merge: poses, COCO results, overlays, avatars, videos and a summary.

`zenml pipeline run inference_pipeline [-c configs/inference.yaml]`.
"""

from __future__ import annotations

from zenml import Model, pipeline

from steps import choose_inference_model, infer_inputs, ingest_inputs, merge_inference
from vtpose.inference import InferenceConfig


@pipeline
def inference_pipeline(inference: InferenceConfig | None = None) -> None:
    """Run what runs (or the pinned version) over a folder of photos and videos, in `inference.shards` shards."""
    inference = inference or InferenceConfig()
    # The outputs are linked to the model version that runs (its page in the dashboard lists them); the pretrained
    # checkpoint is no version, so its runs link to none.
    model = model_version_used(inference)
    media = ingest_inputs.with_options(model=model)(inference=inference)
    serving_model, model_choice = choose_inference_model.with_options(model=model)(inference=inference)
    shards = [
        infer_inputs.with_options(model=model)(
            media=media, serving_model=serving_model, model_choice=model_choice, inference=inference, shard=index,
            id=f"infer_shard_{index}",
        )
        for index in range(inference.shards)
    ]  # fmt: skip
    merge_inference.with_options(model=model)(shard_results=shards, model_choice=model_choice, inference=inference)


def model_version_used(inference: InferenceConfig) -> Model | None:
    """The pose-estimator version the run will use, resolved when the pipeline is compiled (as the choose step
    resolves it when it runs): the pinned one, else the production one, else None (the pretrained checkpoint)."""
    from zenml.client import Client
    from zenml.enums import ModelStages

    from vtpose.training.registry import MODEL_NAME

    if inference.version is not None:
        return Model(name=MODEL_NAME, version=inference.version)
    # Not get_model_version: inside a pipeline's definition ZenML defers that call to the step's run time.
    try:
        versions = Client().list_model_versions(MODEL_NAME, stage=ModelStages.PRODUCTION).items
    except KeyError:  # no such model yet
        return None
    return Model(name=MODEL_NAME, version=str(versions[0].name)) if versions else None
