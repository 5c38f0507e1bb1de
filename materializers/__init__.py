"""ZenML materializers for vtpose's artifacts (importing this registers them)."""

from materializers.inference_materializers import InferenceResultsMaterializer, MediaBatchMaterializer
from materializers.pose_materializers import (
    EvaluationReportMaterializer,
    ExportedModelMaterializer,
    PoseDatasetMaterializer,
    PoseWeightsMaterializer,
    TrainingCurvesMaterializer,
    VariantReportMaterializer,
    YoloPoseDatasetMaterializer,
)

__all__ = [
    "EvaluationReportMaterializer",
    "ExportedModelMaterializer",
    "InferenceResultsMaterializer",
    "MediaBatchMaterializer",
    "PoseDatasetMaterializer",
    "PoseWeightsMaterializer",
    "TrainingCurvesMaterializer",
    "VariantReportMaterializer",
    "YoloPoseDatasetMaterializer",
]
