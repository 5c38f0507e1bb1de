"""ZenML materializers for vtpose's artifacts (importing this registers them)."""

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
    "PoseDatasetMaterializer",
    "PoseWeightsMaterializer",
    "TrainingCurvesMaterializer",
    "VariantReportMaterializer",
    "YoloPoseDatasetMaterializer",
]
