"""Packaging: the model version just trained, as a BentoML service: built in the local Bento store and exported
into the artifact store (`bento_archive`), so a Bento built in a step container or a pod outlives it."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

from zenml import get_step_context, log_metadata, step
from zenml.logger import get_logger

from vtpose.artifacts import PoseWeights
from vtpose.config import PackageConfig
from vtpose.packaging import build_bento

logger = get_logger(__name__)


# Never cached: the Bento lands in the local Bento store, which a later run may not share.
@step(enable_cache=False)
def package_model(
    trained_weights: PoseWeights, promotion_decision: dict[str, Any], package: PackageConfig
) -> tuple[Annotated[dict[str, Any], "bento"], Annotated[Path | None, "bento_archive"]]:
    """Build `pose-service:<version>` holding this run's model version (the production one when promoted).

    The second output is the Bento as `bentoml export` writes it (service code and model): in a container or
    a pod the local Bento store vanishes with the step, the artifact store keeps it (`bentoml import FILE`).
    """
    import bentoml

    model = get_step_context().model
    if not package.enabled or (package.only_if_promoted and not promotion_decision["promote"]):
        logger.info(
            "Packaging skipped (package.enabled=%s, promoted=%s)", package.enabled, promotion_decision["promote"]
        )
        return {"built": False}, None
    info = build_bento(trained_weights.path, model_version=str(model.version), imgsz=package.imgsz)
    archive_dir = Path(tempfile.mkdtemp(prefix="vtpose-bento-"))
    archive = Path(bentoml.export_bento(info.tag, str(archive_dir / f"{info.tag.replace(':', '-')}.bento")))
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
    return record, archive
