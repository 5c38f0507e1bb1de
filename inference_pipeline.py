"""`zenml pipeline run inference_pipeline [-c CONFIG]` from the project root (see training_pipeline.py for how a
module becomes the pipeline object): configs/inference.yaml when `-c` is left out."""

import sys

from pipelines import inference_pipeline
from pipelines.defaults import with_default_config
from vtpose.paths import INFERENCE_CONFIG

sys.modules[__name__] = with_default_config(inference_pipeline, INFERENCE_CONFIG)
