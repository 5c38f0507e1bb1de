"""`vtpose stack`: ZenML stack recipes (configs/stacks/*.yaml) made ready for `zenml stack import`."""

from __future__ import annotations

from pathlib import Path

import click

from vtpose.cli.options import friendly_errors


@click.group()
def stack() -> None:
    """ZenML stack recipes (configs/stacks/)."""


@stack.command()
@click.argument("stack_yaml", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@friendly_errors
def render(stack_yaml: Path) -> None:
    """Print STACK_YAML with every `${VAR}` filled in from the environment, for `zenml stack import -f`.

    `{{secret.key}}` references are left for ZenML to resolve; a variable without a value is an error naming it.
    """
    import yaml

    from vtpose.stacks import render_stack

    click.echo(yaml.safe_dump(render_stack(stack_yaml), sort_keys=False), nl=False)
