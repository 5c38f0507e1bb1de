"""`zenml pipeline run training_pipeline [-c CONFIG]`, the design card's command, from the project root.

ZenML loads the source `training_pipeline` as a module (`source_utils.load`), and the command needs a pipeline
object: so this module puts the training pipeline in its own place in `sys.modules`, set to run
configs/training.yaml when `-c` is left out. `pipelines.training_pipeline` is the same pipeline without a default.
"""

import sys

from pipelines import training_pipeline
from pipelines.defaults import with_default_config
from vtpose.paths import DEFAULT_CONFIG

sys.modules[__name__] = with_default_config(training_pipeline, DEFAULT_CONFIG)
