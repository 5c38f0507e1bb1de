"""Packaging: the model version just trained, as a BentoML service serving the variant `export_variants` chose:
built in the local Bento store and exported into the artifact store (`bento_archive`), so a Bento built in a step
container or a pod outlives it."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

from zenml import get_step_context, log_metadata, step
from zenml.logger import get_logger

from vtpose.artifacts import ExportedModel, PoseWeights
from vtpose.serving.packaging import CANDIDATE_SERVICE_NAME, SERVICE_NAME, build_bento
from vtpose.training.config import PackageConfig
from vtpose.training.variants import VariantReport, bento_variants

logger = get_logger(__name__)


# Never cached: the Bento lands in the local Bento store, which a later run may not share.
@step(enable_cache=False)
def package_model(
    trained_weights: PoseWeights,
    promotion_decision: dict[str, Any],
    package: PackageConfig,
    variant_report: VariantReport | None = None,
    onnx_model: ExportedModel | None = None,
    openvino_model: ExportedModel | None = None,
    openvino_int8_model: ExportedModel | None = None,
) -> tuple[Annotated[dict[str, Any], "bento"], Annotated[Path | None, "bento_archive"]]:
    """Build `pose-service:<version>` holding this run's model version when the gate promoted it, else
    `pose-service-candidate:<version>`: a rejected version is never what `pose-service:latest` or the make
    targets serve (they ask `vtpose.serving.what_runs`, which names the production version's Bento).

    The BentoML model holds the `.pt`, the ONNX file and the chosen variant's files, and the service runs the
    chosen variant unless VTPOSE_BACKEND says otherwise. The second output is the Bento as `bentoml export` writes
    it (service code and model): in a container or a pod the local Bento store vanishes with the step, the
    artifact store keeps it (`bentoml import FILE`).
    """
    import bentoml

    model = get_step_context().model
    if not package.enabled or (package.only_if_promoted and not promotion_decision["promote"]):
        logger.info(
            "Packaging skipped (package.enabled=%s, promoted=%s)", package.enabled, promotion_decision["promote"]
        )
        return {"built": False}, None
    exported = [m for m in (onnx_model, openvino_model, openvino_int8_model) if m is not None]
    backend, variants = bento_variants(variant_report, exported)
    promoted = bool(promotion_decision["promote"])
    info = build_bento(
        trained_weights.path,
        model_version=str(model.version),
        imgsz=package.imgsz,
        backend_default=backend,
        variants=variants,
        service_name=SERVICE_NAME if promoted else CANDIDATE_SERVICE_NAME,
        source="production" if promoted else "candidate",
    )
    archive_dir = Path(tempfile.mkdtemp(prefix="vtpose-bento-"))
    archive = Path(bentoml.export_bento(info.tag, str(archive_dir / f"{info.tag.replace(':', '-')}.bento")))
    record = {
        "built": True,
        "tag": str(info.tag),
        "size_bytes": int(info.size_bytes),
        "model_name": model.name,
        "model_version": str(model.version),
        "promoted": promoted,
        "model_tag": str(info.model_tag),
        "backend": backend,
        "packaged_variants": ["pytorch", *variants],
        "sha256": dict(info.sha256),
    }
    log_metadata(metadata={"bento": record}, infer_model=True)
    log_metadata({"bento": record})
    logger.info(
        "Built Bento %s (%.1f MB) for %s version %s, serving %s",
        info.tag, info.size_bytes / 1e6, model.name, model.version, backend,
    )  # fmt: skip
    return record, archive
