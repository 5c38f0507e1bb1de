"""What the `vtpose` commands share: the one-line error handler and the --weights, --imgsz and --backend options.

The command modules (vtpose/cli/pose.py, avatar.py, ...) import from here; only vtpose/cli/main.py imports them.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def weights_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """`--weights`: a .pt, .onnx or .xml file; default the production model version, else the pretrained checkpoint."""
    return click.option(
        "--weights",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Weights (.pt, .onnx, or an OpenVINO .xml with its .bin). Default: the production model version, else "
        "data/pretrained/yolo11n-pose.pt.",
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
        help="Inference engine. Default: the weights' own (.pt PyTorch, .onnx ONNX Runtime, .xml OpenVINO); "
        "onnx/openvino/openvino-int8 export .pt weights once to .runtime/exports (INT8 calibrated on sample images).",
    )(func)


def resolve_weights(weights: Path | None) -> Path:
    """The weights to use: the given file, else the registry's default."""
    if weights is not None:
        return weights
    from vtpose.training.registry import default_weights

    chosen = default_weights()
    click.echo(f"vtpose: using weights {chosen}", err=True)
    return chosen


def runtime_weights(weights: Path, backend: str | None, imgsz: int) -> Path:
    """The file to open for `backend` (None: `weights` as they are), exporting `.pt` weights once if needed."""
    if backend is None:
        return weights
    from vtpose.backends.export import cached_export
    from vtpose.paths import EXPORT_CACHE_DIR

    return cached_export(weights, backend, imgsz, EXPORT_CACHE_DIR)
