"""Training, measuring and promoting a model: the logic behind training_pipeline's steps.

- `train`: Ultralytics YOLO-pose from a `TrainConfig`; `checkpoints`: the resumable checkpoints it keeps.
- `evaluate`: COCO results JSON scored by pycocotools' OKS; `bootstrap`: paired intervals over images.
- `promotion`: the gate's decision; `registry`: the Model Control Plane side (versions, stages, weights).
- `variants`: the serving variants (ONNX, OpenVINO FP32/INT8), scored and timed, and the choice among them.
- `reports`: what the dashboard shows for training and evaluation (a dataset's views: `vtpose.data.reports`);
  `mlflow_logging`: what each step logs.
- `config`: the pipeline's parameter blocks and the config pre-flight check; `summary`: `make run`'s last lines.
"""
