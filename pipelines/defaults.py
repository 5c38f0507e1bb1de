"""A pipeline object that runs a default config unless `-c` names another (the design card's command)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from zenml.pipelines.pipeline_definition import Pipeline


class DefaultConfigPipeline(Pipeline):
    """A ZenML pipeline whose `with_options` falls back to a default config file.

    `zenml pipeline run SOURCE [-c CONFIG]` (and `build`, `snapshot create`) loads SOURCE, calls
    `with_options(config_path=CONFIG)` once, with `None` when `-c` is left out, and runs the result. Here `None`
    means the default config, so one config file is applied either way: the default never lies under `-c`'s
    values (ZenML merges a config file into what is already configured, so pre-applying the default would leak
    its keys into every other config's run).
    """

    default_config: str

    # Takes ZenML's keyword arguments through unchanged, so it does not restate their long signature.
    def with_options(self, **kwargs: Any) -> Pipeline:  # type: ignore[override]
        """ZenML's `with_options`; without a `config_path` (none now, none applied before) the default config.

        Args:
            **kwargs: the keyword arguments of `zenml.Pipeline.with_options`.

        Returns:
            The configured copy.
        """
        kwargs["config_path"] = kwargs.get("config_path") or self._run_args.get("config_path") or self.default_config
        return super().with_options(**kwargs)


def with_default_config(pipeline_: Pipeline, config: Path) -> DefaultConfigPipeline:
    """A copy of `pipeline_` that runs `config` unless another config file is given.

    Args:
        pipeline_: a pipeline made by `@pipeline`, not yet configured from a file.
        config: the default config file (an absolute path, so any working directory works).

    Returns:
        The copy; its steps, entrypoint and name are the original's.
    """
    copy = pipeline_.copy()
    copy.__class__ = DefaultConfigPipeline
    configured = cast(DefaultConfigPipeline, copy)
    configured.default_config = str(config)
    return configured
