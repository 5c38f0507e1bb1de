"""What the `vtpose` commands share: the one-line error handler and the --weights, --imgsz and --backend options.

The command modules (vtpose/cli/pose.py, avatar.py, ...) import from here; only vtpose/cli/main.py imports them.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import click

from vtpose.errors import VtposeError


def friendly_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Print a `VtposeError` (or a bad value) as one clear line and exit 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (VtposeError, ValueError) as error:
            click.echo(f"vtpose: error: {error}", err=True)
            sys.exit(2)

    return wrapper


@contextlib.contextmanager
def stdout_on_stderr() -> Iterator[None]:
    """Send everything written to stdout to stderr for a while, down to file descriptor 1, so a command's stdout
    carries only its answer: BentoML's console and the exporters write to the stdout they captured at import."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def weights_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """`--weights`: a .pt, .onnx or .xml file; default what `vtpose.serving.what_runs` names."""
    return click.option(
        "--weights",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Weights (.pt, .onnx, or an OpenVINO .xml with its .bin). Default: the production model version on its "
        "serving variant, else data/pretrained/yolo11n-pose.pt (`vtpose model which` says which).",
    )(func)


def imgsz_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """`--imgsz`: the inference image size, shared by every command that runs the model."""
    from vtpose.backends.base import DEFAULT_IMGSZ

    return click.option(
        "--imgsz",
        type=int,
        default=DEFAULT_IMGSZ,
        show_default=True,
        help="Inference image size in pixels (multiple of 32); smaller is faster.",
    )(func)


def backend_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """`--backend`: the inference engine; `.pt` weights are exported once (cached under .runtime/exports)."""
    from vtpose.backends import VARIANTS

    return click.option(
        "--backend",
        type=click.Choice(VARIANTS),
        default=None,
        help="Inference engine. Default: the serving variant of the default model, else the weights' own (.pt PyTorch, "
        ".onnx ONNX Runtime, .xml OpenVINO); "
        "onnx/openvino/openvino-int8 export .pt weights once to .runtime/exports (INT8 calibrated on sample images).",
    )(func)


class ResolvedModel(NamedTuple):
    """What a command runs: the weights, the backend to export them to (None: the file's own engine), and the
    `model_version` label answers carry, "<version>+<variant>" as the service writes it (with `--weights`, the
    file's name stands for the version)."""

    weights: Path
    backend: str | None
    model_version: str


def resolve_model(weights: Path | None, backend: str | None) -> ResolvedModel:
    """The model to run, and one line on stderr naming it.

    With `--weights`: that file on `--backend` (or its own engine). Without: what `vtpose.serving.what_runs` names
    (the production version on its serving variant, else the pretrained checkpoint), on `--backend` if given.
    """
    if weights is not None:
        from vtpose.backends import backend_for

        variant = backend or backend_for(weights)
        click.echo(f"model: {weights} (--weights), {variant}", err=True)
        return ResolvedModel(weights, backend, f"{weights.name}+{variant}")
    from vtpose.serving.what_runs import what_runs

    choice = what_runs()
    variant = backend or choice.variant
    line = choice.description if variant == choice.variant else f"{choice.description}, run as {variant} (--backend)"
    click.echo(f"model: {line}", err=True)
    return ResolvedModel(choice.weights, variant, f"{choice.version}+{variant}")


def runtime_weights(weights: Path, backend: str | None, imgsz: int) -> Path:
    """The file to open for `backend` (None: `weights` as they are), exporting `.pt` weights once if needed."""
    if backend is None:
        return weights
    from vtpose.backends.export import cached_export
    from vtpose.paths import EXPORT_CACHE_DIR

    return cached_export(weights, backend, imgsz, EXPORT_CACHE_DIR)
