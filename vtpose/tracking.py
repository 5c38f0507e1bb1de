"""MLflow logging of a training run and its evaluation.

Steps call these inside the MLflow run ZenML's experiment tracker opened; with no active run (a stack
without a tracker) they do nothing, on purpose.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from vtpose.reports import EvaluationReport, TrainingCurves
from vtpose.variants import VariantReport

# MLflow metric names allow letters, digits, _ - . / and spaces; Ultralytics uses "metrics/mAP50(P)".
_UNSAFE = re.compile(r"[^\w\-./ ]")


def _active() -> bool:
    import mlflow

    return mlflow.active_run() is not None


def metric_name(key: str) -> str:
    """An MLflow-safe metric name for an Ultralytics column."""
    return _UNSAFE.sub("_", key)


def log_training(curves: TrainingCurves, weights: Path, architecture: str) -> bool:
    """Log the training arguments, every epoch's losses and metrics, and the weights file.

    Returns:
        Whether there was an active MLflow run to log to.
    """
    if not _active():
        return False
    import mlflow

    params: dict[str, Any] = {f"train.{k}": v for k, v in sorted(curves.args.items())}
    params["architecture"] = architecture
    # MLflow caps a param value at 6000 characters and a batch at 100 params.
    items = [(k, str(v)[:500]) for k, v in params.items()]
    for start in range(0, len(items), 100):
        mlflow.log_params(dict(items[start : start + 100]))
    for index, row in enumerate(curves.rows):
        epoch = int(row.get("epoch", index + 1))
        metrics = {metric_name(k): float(v) for k, v in row.items() if k != "epoch"}
        mlflow.log_metrics(metrics, step=epoch)
    mlflow.log_metric("train_seconds", curves.train_seconds)
    mlflow.log_artifact(str(weights), artifact_path="weights")
    return True


def log_evaluation(report: EvaluationReport) -> bool:
    """Log the COCO stats (and the pretrained baseline's as `pretrained_*`) and the report."""
    if not _active():
        return False
    import mlflow

    mlflow.log_metrics({f"coco_{name}": value for name, value in report.stats.items()})
    mlflow.log_metrics({f"pretrained_coco_{name}": value for name, value in report.baseline_stats.items()})
    mlflow.log_text(report.markdown(), "evaluation/report.md")
    return True


def log_variants(report: VariantReport) -> bool:
    """Log each exported variant's COCO AP and median latency, the serving choice and the variant report.

    Metrics `variant_<name>_AP` and `variant_<name>_latency_ms` (name with "-" as "_"); params `serving_variant`,
    `serving_variant_forced`, `max_ap_drop` and `latency_cpu_cores`; the report as `packaging/variants.md`.
    """
    if not _active():
        return False
    import mlflow

    metrics: dict[str, float] = {}
    for variant in report.variants:
        key = metric_name(variant.name.replace("-", "_"))
        metrics[f"variant_{key}_AP"] = variant.stats["AP"]
        metrics[f"variant_{key}_latency_ms"] = variant.latency.median_ms
        metrics[f"variant_{key}_size_bytes"] = float(variant.size_bytes)
    mlflow.log_metrics(metrics)
    mlflow.log_params(
        {
            "serving_variant": report.choice.chosen,
            "serving_variant_forced": report.choice.forced,
            "max_ap_drop": report.choice.max_ap_drop,
            "latency_cpu_cores": report.machine.get("cpu_cores"),
        }
    )
    mlflow.log_text(report.markdown(), "packaging/variants.md")
    return True
