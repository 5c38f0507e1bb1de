"""`python -m vtpose.summary`: the latest training run's evaluation stats and promotion decision.

`make run` ends with it. `--mlflow-uri` prints the active stack's MLflow tracking URI instead (for
`mlflow ui`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from vtpose.keypoints import COCO_STAT_NAMES

PIPELINE_NAME = "training_pipeline"


def mlflow_uri() -> str:
    """The tracking URI of the active stack's MLflow experiment tracker."""
    from zenml.client import Client

    tracker = Client().active_stack.experiment_tracker
    if tracker is None:
        raise SystemExit("the active ZenML stack has no experiment tracker; run `make stack`")
    return tracker.get_tracking_uri()


def _load(run: Any, step: str, output: str) -> Any:
    return run.steps[step].outputs[output][0].load()


def summary_lines() -> list[str]:
    """Lines describing the latest run of the training pipeline."""
    from zenml.client import Client
    from zenml.utils.dashboard_utils import get_run_url

    run = Client().get_pipeline(PIPELINE_NAME).last_run
    lines = [f"run: {run.name} ({run.status.value})"]
    url = get_run_url(run)
    if url:
        lines.append(f"dashboard: {url}")
    if "evaluate_model" in run.steps:
        report = _load(run, "evaluate_model", "evaluation_report")
        lines.append(f"evaluation on {report.split} ({report.num_images} images), pycocotools OKS:")
        lines.append(f"  {'stat':<6} {'trained':>8} {'pretrained':>10}")
        for name in COCO_STAT_NAMES:
            baseline = report.baseline_stats.get(name)
            lines.append(f"  {name:<6} {report.stats[name]:>8.4f} {'' if baseline is None else f'{baseline:>10.4f}'}")
    if "promote_model" in run.steps:
        decision = _load(run, "promote_model", "promotion_decision")
        verdict = "PROMOTED to production" if decision["promote"] else "NOT promoted"
        lines.append(f"promotion: pose-estimator version {decision['model_version']} {verdict}: {decision['reason']}")
    if "package_model" in run.steps:
        bento = _load(run, "package_model", "bento")
        if bento.get("built"):
            lines.append(f"bento: {bento['tag']} ({bento['size_bytes'] / 1e6:.1f} MB)")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Print the summary (or the MLflow URI)."""
    parser = argparse.ArgumentParser(prog="python -m vtpose.summary", description=__doc__)
    parser.add_argument("--mlflow-uri", action="store_true", help="print the MLflow tracking URI and exit")
    args = parser.parse_args(argv)
    if args.mlflow_uri:
        print(mlflow_uri())
        return 0
    print("\n".join(summary_lines()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
