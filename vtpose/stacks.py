"""Fill the `${VAR}` placeholders of a stack recipe (configs/stacks/*.yaml) from the environment.

`zenml stack import` takes literal values; the recipes keep cluster addresses out of the repository as `${VAR}`
and credentials as ZenML secret references (`{{secret.key}}`), which this leaves alone for ZenML to resolve.

    vtpose stack render configs/stacks/kubernetes.yaml > stack.yaml
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from vtpose.errors import VtposeError

_PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


def placeholders(path: str | Path) -> list[str]:
    """The `${VAR}` names a recipe uses, in order of first appearance."""
    names: list[str] = []
    for name in _PLACEHOLDER.findall(Path(path).read_text()):
        if name not in names:
            names.append(name)
    return names


def render_stack(path: str | Path, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The recipe as `zenml stack import` reads it, every `${VAR}` replaced by its value.

    Args:
        path: a stack recipe in `zenml stack import` format.
        env: where the values come from (default: the process environment).

    Returns:
        The parsed YAML with the values filled in.

    Raises:
        VtposeError: a placeholder has no value (all missing names are listed).
    """
    env = os.environ if env is None else env
    text = Path(path).read_text()
    missing = [name for name in placeholders(path) if not env.get(name)]
    if missing:
        raise VtposeError(f"{path}: set {', '.join(missing)} in the environment (see the comment at its top).")
    # Substituted in the text, before parsing, so a value lands exactly where the recipe put the placeholder.
    return yaml.safe_load(_PLACEHOLDER.sub(lambda m: env[m.group(1)], text))
