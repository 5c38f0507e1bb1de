"""Evaluation: pycocotools OKS on the val split, the production version and the pretrained checkpoint scored beside
the trained model on the same split, with paired bootstrap intervals."""

from __future__ import annotations

from typing import Annotated

from zenml import log_metadata, step
from zenml.metadata.metadata_types import MetadataType

from materializers import EvaluationReportMaterializer
from vtpose.artifacts import PoseDataset, PoseWeights
from vtpose.training.bootstrap import PRETRAINED, PRODUCTION
from vtpose.training.config import EvaluationConfig
from vtpose.training.evaluate import evaluation_report
from vtpose.training.mlflow_logging import log_evaluation
from vtpose.training.registry import BOOTSTRAP_METADATA_KEY, STATS_METADATA_KEY
from vtpose.training.reports import EvaluationReport


@step(output_materializers=EvaluationReportMaterializer)
def evaluate_model(
    trained_weights: PoseWeights,
    pretrained_weights: PoseWeights,
    dataset: PoseDataset,
    production_report: EvaluationReport,
    evaluation: EvaluationConfig,
) -> Annotated[EvaluationReport, "evaluation_report"]:
    """Score the trained model beside the references; the stats and intervals go to MLflow and the model version."""
    split = dataset.val_split
    report = evaluation_report(
        trained_weights.path,
        dataset.annotation_file(split),
        dataset.image_dir(split),
        split=split,
        baseline_weights=pretrained_weights.path if evaluation.compare_pretrained else None,
        imgsz=evaluation.imgsz,
        previews=evaluation.previews,
        production=production_report,
        bootstrap_resamples=evaluation.bootstrap_resamples,
        bootstrap_seed=evaluation.bootstrap_seed,
    )
    log_evaluation(report)
    metadata: dict[str, MetadataType] = {STATS_METADATA_KEY: report.stats}
    if report.baseline_stats:
        metadata[f"{PRETRAINED}_{STATS_METADATA_KEY}"] = report.baseline_stats
    if report.production_stats:
        metadata[f"{PRODUCTION}_{STATS_METADATA_KEY}"] = report.production_stats
    if report.bootstrap:
        metadata[BOOTSTRAP_METADATA_KEY] = report.bootstrap
    if report.per_source:
        metadata[f"per_source_{STATS_METADATA_KEY}"] = report.per_source_summary()
    log_metadata(metadata=metadata, infer_model=True)
    return report
