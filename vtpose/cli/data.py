"""`vtpose data`: the sample data in data/, rebuilt from its pinned public originals (datasources/) or checked."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from vtpose.cli.options import friendly_errors
from vtpose.data.originals import DEFAULT_CACHE_DIR, MIRROR_ENV
from vtpose.paths import DATA_DIR, PROJECT_ROOT

data_dir_option = click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DATA_DIR,
    show_default="data/",
    help="The folder to rebuild or check.",
)


@click.group()
def data() -> None:
    """The sample data (data/): `make data` pulls it with DVC, else rebuilds it from its public originals."""


@data.command()
@data_dir_option
@click.option(
    "--cache",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_CACHE_DIR,
    show_default=".runtime/originals",
    help="Download cache.",
)
@click.option("--mirror", default=lambda: os.environ.get(MIRROR_ENV), help=f"Mirror base URL (env {MIRROR_ENV}).")
@click.option("--no-dvc", is_flag=True, help="Do not store the rebuilt data/ in DVC's cache.")
@click.option("--after-failed-pull", is_flag=True, help="Say first that `dvc pull` failed (what `make data` runs).")
def rebuild(data_dir: Path, cache: Path, mirror: str | None, no_dvc: bool, after_failed_pull: bool) -> None:
    """Rebuild data/ from its public originals, byte for byte what `dvc pull` gives; one line of output.

    Exits 1 when the rebuild fails (the line says why); a complete data/ is left as it is.
    """
    from vtpose.data.originals import failed_pull_note, rebuild_data, register_with_dvc
    from vtpose.errors import VtposeError

    prefix = f"{failed_pull_note()}; " if after_failed_pull else ""
    try:
        report = rebuild_data(data_dir, cache, mirror=mirror)
        if report.written and not no_dvc and data_dir.resolve() == (PROJECT_ROOT / "data").resolve():
            register_with_dvc()
    except VtposeError as error:
        click.echo(f"{prefix}rebuilding data/ from its public originals failed: {error}", err=True)
        sys.exit(1)
    click.echo(f"{prefix}{report.summary()}")


@data.command()
@data_dir_option
@friendly_errors
def check(data_dir: Path) -> None:
    """Compare data/ with its pins (datasources/data.sha256); exit 1 if a file is missing or differs."""
    from vtpose.data.originals import check_data, load_pins

    missing, differing = check_data(data_dir, load_pins())
    click.echo(f"{data_dir}: {len(missing)} pinned file(s) missing, {len(differing)} differ")
    if missing or differing:
        sys.exit(1)
