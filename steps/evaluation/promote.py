"""Promotion: the quality gate that moves a model version to `production`, or says why not."""

from __future__ import annotations

from typing import Annotated, Any

from zenml import get_step_context, log_metadata, step
from zenml.enums import ModelStages
from zenml.logger import get_logger

from vtpose.errors import VtposeError
from vtpose.training.config import PromotionConfig
from vtpose.training.promotion import decide_from_report, in_test_store, keep_test_config_out
from vtpose.training.registry import production_weights_sha256
from vtpose.training.reports import EvaluationReport

logger = get_logger(__name__)


# Never cached: the answer depends on what is in production now, not only on the inputs.
@step(enable_cache=False)
def promote_model(
    evaluation_report: EvaluationReport, promotion: PromotionConfig
) -> Annotated[dict[str, Any], "promotion_decision"]:
    """Compare with the production version (or, for a first version or a production version below it, the
    pretrained checkpoint) on the same split, by every configured rule; a `test_only` config promotes only in a
    test store."""
    model = get_step_context().model
    current = production_weights_sha256(model.name)
    decision = decide_from_report(evaluation_report, promotion.gate_rules(), current[1] if current else None)
    decision = keep_test_config_out(decision, promotion.test_only, in_test_store())
    record = {
        **decision.to_dict(),
        "model_version": str(model.version),
        "production_version": current[0] if current else None,
    }
    logger.info("Promotion of %s version %s: %s", model.name, model.version, decision.reason)
    log_metadata(metadata={"promotion": record}, infer_model=True)
    if decision.promote:
        model.set_stage(ModelStages.PRODUCTION, force=True)
    elif promotion.fail_on_reject and not decision.test_only_refused:  # a test config kept out is no failed gate
        raise VtposeError(f"quality gate failed: {decision.reason} (promotion.fail_on_reject is true)")
    return record
