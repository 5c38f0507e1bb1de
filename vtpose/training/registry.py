"""The ZenML Model Control Plane side of vtpose: the `pose-estimator` model, its stages and its weights.

ZenML is imported inside the functions so the rest of the library stays usable without a ZenML store.
"""

from __future__ import annotations

import logging
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vtpose.artifacts import sha256_file
from vtpose.errors import VtposeError
from vtpose.paths import PROJECT_ROOT, atomic_path

MODEL_NAME = "pose-estimator"
WEIGHTS_ARTIFACT = "trained_weights"
# Model version metadata key holding the pycocotools stats (written by the evaluate step).
STATS_METADATA_KEY = "coco_keypoints"
# ...and the paired bootstrap's intervals (`vtpose.training.bootstrap.BootstrapResult.to_dict()`).
BOOTSTRAP_METADATA_KEY = "coco_keypoints_bootstrap"
PRODUCTION_STAGE = "production"
STAGES = ("production", "staging", "latest", "archived")
EXPORT_CACHE = PROJECT_ROOT / ".runtime" / "models"


def get_model_version(stage_or_version: str = PRODUCTION_STAGE) -> Any:
    """The `pose-estimator` version in a stage ("production", "latest"...) or with a number/name.

    Raises:
        VtposeError: there is no such version (with how to make one).
    """
    from zenml.client import Client

    try:
        return Client().get_model_version(MODEL_NAME, stage_or_version)
    except KeyError as error:
        raise VtposeError(
            f"model {MODEL_NAME!r} has no version {stage_or_version!r} in the ZenML store; "
            "run `make run` (or `zenml pipeline run training_pipeline`) first."
        ) from error


def version_stats(model_version: Any) -> dict[str, float]:
    """The pycocotools stats the evaluate step logged on a model version ({} if none)."""
    stats = model_version.run_metadata.get(STATS_METADATA_KEY) or {}
    return {k: float(v) for k, v in stats.items()}


def production_metric(metric: str, model_name: str = MODEL_NAME) -> tuple[float | None, str | None]:
    """The production version's value of `metric` and its version name, or (None, None) when none exists."""
    from zenml.client import Client
    from zenml.enums import ModelStages

    try:
        version = Client().get_model_version(model_name, ModelStages.PRODUCTION)
    except KeyError:
        return None, None
    value = version_stats(version).get(metric)
    return value, version.name


def production_weights_sha256(model_name: str = MODEL_NAME) -> tuple[str, str] | None:
    """The production version's name and the sha256 of its weights, or None when nothing is in production.

    Raises:
        VtposeError: the production version has no weights artifact.
    """
    version = _production_version(model_name)
    if version is None:
        return None
    artifact = _weights_artifact(version)
    sha256 = artifact.run_metadata.get("sha256") or sha256_file(artifact.load().path)
    return str(version.name), str(sha256)


def load_production_weights(sha256: str, model_name: str = MODEL_NAME) -> tuple[str, Any]:
    """The production version's name and weights (`PoseWeights`, a local copy), checked to be `sha256`.

    Raises:
        VtposeError: production now holds other weights (or none): the caller looked it up before a change.
    """
    version = _production_version(model_name)
    # One lookup and one load: the recorded sha256 says whether production changed, the file's own checks the copy.
    artifact = _weights_artifact(version) if version is not None else None
    weights = artifact.load() if artifact is not None else None
    recorded = (artifact.run_metadata.get("sha256") or sha256_file(weights.path)) if artifact and weights else None
    if version is None or weights is None or recorded != sha256:
        now = "nothing" if version is None else f"version {version.name} (weights {str(recorded)[:8]})"
        raise VtposeError(
            f"model {model_name!r}: production is now {now}, not weights {sha256[:8]}; run the pipeline again."
        )
    if sha256_file(weights.path) != sha256:
        raise VtposeError(f"model {model_name!r} version {version.name}: its weights file does not match its sha256.")
    return str(version.name), weights


def _production_version(model_name: str) -> Any:
    """The model version in the production stage, or None."""
    from zenml.client import Client
    from zenml.enums import ModelStages

    try:
        return Client().get_model_version(model_name, ModelStages.PRODUCTION)
    except KeyError:
        return None


def _weights_artifact(version: Any) -> Any:
    try:
        artifact = version.get_artifact(WEIGHTS_ARTIFACT)
    except (KeyError, RuntimeError) as error:
        raise VtposeError(f"model version {version.name} has no {WEIGHTS_ARTIFACT!r} artifact.") from error
    if artifact is None:
        raise VtposeError(f"model version {version.name} has no {WEIGHTS_ARTIFACT!r} artifact.")
    return artifact


def export_weights(stage_or_version: str, output: Path) -> Path:
    """Write the weights of a registered model version to `output` (atomically); ZenML's log lines go to stderr."""
    with zenml_logs_on_stderr():
        return _export_weights(stage_or_version, output)


def _export_weights(stage_or_version: str, output: Path) -> Path:
    weights = _weights_artifact(get_model_version(stage_or_version)).load()
    with atomic_path(output) as tmp:
        shutil.copyfile(weights.path, tmp)
    return output


@contextmanager
def zenml_logs_on_stderr() -> Iterator[None]:
    """Send ZenML's console log lines to stderr for a while, so a command's stdout carries only its answer.

    A first use of a ZenML config folder logs its set-up ("Initializing the ZenML global configuration...") to
    stdout, which would break `vtpose infer --json | jq`.
    """
    from zenml.logger import ZenMLConsoleHandler

    handlers = [h for h in logging.getLogger().handlers if isinstance(h, ZenMLConsoleHandler)]
    previous = [(h, h.setStream(sys.stderr)) for h in handlers]
    try:
        yield
    finally:
        for handler, stream in previous:
            if stream is not None:
                handler.setStream(stream)


def production_weights_file(version: Any) -> Path:
    """A local copy of a model version's weights (cached by version id under .runtime/models).

    `vtpose.serving.what_runs` calls this for the production version; ZenML's log lines go to stderr.

    Raises:
        VtposeError: the version has no weights artifact.
    """
    cached = EXPORT_CACHE / str(version.id) / "weights.pt"
    if not cached.is_file():
        export_weights(str(version.name), cached)
    return cached
