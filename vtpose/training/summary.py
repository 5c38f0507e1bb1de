"""The latest training run's evaluation stats and promotion decision, and the MLflow tracking URI.

`vtpose pipeline summary` prints them (`make run` ends with it; `--mlflow-uri` is what `make mlflow-ui` reads).
"""

from __future__ import annotations

from typing import Any

from vtpose.errors import VtposeError
from vtpose.keypoints import COCO_STAT_NAMES
from vtpose.training.bootstrap import CANDIDATE
from vtpose.training.registry import MODEL_NAME
from vtpose.training.reports import EvaluationReport

PIPELINE_NAME = "training_pipeline"


def mlflow_uri() -> str:
    """The tracking URI of the active stack's MLflow experiment tracker."""
    from zenml.client import Client
    from zenml.integrations.mlflow.experiment_trackers import MLFlowExperimentTracker

    tracker = Client().active_stack.experiment_tracker
    if not isinstance(tracker, MLFlowExperimentTracker):
        raise VtposeError("the active ZenML stack has no MLflow experiment tracker; run `make stack`")
    return tracker.get_tracking_uri()


def _load(run: Any, step: str, output: str) -> Any:
    return run.steps[step].outputs[output][0].load()


def report_lines(report: EvaluationReport) -> list[str]:
    """The evaluation report as aligned text: every model's stats with their intervals, then the paired
    differences (trained minus each reference); on a merged val split the same for each source, with its PCKh."""
    bootstrap = report.bootstrap_result()
    head = f"evaluation on {report.split} ({report.num_images} images), pycocotools OKS, all models on the same split"
    if bootstrap is None:
        lines = [head + ":"]
    else:
        lines = [
            head + ";",
            f"  in brackets {bootstrap.confidence:.0%} intervals, paired bootstrap over images "
            f"({bootstrap.resamples} resamples, seed {bootstrap.seed}):",
        ]
    columns = report.columns()
    width = 26 if bootstrap else 10
    lines.append(f"  {'stat':<6}" + "".join(f" {heading:>{width}}" for _, heading, _ in columns))
    for name in COCO_STAT_NAMES:
        cells = []
        for role, _, stats in columns:
            interval = bootstrap.intervals.get(role, {}).get(name) if bootstrap else None
            cells.append(interval.format() if interval else f"{stats[name]:.4f}")
        lines.append(f"  {name:<6}" + "".join(f" {cell:>{width}}" for cell in cells))
    references = [(r, h) for r, h, _ in columns[1:] if bootstrap and bootstrap.difference(CANDIDATE, r, "AP")]
    if bootstrap and references:
        lines.append("  paired differences:")
        lines.append(f"  {'stat':<6}" + "".join(f" {'trained - ' + h.split()[0]:>29}" for _, h in references))
        for name in COCO_STAT_NAMES:
            differences = [bootstrap.difference(CANDIDATE, r, name) for r, _ in references]
            lines.append(f"  {name:<6}" + "".join(f" {d.format(signed=True) if d else '':>29}" for d in differences))
    for source in report.per_source:
        lines += [f"  {line}" for line in report_lines(report.source_report(source))]
        lines += [f"    {line}" for line in report.pckh_lines(source)]
    return lines


def decision_lines(decision: dict[str, Any]) -> list[str]:
    """The promotion record (`promotion_decision`) as text: the verdict, then a note when production scored below
    the pretrained checkpoint, then one line per rule check. Records older than the rules list have no checks."""
    verdict = "PROMOTED to production" if decision["promote"] else "NOT promoted"
    checks = decision.get("checks") or []
    if len(checks) > 1:
        rule = f" ({len(checks)} rules, all must pass)"
    else:
        rule = f" (rule {decision['rule']})" if "rule" in decision else ""
    lines = [f"promotion{rule}: {MODEL_NAME} version {decision['model_version']} {verdict}: {decision['reason']}"]
    if decision.get("production_below_pretrained"):
        lines.append(
            f"  production version {decision.get('production_version')} scores below the pretrained checkpoint on "
            f"this split ({decision['metric']} {decision['production_value']:.4f} against "
            f"{decision['reference_value']:.4f}): the rules were applied against the pretrained checkpoint"
        )
    for check in checks:
        margin = f", margin {check['margin']:g}" if check["margin"] else ""
        outcome = "passed" if check["passed"] else "FAILED"
        stat = check["metric"] + (f" on source {check['source']}" if check.get("source") else "")
        lines.append(f"  rule {stat} {check['rule']}{margin}: {outcome}: {check['reason']}")
    return lines


def _last_run() -> Any:
    """The latest run of the training pipeline.

    Raises:
        VtposeError: there is none yet (with the command that makes one).
    """
    from zenml.client import Client

    try:
        return Client().get_pipeline(PIPELINE_NAME).last_run
    except (KeyError, RuntimeError) as error:  # no such pipeline / a pipeline without runs
        raise VtposeError(
            f"no run of {PIPELINE_NAME} in this ZenML store yet; run `make run` "
            "(or `zenml pipeline run training_pipeline`) first."
        ) from error


def last_decision() -> dict[str, Any]:
    """The latest training run's promotion decision (`promote_model`'s record).

    Raises:
        VtposeError: no run yet, or its gate did not run (the run failed before it).
    """
    run = _last_run()
    if "promote_model" not in run.steps or run.steps["promote_model"].status.value != "completed":
        raise VtposeError(f"the latest run of {PIPELINE_NAME} ({run.name}, {run.status.value}) made no decision.")
    decision: dict[str, Any] = _load(run, "promote_model", "promotion_decision")
    return decision


def summary_lines() -> list[str]:
    """Lines describing the latest run of the training pipeline."""
    from zenml.utils.dashboard_utils import get_run_url

    run = _last_run()
    lines = [f"run: {run.name} ({run.status.value})"]
    url = get_run_url(run)
    if url:
        lines.append(f"dashboard: {url}")
    if "evaluate_model" in run.steps:
        lines += report_lines(_load(run, "evaluate_model", "evaluation_report"))
    if "promote_model" in run.steps:
        lines += decision_lines(_load(run, "promote_model", "promotion_decision"))
    if "export_variants" in run.steps:
        variants = _load(run, "export_variants", "variant_report")
        if variants is not None:
            lines += variants.text_lines()
    if "package_model" in run.steps:
        bento = _load(run, "package_model", "bento")
        if bento.get("built"):
            serving = f", serving {bento['backend']}" if "backend" in bento else ""
            lines.append(f"bento: {bento['tag']} ({bento['size_bytes'] / 1e6:.1f} MB{serving})")
    from vtpose.serving.deployment import served_line

    lines.append(served_line())
    return lines
