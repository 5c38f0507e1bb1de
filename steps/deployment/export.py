"""Exporting: the trained model as ONNX and OpenVINO IR (FP32, and INT8 calibrated on the run's training split),
each variant scored on the val split and timed on this machine, and the one the Bento will serve chosen."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

from zenml import log_metadata, step
from zenml.logger import get_logger

from materializers import ExportedModelMaterializer, VariantReportMaterializer  # noqa: F401 (registers them)
from vtpose.artifacts import ExportedModel, PoseDataset, PoseWeights
from vtpose.backends.export import export_model_variants
from vtpose.training.config import PackageConfig
from vtpose.training.mlflow_logging import log_variants
from vtpose.training.variants import VariantReport, score_model_variants, split_images

logger = get_logger(__name__)

VariantOutputs = tuple[
    Annotated[ExportedModel | None, "onnx_model"],
    Annotated[ExportedModel | None, "openvino_model"],
    Annotated[ExportedModel | None, "openvino_int8_model"],
    Annotated[VariantReport | None, "variant_report"],
]


# Cached like evaluation: same weights, data and package block give the same exports and choice. The latencies
# are then those measured when the step last ran (the report names that machine and its cores).
@step
def export_variants(trained_weights: PoseWeights, dataset: PoseDataset, package: PackageConfig) -> VariantOutputs:
    """Export `package.variants`, score each with pycocotools on the val split, time it, choose the served one.

    The choice (the fastest within `package.max_ap_drop` AP of the trained `.pt`, or `package.backend` when set)
    goes onto the model version, into MLflow and into the `variant_report` artifact; `package_model` builds the
    Bento from it. With packaging off, nothing is exported.
    """
    if not package.enabled:
        logger.info("Export skipped (package.enabled is false)")
        return None, None, None, None
    out_dir = Path(tempfile.mkdtemp(prefix="vtpose-variants-"))
    train, val = dataset.train_split, dataset.val_split
    int8 = package.int8
    calibration = (
        split_images(dataset.annotation_file(train), dataset.image_dir(train), int8.calibration_size)
        if "openvino-int8" in package.variants
        else []
    )
    models = export_model_variants(
        trained_weights.path,
        package.variants,
        package.imgsz,
        out_dir,
        calibration_images=calibration,
        calibration_size=int8.calibration_size,
        preset=int8.preset,
        ignored_names=int8.ignored_scope.names,
        ignored_patterns=int8.ignored_scope.patterns,
        ignored_types=int8.ignored_scope.types,
    )
    if "openvino-int8" in models:
        models["openvino-int8"].settings["calibration_split"] = train
    report = score_model_variants(
        list(models.values()),
        dataset.annotation_file(val),
        dataset.image_dir(val),
        split=val,
        imgsz=package.imgsz,
        max_ap_drop=package.max_ap_drop,
        forced=package.backend,
        latency_runs=package.latency_runs,
        latency_warmup=package.latency_warmup,
    )
    logger.info("Serving variant: %s", report.choice.reason)
    log_variants(report)
    log_metadata(metadata={"serving_variant": report.summary()}, infer_model=True)
    return models.get("onnx"), models.get("openvino"), models.get("openvino-int8"), report
