"""Promotion: the quality gate that moves a model version to `production`, or says why not."""

from __future__ import annotations

from typing import Annotated, Any

from zenml import get_step_context, log_metadata, step
from zenml.enums import ModelStages
from zenml.logger import get_logger

from vtpose.config import PromotionConfig
from vtpose.errors import VtposeError
from vtpose.promotion import decide_promotion
from vtpose.registry import production_metric
from vtpose.reports import EvaluationReport

logger = get_logger(__name__)


# Never cached: the answer depends on what is in production now, not only on the inputs.
@step(enable_cache=False)
def promote_model(
    evaluation_report: EvaluationReport, promotion: PromotionConfig
) -> Annotated[dict[str, Any], "promotion_decision"]:
    """Compare with the production version (or, for a first version, the pretrained checkpoint)."""
    model = get_step_context().model
    candidate = evaluation_report.stats[promotion.metric]
    production_value, production_version = production_metric(promotion.metric, model.name)
    decision = decide_promotion(
        promotion.metric, candidate, production_value, evaluation_report.baseline_stats.get(promotion.metric)
    )
    record = {**decision.to_dict(), "model_version": str(model.version), "production_version": production_version}
    logger.info("Promotion of %s version %s: %s", model.name, model.version, decision.reason)
    log_metadata({"promotion": record}, infer_model=True)
    if decision.promote:
        model.set_stage(ModelStages.PRODUCTION, force=True)
    elif promotion.fail_on_reject:
        raise VtposeError(f"quality gate failed: {decision.reason} (promotion.fail_on_reject is true)")
    return record
