"""ZenML materializers for vtpose's artifacts (importing this registers them)."""

from materializers.pose_materializers import (
    EvaluationReportMaterializer,
    PoseDatasetMaterializer,
    PoseWeightsMaterializer,
    TrainingCurvesMaterializer,
    YoloPoseDatasetMaterializer,
)

__all__ = [
    "EvaluationReportMaterializer",
    "PoseDatasetMaterializer",
    "PoseWeightsMaterializer",
    "TrainingCurvesMaterializer",
    "YoloPoseDatasetMaterializer",
]
