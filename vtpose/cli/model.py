"""`vtpose model`: which model runs (`which`) and its Bento (`bento`), registered model versions out of the
registry (`export`), weights into a Bento (`package`)."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import click

from vtpose.backends import DEFAULT_IMGSZ, VARIANTS
from vtpose.backends.export import DEFAULT_CALIBRATION_SIZE
from vtpose.cli.options import friendly_errors, stdout_on_stderr
from vtpose.serving.packaging import DEFAULT_MODEL_NAME


@click.group()
def model() -> None:
    """Registered model versions (ZenML Model Control Plane) and their Bentos."""


@model.command("which")
@click.option("--json", "as_json", is_flag=True, help="Print the resolver's record as JSON.")
@friendly_errors
def model_which(as_json: bool) -> None:
    """Which model runs by default: the production version and its serving variant, else the pretrained one."""
    from vtpose.serving.what_runs import what_runs

    choice = what_runs()
    click.echo(json.dumps(choice.to_json(), indent=2) if as_json else f"model: {choice.description}")


@model.command("bento")
@friendly_errors
def model_bento() -> None:
    """Print the tag of the Bento serving what runs (`vtpose model which`), packaging it first if it is not in the
    local Bento store: what `make serve` and `make studio` serve. A line on stderr names the model."""
    from vtpose.serving.what_runs import serving_bento, what_runs

    choice = what_runs()
    click.echo(f"model: {choice.description}", err=True)
    # Packaging's exporters and BentoML's console print to stdout; keep it for the tag (`bentoml serve "$(...)"`).
    with stdout_on_stderr():
        tag = serving_bento(choice)
    click.echo(tag)


@model.command("export")
@click.option(
    "--stage",
    default="production",
    show_default=True,
    help="A stage (production, staging, latest, archived) or a version name/number.",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Where to write.")
@friendly_errors
def model_export(stage: str, output: Path) -> None:
    """Write the weights of a registered pose-estimator version."""
    from vtpose.training.registry import export_weights

    click.echo(str(export_weights(stage, output)))


@model.command("package")
@click.argument("weights", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--model-version", required=True, help="The version the Bento serves (its tag: pose-service:VERSION).")
@click.option("--model-name", default=DEFAULT_MODEL_NAME, show_default=True, help="BentoML model name.")
@click.option("--imgsz", type=int, default=DEFAULT_IMGSZ, show_default=True, help="Export image size in pixels.")
@click.option(
    "--backend", type=click.Choice(VARIANTS), default="onnx", show_default=True, help="The variant served by default."
)
@click.option("--openvino", is_flag=True, help="Also package the OpenVINO FP32 IR.")
@click.option(
    "--int8-images",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Also package an OpenVINO INT8 IR calibrated on this folder's .jpg/.png images.",
)
@click.option(
    "--int8-size",
    type=int,
    default=DEFAULT_CALIBRATION_SIZE,
    show_default=True,
    help="Most calibration images (sorted by name).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the Bento's record (BentoInfo) as JSON.")
@friendly_errors
def model_package(
    weights: Path,
    model_version: str,
    model_name: str,
    imgsz: int,
    backend: str,
    openvino: bool,
    int8_images: Path | None,
    int8_size: int,
    as_json: bool,
) -> None:
    """Package WEIGHTS (.pt) for serving: ONNX (and any OpenVINO variants) in a BentoML model, then the Bento.

    Prints the Bento tag (or with --json its record). BentoML keeps both in $BENTOML_HOME (default ~/bentoml).
    """
    from vtpose.serving.packaging import package_weights

    # Ultralytics' exporter prints to stdout; keep stdout for the result so `--json` output parses.
    with contextlib.redirect_stdout(sys.stderr):
        info = package_weights(
            weights,
            model_version,
            model_name=model_name,
            imgsz=imgsz,
            backend=backend,
            openvino=openvino,
            int8_images=int8_images,
            int8_size=int8_size,
        )
    click.echo(json.dumps(info.to_json(), indent=2) if as_json else info.tag)
