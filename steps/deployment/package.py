"""Packaging: the model version just trained, as a BentoML service in the local Bento store."""

from __future__ import annotations

from typing import Annotated, Any

from zenml import get_step_context, log_metadata, step
from zenml.logger import get_logger

from vtpose.artifacts import PoseWeights
from vtpose.config import PackageConfig
from vtpose.packaging import build_bento

logger = get_logger(__name__)


# Never cached: the Bento lands in the local Bento store, outside the artifact store.
@step(enable_cache=False)
def package_model(
    trained_weights: PoseWeights, promotion_decision: dict[str, Any], package: PackageConfig
) -> Annotated[dict[str, Any], "bento"]:
    """Build `pose-service:<version>` holding this run's model version (the production one when promoted)."""
    model = get_step_context().model
    if not package.enabled or (package.only_if_promoted and not promotion_decision["promote"]):
        logger.info(
            "Packaging skipped (package.enabled=%s, promoted=%s)", package.enabled, promotion_decision["promote"]
        )
        return {"built": False}
    info = build_bento(trained_weights.path, model_version=str(model.version), imgsz=package.imgsz)
    record = {
        "built": True,
        "tag": str(info.tag),
        "size_bytes": int(info.size_bytes),
        "model_name": model.name,
        "model_version": str(model.version),
        "promoted": bool(promotion_decision["promote"]),
    }
    log_metadata({"bento": record}, infer_model=True)
    log_metadata({"bento": record})
    logger.info(
        "Built Bento %s (%.1f MB) for %s version %s", info.tag, info.size_bytes / 1e6, model.name, model.version
    )
    return record
