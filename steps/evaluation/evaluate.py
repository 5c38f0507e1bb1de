"""Evaluation: pycocotools OKS on the val split, the pretrained checkpoint scored beside the trained model."""

from __future__ import annotations

from typing import Annotated

from zenml import log_metadata, step

from materializers import EvaluationReportMaterializer
from vtpose.artifacts import PoseDataset, PoseWeights
from vtpose.config import EvaluationConfig
from vtpose.evaluate import evaluation_report
from vtpose.reports import EvaluationReport
from vtpose.tracking import log_evaluation


@step(output_materializers=EvaluationReportMaterializer)
def evaluate_model(
    trained_weights: PoseWeights,
    pretrained_weights: PoseWeights,
    dataset: PoseDataset,
    evaluation: EvaluationConfig,
) -> Annotated[EvaluationReport, "evaluation_report"]:
    """Score the trained model; the stats go to MLflow and onto the model version."""
    split = dataset.val_split
    report = evaluation_report(
        trained_weights.path,
        dataset.annotation_file(split),
        dataset.image_dir(split),
        split=split,
        baseline_weights=pretrained_weights.path if evaluation.compare_pretrained else None,
        imgsz=evaluation.imgsz,
        previews=evaluation.previews,
    )
    log_evaluation(report)
    metadata = {"coco_keypoints": report.stats}
    if report.baseline_stats:
        metadata["pretrained_coco_keypoints"] = report.baseline_stats
    log_metadata(metadata, infer_model=True)
    return report
