"""Which model runs: the one answer every consumer asks for (the CLI without --weights, the service, the studio,
`make serve` and `make studio`).

The production version of `pose-estimator` and the serving variant `export_variants` chose for it (the model
version's `serving_variant` metadata, else the variant its Bento was packaged with), its weights and the Bento the
packaging step built for it; when nothing is in production, the pretrained checkpoint served as PRETRAINED_VARIANT.
A version the gate rejected is never the answer: the packaging step builds its Bento under CANDIDATE_SERVICE_NAME,
which neither `:latest` of `pose-service` nor the make targets pick.

`describe` is shared with the service, which says the same words in `GET /model` without a ZenML store.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from vtpose.paths import PRETRAINED_WEIGHTS

# Where the answer came from. "candidate" and "packaged" only ever describe a Bento someone serves by its tag
# (a version the gate rejected; weights packaged by hand), "pinned" a version a deployment config names (a
# rollback); the resolver answers "production" or "pretrained".
Source = Literal["production", "pretrained", "candidate", "packaged", "pinned"]
SOURCES: tuple[Source, ...] = ("production", "pretrained", "candidate", "packaged", "pinned")
# The pretrained checkpoint's model version name and the variant it is served as (INT8 won on the sample data for
# the trained model, and the pretrained network is the same architecture).
PRETRAINED_VERSION = "pretrained"
PRETRAINED_VARIANT = "openvino-int8"
# A production version recorded without any variant (registered by hand): its weights as they are.
UNRECORDED_VARIANT = "pytorch"
# Model version metadata keys written by the export and package steps.
SERVING_VARIANT_KEY = "serving_variant"
BENTO_KEY = "bento"

__all__ = [
    "PRETRAINED_VARIANT",
    "PRETRAINED_VERSION",
    "SOURCES",
    "ModelChoice",
    "Source",
    "describe",
    "pinned_version",
    "serving_bento",
    "what_runs",
]


def describe(source: str, model_name: str, version: str, variant: str) -> str:
    """One line naming a model and why it runs, e.g. "pose-estimator version 3 (production), openvino-int8".

    Raises:
        ValueError: an unknown source.
    """
    if source == "production":
        return f"{model_name} version {version} (production), {variant}"
    if source == "pretrained":
        return f"pretrained checkpoint {PRETRAINED_WEIGHTS.name} (nothing in production), {variant}"
    if source == "candidate":
        return f"{model_name} version {version} (candidate: not promoted by the gate), {variant}"
    if source == "packaged":
        return f"{model_name} version {version} (packaged by hand), {variant}"
    if source == "pinned":
        return f"{model_name} version {version} (pinned by the deployment config, not production), {variant}"
    raise ValueError(f"source {source!r} is not one of {SOURCES}")


@dataclass(frozen=True)
class ModelChoice:
    """What runs by default.

    Attributes:
        model_name: the registered model ("pose-estimator").
        version: the production version's name ("3"), or "pretrained".
        variant: the serving variant, one of `vtpose.backends.VARIANTS`.
        source: "production" or "pretrained".
        weights: the `.pt` (a local copy of the production version's weights artifact, or the checkpoint).
        bento_tag: the Bento the packaging step built for this version ("pose-service:3-1a2b3c4d"), None when none
            was recorded (the pretrained checkpoint; a version packaged elsewhere): `vtpose model bento` builds it.
        reason: why this one, in a few words ("in the production stage", "nothing in production").
    """

    model_name: str
    version: str
    variant: str
    source: Source
    weights: Path
    bento_tag: str | None
    reason: str

    @property
    def description(self) -> str:
        """The one line: "pose-estimator version 3 (production), openvino-int8"."""
        return describe(self.source, self.model_name, self.version, self.variant)

    @property
    def model_version(self) -> str:
        """The `model_version` every answer of the service carries: "<version>+<variant>"."""
        return f"{self.version}+{self.variant}"

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict with the description."""
        return {**asdict(self), "weights": str(self.weights), "description": self.description}


def what_runs(model_name: str | None = None) -> ModelChoice:
    """The production version of `model_name` (default `pose-estimator`) and its serving variant, else the
    pretrained checkpoint. ZenML's log lines go to stderr.

    A store that cannot be reached is not an error: the answer is the pretrained checkpoint, and its reason says so.

    Raises:
        VtposeError: the production version has no weights, or (pretrained) data/ lacks the checkpoint.
    """
    from vtpose.training.registry import MODEL_NAME, zenml_logs_on_stderr

    name = model_name or MODEL_NAME
    with zenml_logs_on_stderr():
        return _what_runs(name)


def _what_runs(model_name: str) -> ModelChoice:
    import requests
    from zenml.client import Client
    from zenml.enums import ModelStages

    try:
        version = Client().get_model_version(model_name, ModelStages.PRODUCTION)
    except KeyError:
        return _pretrained(model_name, f"no {model_name} version is in production")
    except (requests.exceptions.ConnectionError, RuntimeError) as error:
        print(f"vtpose: note: ZenML store unreachable ({type(error).__name__})", file=sys.stderr)
        return _pretrained(model_name, f"ZenML store unreachable ({type(error).__name__})")
    return _version_choice(model_name, version, "production", "in the production stage")


def pinned_version(version_name: str, model_name: str | None = None) -> ModelChoice:
    """A named version of `model_name` (default `pose-estimator`) with its serving variant, as `what_runs` answers
    for production: source "production" when it is in production now, else "pinned".

    Raises:
        VtposeError: no such version, or it has no weights.
    """
    from vtpose.training.registry import MODEL_NAME, get_model_version, zenml_logs_on_stderr

    name = model_name or MODEL_NAME
    with zenml_logs_on_stderr():
        version = get_model_version(version_name)
        stage = str(getattr(version.stage, "value", version.stage) or "")
        if stage == "production":
            return _version_choice(name, version, "production", "in the production stage")
        return _version_choice(name, version, "pinned", f"named by the deployment config (stage {stage or 'none'})")


def _version_choice(model_name: str, version: Any, source: Source, reason: str) -> ModelChoice:
    from vtpose.training.registry import production_weights_file

    bento = _record(version.run_metadata, BENTO_KEY)
    chosen = _record(version.run_metadata, SERVING_VARIANT_KEY).get("chosen")
    return ModelChoice(
        model_name=model_name,
        version=str(version.name),
        variant=str(chosen or bento.get("backend") or UNRECORDED_VARIANT),
        source=source,
        weights=production_weights_file(version),
        bento_tag=_production_bento(bento) if source == "production" else None,
        reason=reason,
    )


def serving_bento(choice: ModelChoice) -> str:
    """The tag of a Bento in the local store serving `choice`: the one the package step recorded, else one packaged
    now (the pretrained checkpoint, or a production version whose Bento was built elsewhere) with the same
    variant, INT8 calibrated on the sample's train2017 images. Packaging prints progress: callers whose stdout
    carries results redirect it.

    Raises:
        VtposeError: packaging failed (see `vtpose.serving.packaging.package_weights`).
    """
    import bentoml
    from bentoml.exceptions import NotFound

    from vtpose.paths import COCO_MINI_DIR
    from vtpose.serving.packaging import SERVICE_NAME, package_weights, tag_version

    for tag in (choice.bento_tag, f"{SERVICE_NAME}:{tag_version(choice.weights, choice.version)}"):
        if tag is None:
            continue
        try:
            bento = bentoml.bentos.get(tag)
        except NotFound:
            continue
        # A Bento of the same weights packaged by hand says "packaged": build one that says what this is.
        if bento.info.labels.get("source") == choice.source:
            return str(bento.tag)
    int8 = choice.variant == "openvino-int8"
    info = package_weights(
        choice.weights,
        choice.version,
        model_name=choice.model_name,
        backend=choice.variant,
        openvino=choice.variant.startswith("openvino"),
        int8_images=COCO_MINI_DIR / "images" / "train2017" if int8 else None,
        source=choice.source,
    )
    return info.tag


def _record(metadata: Any, key: str) -> dict[str, Any]:
    """A dict-valued metadata entry of a model version ({} when absent or not a dict)."""
    value = metadata.get(key)
    return dict(value) if isinstance(value, dict) else {}


def _production_bento(record: dict[str, Any]) -> str | None:
    """The Bento tag the package step recorded, if it was built as a production one (a version promoted after its
    run has only a candidate Bento, which says "candidate" in `GET /model`: `vtpose model bento` builds anew)."""
    from vtpose.serving.packaging import SERVICE_NAME

    tag = str(record.get("tag") or "")
    return tag if record.get("built") and tag.startswith(f"{SERVICE_NAME}:") else None


def _pretrained(model_name: str, reason: str) -> ModelChoice:
    from vtpose.errors import VtposeError

    if not PRETRAINED_WEIGHTS.is_file():
        raise VtposeError(f"{PRETRAINED_WEIGHTS}: not found; run `dvc pull` to fetch data/, or pass --weights.")
    return ModelChoice(
        model_name=model_name,
        version=PRETRAINED_VERSION,
        variant=PRETRAINED_VARIANT,
        source="pretrained",
        weights=PRETRAINED_WEIGHTS,
        bento_tag=None,
        reason=reason,
    )
