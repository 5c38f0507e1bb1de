"""The production version scored on the candidate's val split, in the same run, so the gate compares like with like.

`production_reference` looks up which weights are in production (never cached: that changes between runs).
`score_production` takes only their sha256 and the dataset as inputs, so ZenML's cache scores each pair of
weights and data once: a rerun with the same production weights and the same split reuses the score.
"""

from __future__ import annotations

from typing import Annotated

from zenml import get_step_context, step
from zenml.logger import get_logger

from materializers import EvaluationReportMaterializer
from vtpose.artifacts import PoseDataset
from vtpose.training.evaluate import evaluation_report
from vtpose.training.registry import load_production_weights, production_weights_sha256
from vtpose.training.reports import EvaluationReport

logger = get_logger(__name__)


@step(enable_cache=False)
def production_reference() -> Annotated[str, "production_weights_sha256"]:
    """The sha256 of the production version's weights, "" when nothing is in production."""
    model = get_step_context().model
    current = production_weights_sha256(model.name)
    if current is None:
        logger.info("Nothing of %s is in production: the candidate will be judged against the baseline.", model.name)
        return ""
    logger.info("Production: %s version %s, weights sha256 %s.", model.name, current[0], current[1][:12])
    return current[1]


@step(output_materializers=EvaluationReportMaterializer)
def score_production(
    production_weights_sha256: str, dataset: PoseDataset, imgsz: int
) -> Annotated[EvaluationReport, "production_report"]:
    """pycocotools OKS of the production weights on the dataset's val split (an empty report if none).

    The report's `model_version` is the production version these weights belonged to when first scored.
    """
    split = dataset.val_split
    if not production_weights_sha256:
        return EvaluationReport(stats={}, split=split, imgsz=imgsz)
    version, weights = load_production_weights(production_weights_sha256, get_step_context().model.name)
    report = evaluation_report(
        weights.path, dataset.annotation_file(split), dataset.image_dir(split), split=split, imgsz=imgsz, previews=0
    )
    report.model_version = version
    logger.info("Production version %s on %s: AP %.4f.", version, split, report.stats["AP"])
    return report
