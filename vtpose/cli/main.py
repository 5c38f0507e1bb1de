"""The `vtpose` command: the root group, and every area's commands added to it.

Each area's commands live in their own module: pose.py (`infer`, `evaluate`), avatar.py (`avatar`, `avatars`,
`animate`, `match`), model.py (`model export`, `model package`),
deployment.py (`deployment status`, `attach`, `stop`), data.py (`data rebuild`, `data check`),
pipeline.py (`pipeline check`, `pipeline summary`), stack.py (`stack render`); what they share is in options.py.
Every command turns a `VtposeError` into one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import click

from vtpose.cli.avatar import animate, avatar, avatars, match
from vtpose.cli.data import data
from vtpose.cli.deployment import deployment
from vtpose.cli.model import model
from vtpose.cli.pipeline import pipeline
from vtpose.cli.pose import evaluate, infer
from vtpose.cli.stack import stack


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="vtpose")
def main() -> None:
    """Human pose estimation: train, evaluate, serve, and pose avatars."""


for command in (infer, evaluate, avatar, avatars, animate, match, model, deployment, data, pipeline, stack):
    main.add_command(command)


if __name__ == "__main__":
    main()
