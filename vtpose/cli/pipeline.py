"""`vtpose pipeline`: before a training run, its config checked (`check`); after it, what it found (`summary`) and
whether it promoted (`promoted`, which `make run` asks before it deploys)."""

from __future__ import annotations

from pathlib import Path

import click

from vtpose.cli.options import friendly_errors


@click.group()
def pipeline() -> None:
    """The training pipeline (`zenml pipeline run training_pipeline -c CONFIG`): its config and its latest run."""


@pipeline.command()
@click.argument("config", type=click.Path(path_type=Path))
@friendly_errors
def check(config: Path) -> None:
    """Check the run CONFIG before a run: prints `CONFIG: ok`, else one line naming the file and key, exit 2."""
    from vtpose.training.config import check_run_config

    check_run_config(config)
    click.echo(f"{config}: ok")


@pipeline.command()
@click.option("--mlflow-uri", is_flag=True, help="Print the active stack's MLflow tracking URI instead (`mlflow ui`).")
@friendly_errors
def summary(mlflow_uri: bool) -> None:
    """The latest training run's evaluation stats with intervals, promotion decision and Bento (`make run` ends
    with it)."""
    from vtpose.training import summary as training_summary

    if mlflow_uri:
        click.echo(training_summary.mlflow_uri())
        return
    click.echo("\n".join(training_summary.summary_lines()))


@pipeline.command()
@friendly_errors
def promoted() -> None:
    """Exit 0 when the latest training run promoted its model version (then `make run` deploys it), else 1; one
    line says which."""
    import sys

    from vtpose.training.summary import last_decision

    decision = last_decision()
    version = decision["model_version"]
    if decision["promote"]:
        click.echo(f"pose-estimator version {version} was promoted: deploying it (deployment_pipeline)")
        sys.exit(0)
    click.echo(
        f"pose-estimator version {version} was not promoted: the deployed service is unchanged "
        "(`zenml pipeline run deployment_pipeline` serves what runs)"
    )
    sys.exit(1)
