"""ZenML pipelines: `zenml pipeline run training_pipeline` (or `deployment_pipeline`, `inference_pipeline`)
`[-c CONFIG]`."""

from pipelines.deployment import deployment_pipeline
from pipelines.inference import inference_pipeline
from pipelines.training import training_pipeline

__all__ = ["deployment_pipeline", "inference_pipeline", "training_pipeline"]
