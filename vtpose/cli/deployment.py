"""`vtpose deployment`: the service the deployment pipeline started: `status`, `attach` (what `make serve` and
`make studio` end in) and `stop`."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from vtpose.cli.options import friendly_errors
from vtpose.errors import VtposeError
from vtpose.serving.deployment import DEFAULT_PORT

if TYPE_CHECKING:
    from zenml.integrations.bentoml.services import BentoMLLocalDeploymentService

_PORT = click.option("--port", type=int, default=DEFAULT_PORT, show_default=True, help="The serving port.")


@click.group()
def deployment() -> None:
    """The deployed pose service (`zenml pipeline run deployment_pipeline` starts it)."""


@deployment.command("status")
@_PORT
@friendly_errors
def deployment_status(port: int) -> None:
    """One line: what is deployed on PORT, where, and whether it runs; exit 1 when nothing runs there."""
    service = _deployed(port)
    state = "running" if service.is_running else "stopped"
    click.echo(
        f"{service.config.bento_tag} on http://{service.config.host}:{port}: {state} (ZenML service {service.uuid})"
    )
    sys.exit(0 if service.is_running else 1)


@deployment.command("attach")
@_PORT
@click.option("--path", "page", default="", help="The page to name, e.g. /studio.")
@friendly_errors
def deployment_attach(port: int, page: str) -> None:
    """Say what the deployed service serves and follow its log; Ctrl-C stops following, not the service."""
    service = _deployed(port)
    if not service.is_running:
        raise VtposeError(
            f"{service.config.bento_tag} is deployed on port {port} but not running; "
            "`zenml pipeline run deployment_pipeline` starts it again."
        )
    url = f"http://{service.config.host}:{port}"
    click.echo(
        f"serving {service.config.bento_tag} on {url}{page} (ZenML service {service.uuid}, pid {service.status.pid})"
    )
    click.echo("following its log; Ctrl-C stops following (the service keeps serving: `vtpose deployment stop`)")
    log = Path(service.status.log_file or "")
    try:
        _follow(log)
    except KeyboardInterrupt:
        click.echo(f"\nstill serving on {url}")


@deployment.command("stop")
@_PORT
@friendly_errors
def deployment_stop(port: int) -> None:
    """Stop the deployed service on PORT (its record stays: the deployment pipeline starts it again)."""
    from vtpose.serving.deployment import active_deployer

    service = _deployed(port)
    active_deployer().stop_model_server(service.uuid)
    click.echo(f"stopped {service.config.bento_tag} on port {port}")


def _deployed(port: int) -> BentoMLLocalDeploymentService:
    from vtpose.serving.deployment import serving_now

    service = serving_now(port)
    if service is None:
        raise VtposeError(
            f"nothing is deployed on port {port}; run `zenml pipeline run deployment_pipeline` (or `make serve`)."
        )
    return service


def _follow(log: Path) -> None:
    """Print what is appended to `log`, from its last lines on, until interrupted."""
    if not log.is_file():
        while True:
            time.sleep(3600)
    with log.open(errors="replace") as stream:
        lines = stream.readlines()[-20:]
        sys.stdout.writelines(lines)
        while True:
            line = stream.readline()
            if line:
                sys.stdout.write(line)
                sys.stdout.flush()
            else:
                time.sleep(0.5)
