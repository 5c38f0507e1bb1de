"""`zenml pipeline run deployment_pipeline [-c CONFIG]` from the project root (see training_pipeline.py for how a
module becomes the pipeline object): configs/deployment.yaml when `-c` is left out."""

import sys

from pipelines import deployment_pipeline
from pipelines.defaults import with_default_config
from vtpose.paths import DEPLOYMENT_CONFIG

sys.modules[__name__] = with_default_config(deployment_pipeline, DEPLOYMENT_CONFIG)
