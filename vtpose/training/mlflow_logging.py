"""MLflow logging of a training run and its evaluation, and of an inference run (`log_inference`).

Steps call these inside the MLflow run ZenML's experiment tracker opened; with no active run (a stack
without a tracker) they do nothing, on purpose.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

from vtpose.training.bootstrap import CANDIDATE, PRETRAINED, PRODUCTION, difference_name
from vtpose.training.reports import EvaluationReport, TrainingCurves
from vtpose.training.variants import VariantReport

# MLflow metric names allow letters, digits, _ - . / and spaces; Ultralytics uses "metrics/mAP50(P)".
_UNSAFE = re.compile(r"[^\w\-./ ]")


# Where a source's own metrics go in the MLflow run of a merged dataset: `source/<name>/coco_AP`.
SOURCE_METRIC_PREFIX = "source/"


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


def evaluation_metrics(report: EvaluationReport) -> dict[str, float]:
    """The MLflow metrics of an evaluation report.

    `coco_<stat>` for the trained model, `production_coco_<stat>` and `pretrained_coco_<stat>` for the references
    scored on the same split; with the bootstrap, each also as `..._ci_low` / `..._ci_high`, and the paired
    differences as `candidate_minus_production_<stat>` (and `_ci_low`, `_ci_high`), likewise for pretrained.
    A merged val split's sources each get the same under `source/<name>/`, and `source/<name>/pckh` for MPII.
    """
    prefixes = {CANDIDATE: "", PRODUCTION: f"{PRODUCTION}_", PRETRAINED: f"{PRETRAINED}_"}
    metrics: dict[str, float] = {}
    for name, part in report.per_source.items():
        # Each source of a merged val split under `source/<name>/`, the same names as the combined set's, and
        # PCKh@0.5 where its ground truth has MPII head boxes (`source/<name>/pckh`, `.../pretrained_pckh`).
        own = evaluation_metrics(report.source_report(name))
        metrics.update({f"{SOURCE_METRIC_PREFIX}{name}/{key}": value for key, value in own.items()})
        for role, score in (part.get("pckh") or {}).items():
            if score["PCKh"] is not None:
                metrics[f"{SOURCE_METRIC_PREFIX}{name}/{prefixes[role]}pckh"] = score["PCKh"]
    for role, _, stats in report.columns():
        metrics.update({f"{prefixes[role]}coco_{name}": value for name, value in stats.items()})
    bootstrap = report.bootstrap_result()
    if bootstrap is None:
        return metrics
    for role, intervals in bootstrap.intervals.items():
        for name, interval in intervals.items():
            metrics[f"{prefixes[role]}coco_{name}_ci_low"] = interval.low
            metrics[f"{prefixes[role]}coco_{name}_ci_high"] = interval.high
    for role in (PRODUCTION, PRETRAINED):
        for name, interval in bootstrap.differences.get(difference_name(CANDIDATE, role), {}).items():
            key = f"{CANDIDATE}_minus_{role}_{name}"
            metrics.update({key: interval.estimate, f"{key}_ci_low": interval.low, f"{key}_ci_high": interval.high})
    return metrics


def log_evaluation(report: EvaluationReport) -> bool:
    """Log the COCO stats of the trained model and of the references on the same split (`production_*`,
    `pretrained_*`), their bootstrap intervals and paired differences (see `evaluation_metrics`), the
    bootstrap's settings as params, and the report."""
    if not _active():
        return False
    import mlflow

    mlflow.log_metrics(evaluation_metrics(report))
    bootstrap = report.bootstrap_result()
    if bootstrap is not None:
        mlflow.log_params(
            {
                "evaluation.bootstrap_resamples": bootstrap.resamples,
                "evaluation.bootstrap_seed": bootstrap.seed,
                "evaluation.bootstrap_confidence": bootstrap.confidence,
            }
        )
    if report.production_version:
        mlflow.log_param("evaluation.production_version", report.production_version)
    mlflow.log_text(report.markdown(), "evaluation/report.md")
    return True


def log_variants(report: VariantReport) -> bool:
    """Log each exported variant's COCO AP and median latency, the serving choice and the variant report.

    Metrics `variant_<name>_AP` and `variant_<name>_latency_ms` (name with "-" as "_"); params `serving_variant`,
    `serving_variant_forced`, `max_ap_drop` and `latency_cpu_cores`; the report as `packaging/variants.md` and its
    AP-against-latency plot as `packaging/variants.png`.
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
    with tempfile.TemporaryDirectory(prefix="vtpose-mlflow-") as tmp:
        plot = Path(tmp) / "variants.png"
        plot.write_bytes(report.plot())
        mlflow.log_artifact(str(plot), artifact_path="packaging")
    return True


def log_inference(summary: dict[str, Any]) -> bool:
    """Log an inference run: its model version and variant as params, its counts and throughput as metrics.

    Returns:
        Whether there was an active MLflow run to log to.
    """
    if not _active():
        return False
    import mlflow

    mlflow.log_params({"model_version": summary["model_version"], "model": str(summary["model"])[:500]})
    numbers = {k: float(v) for k, v in summary.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    mlflow.log_metrics({**numbers, "bad_inputs": float(len(summary["bad_inputs"]))})
    return True
