"""Package trained weights for serving: store the `.pt` with its ONNX export (and any OpenVINO IR variants) as a
BentoML model, build the Bento.

`build_bento` is what the training pipeline's `package` step calls; `package_weights` packages weights by hand
(the `vtpose model package` command): it exports the variants asked for, then calls `build_bento`. Every export goes
through the one chain, `vtpose.backends.export.export_model_variants`. BentoML reads BENTOML_HOME when it is first
imported, so set it (and BENTOML_DO_NOT_TRACK=true) in the environment before calling into this module.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vtpose.artifacts import sha256_file
from vtpose.backends import resolve_variant
from vtpose.backends.export import DEFAULT_CALIBRATION_SIZE, export_model_variants
from vtpose.backends.packaged import MODEL_FILES
from vtpose.errors import VtposeError
from vtpose.paths import PROJECT_ROOT

logger = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "pose-estimator"
SERVICE_NAME = "pose-service"
# The Bento name of a version the gate rejected: `pose-service:latest` and the make targets never pick it
# (`bentoml serve pose-service-candidate:<tag>` stages it by hand). See docs/serving.md.
CANDIDATE_SERVICE_NAME = "pose-service-candidate"
# Import path of the service class, relative to the build context (the project root).
SERVICE_IMPORT = "service.service:PoseService"
# Each variant's place inside the BentoML model folder is vtpose.backends.packaged.MODEL_FILES (the service's loader
# reads the same table).
__all__ = [
    "CANDIDATE_SERVICE_NAME",
    "SERVICE_NAME",
    "BentoInfo",
    "build_bento",
    "package_weights",
    "sanitize_version",
    "tag_version",
]
# `package_weights(int8_images=DIR)` calibrates on the folder's images with these suffixes, sorted by name.
CALIBRATION_SUFFIXES = (".jpg", ".png")
# The Bento arguments the service reads its model tag, default variant and source from
# (`bentoml serve --arg model_tag=...` in development).
MODEL_TAG_ARG = "model_tag"
SOURCE_ARG = "source"
# What the Bento carries besides the service: the library code it imports, nothing else (no data, no venv).
BENTO_INCLUDE = ["service/*.py", "vtpose/**/*.py", "vtpose/studio/avatar/assets/**", "vtpose/studio/live/web/**"]
_TAG_MAX = 63


@dataclass
class BentoInfo:
    """A Bento built by `build_bento`, for the pipeline's record and the dashboard.

    Attributes:
        tag: the Bento tag, "pose-service:<version>".
        path: the Bento's folder in the local Bento store.
        size_bytes: the Bento's code plus the model files it references (BentoML 1.4 keeps models in the model
            store, not inside the Bento folder), bytes.
        model_version: the model version it serves (the ZenML model version, as given).
        model_tag: the BentoML model tag inside it, "pose-estimator:<version>".
        sha256: hex sha256 of each packaged model file, by path inside the model ("model.pt", "model.onnx",
            "openvino/model.xml", "openvino/model.bin"...).
        imgsz: the inference size the model was exported for, pixels.
        backend_default: the variant the service uses unless VTPOSE_BACKEND says otherwise.
        source: what the service says it serves (`vtpose.serving.what_runs.SOURCES`): "production",
            "candidate", "pretrained" or "packaged".
    """

    tag: str
    path: Path
    size_bytes: int
    model_version: str
    model_tag: str
    sha256: dict[str, str] = field(default_factory=dict)
    imgsz: int = 640
    backend_default: str = "onnx"
    source: str = "packaged"

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (path as a string)."""
        record = asdict(self)
        record["path"] = str(self.path)
        return record


def sanitize_version(version: str) -> str:
    """A string made valid as a BentoML tag version: lowercase, [a-z0-9._-], alphanumeric at both ends.

    "Run 3" -> "run-3"; "2024-11-24T05:53" -> "2024-11-24t05-53".

    Raises:
        ValueError: nothing usable is left.
    """
    cleaned = re.sub(r"[^a-z0-9._-]+", "-", str(version).strip().lower()).strip("-._")
    cleaned = cleaned[:_TAG_MAX].rstrip("-._")
    if not cleaned:
        raise ValueError(f"model version {version!r} has no letters or digits to build a tag from")
    return cleaned


def tag_version(weights: Path, model_version: str) -> str:
    """The version part of the tags `build_bento` gives `weights` packaged as `model_version`: "<v>-<sha8>"."""
    return sanitize_version(f"{sanitize_version(model_version)[: _TAG_MAX - 9]}-{sha256_file(weights)[:8]}")


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _variant_parts(source: Path, target: str) -> list[tuple[Path, str]]:
    """(file, path inside the model) pairs for one variant: an OpenVINO IR (its `.xml`, or the folder holding
    `model.xml`) brings its `.bin`."""
    if not target.endswith(".xml"):
        return [(source, target)]
    xml = source / Path(target).name if source.is_dir() else source
    return [(xml, target), (xml.with_suffix(".bin"), str(Path(target).with_suffix(".bin").as_posix()))]


def _store_model(
    weights: Path,
    model_tag: str,
    model_version: str,
    imgsz: int,
    backend_default: str,
    variants: Mapping[str, Path] | None = None,
) -> tuple[Any, dict[str, str]]:
    """The BentoML model `model_tag` holding model.pt, model.onnx and the given variants: the stored one if present
    (with the same weights and every variant asked for), else a new one."""
    import bentoml
    from bentoml.exceptions import NotFound

    from vtpose.backends.packaged import packaged_variants

    pt_sha = sha256_file(weights)
    try:
        existing = bentoml.models.get(model_tag)
    except NotFound:
        existing = None
    if existing is not None:
        recorded = existing.info.metadata.get("sha256")
        stored = {str(k): str(v) for k, v in recorded.items()} if isinstance(recorded, dict) else {}
        if stored.get(MODEL_FILES["pytorch"]) != pt_sha:
            raise VtposeError(
                f"BentoML model {model_tag} already exists with other weights; delete it "
                f"(bentoml models delete {model_tag}) or package under a new model version."
            )
        missing = sorted(set(variants or {}) - set(packaged_variants(existing.info.metadata)))
        if missing:
            raise VtposeError(
                f"BentoML model {model_tag} already exists without {', '.join(missing)}; delete it "
                f"(bentoml models delete {model_tag}) or package under a new model version."
            )
        logger.info("reusing BentoML model %s (same weights)", model_tag)
        return existing, stored

    with tempfile.TemporaryDirectory(prefix="vtpose-export-") as tmp:
        sources = {"pytorch": weights, **{name: Path(path) for name, path in (variants or {}).items()}}
        if "onnx" not in sources:
            sources["onnx"] = export_model_variants(weights, ["onnx"], imgsz, Path(tmp))["onnx"].path
        if backend_default not in sources:
            raise VtposeError(
                f"backend_default {backend_default!r} is not among the packaged variants ({', '.join(sources)}); "
                "pass its exported file in `variants`."
            )
        parts = [part for name, source in sources.items() for part in _variant_parts(source, MODEL_FILES[name])]
        for source, _ in parts:
            if not source.is_file():
                raise VtposeError(f"{source}: exported model file not found; export the variant again.")
        checksums = {target: sha256_file(source) for source, target in parts}
        metadata = {
            "model_version": model_version,
            "imgsz": imgsz,
            "sha256": checksums,
            "backend_default": backend_default,
            "source_weights": weights.name,
            "files": {name: MODEL_FILES[name] for name in sources},
        }
        labels = {"zenml_model_version": sanitize_version(model_version), "task": "pose"}
        with bentoml.models.create(model_tag, labels=labels, metadata=metadata) as model:
            for source, target in parts:
                destination = Path(model.path_of(target))
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, destination)
    return bentoml.models.get(model_tag), checksums


def build_bento(
    weights: Path,
    model_version: str,
    model_name: str = DEFAULT_MODEL_NAME,
    imgsz: int = 640,
    backend_default: str = "onnx",
    service_name: str = SERVICE_NAME,
    labels: dict[str, str] | None = None,
    variants: Mapping[str, str | Path] | None = None,
    source: str | None = None,
) -> BentoInfo:
    """Store `weights` (and their ONNX export) as a BentoML model and build the `pose-service` Bento around it.

    Tags are `<model_name>:<v>-<sha8>` and `<service_name>:<v>-<sha8>`, where `<v>` is `model_version` sanitized
    for BentoML and `<sha8>` the first 8 hex digits of the `.pt`'s sha256: traceable to the ZenML model version,
    and a second store (a fresh ZenML database reusing version numbers) can never overwrite other weights.
    Packaging the same weights and version again reuses the stored model and rebuilds the Bento in place.

    Args:
        weights: the trained `.pt` file.
        model_version: the ZenML model version (name or number) it comes from.
        model_name: the BentoML model name.
        imgsz: inference size in pixels, exported into the ONNX graph's metadata and used by the service.
        backend_default: the variant the service runs unless VTPOSE_BACKEND overrides it: "pytorch", "onnx",
            "openvino" or "openvino-int8" (the last two need their IR in `variants`).
        service_name: the Bento name: SERVICE_NAME, or CANDIDATE_SERVICE_NAME for a version the gate rejected.
        labels: extra Bento labels (e.g. the pipeline run id).
        variants: exported variants to package besides the `.pt`: name -> file ("onnx": the `.onnx`;
            "openvino", "openvino-int8": the IR's `.xml`, or the folder holding `model.xml`, with the `.bin`
            beside it). ONNX is exported here when not given.
        source: what `GET /model` says this is (`vtpose.serving.what_runs.SOURCES`); a Bento argument, so the
            same BentoML model can sit in a candidate Bento and, once promoted, in a production one. None:
            "pretrained" for model version "pretrained", else "packaged".

    Returns:
        What was built, with its tag, path, size and checksums.

    Raises:
        VtposeError: bad weights, export failure, or a stored model of the same tag with other weights.
        ValueError: bad imgsz, backend or version.
    """
    from vtpose.serving.what_runs import PRETRAINED_VERSION, SOURCES

    source = source or ("pretrained" if model_version == PRETRAINED_VERSION else "packaged")
    weights = Path(weights)
    if not weights.is_file() or weights.suffix != ".pt":
        raise VtposeError(f"{weights}: build_bento needs an existing .pt weights file.")
    if source not in SOURCES:
        raise ValueError(f"source {source!r} is not one of {SOURCES}")
    backend_default = resolve_variant(backend_default)
    for name in variants or {}:
        resolve_variant(name)
    if imgsz <= 0 or imgsz % 32:
        raise ValueError(f"imgsz={imgsz} must be a positive multiple of 32 (the model's stride)")

    import bentoml
    from bentoml.exceptions import NotFound

    version = tag_version(weights, model_version)
    model_tag = f"{model_name}:{version}"
    model, checksums = _store_model(
        weights, model_tag, model_version, imgsz, backend_default,
        {name: Path(path) for name, path in (variants or {}).items()},
    )  # fmt: skip

    bento_tag = f"{service_name}:{version}"
    # BentoML imports the service to build it and would reuse a module imported earlier in this process, whose
    # class-level model reference was resolved from older build arguments.
    for module in [m for m in sys.modules if m == "service" or m.startswith("service.")]:
        del sys.modules[module]
    with contextlib.suppress(NotFound):
        # Same weights and version: the Bento is derived data, rebuilt with the current service code.
        bentoml.bentos.delete(bento_tag)
        logger.info("replaced existing Bento %s", bento_tag)
    bento = bentoml.bentos.build(
        SERVICE_IMPORT,
        name=service_name,
        version=version,
        build_ctx=str(PROJECT_ROOT),
        include=BENTO_INCLUDE,
        labels={
            "model_version": sanitize_version(model_version),
            "model_tag": version,
            "source": source,
            **(labels or {}),
        },
        description=f"Pose estimation service for {model_name} version {model_version} (BentoML model {model.tag}).",
        args={MODEL_TAG_ARG: str(model.tag), "backend": backend_default, SOURCE_ARG: source},
    )
    bento_path = Path(bento.path)
    return BentoInfo(
        tag=str(bento.tag),
        path=bento_path,
        # What a `bentoml export` or container carries: the Bento's code and the model it references.
        size_bytes=_dir_size(bento_path) + _dir_size(Path(model.path)),
        model_version=model_version,
        model_tag=str(model.tag),
        sha256=checksums,
        imgsz=imgsz,
        backend_default=backend_default,
        source=source,
    )


def calibration_images(folder: Path) -> list[Path]:
    """The images INT8 is calibrated on: `folder`'s `.jpg` and `.png` files, sorted by name.

    Raises:
        VtposeError: the folder is missing or holds no such image.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise VtposeError(f"{folder}: INT8 calibration folder not found; pass a folder of training images.")
    images = sorted(p for p in folder.glob("*") if p.suffix.lower() in CALIBRATION_SUFFIXES)
    if not images:
        raise VtposeError(
            f"{folder}: no {' or '.join(CALIBRATION_SUFFIXES)} images to calibrate INT8 on; pass a folder of "
            "training images (e.g. data/coco-person-mini/images/train2017)."
        )
    return images


def package_weights(
    weights: Path,
    model_version: str,
    *,
    model_name: str = DEFAULT_MODEL_NAME,
    imgsz: int = 640,
    backend: str = "onnx",
    openvino: bool = False,
    int8_images: Path | None = None,
    int8_size: int = DEFAULT_CALIBRATION_SIZE,
    source: str | None = None,
) -> BentoInfo:
    """Package `.pt` weights by hand: export the variants asked for, then `build_bento` serving `backend`.

    Always packaged: the `.pt` and its ONNX export. `openvino` adds the FP32 IR; `int8_images` adds it and the INT8
    IR calibrated on that folder's images. The export and build tools may print progress to stdout: a caller whose
    stdout carries results (JSON) redirects it (`contextlib.redirect_stdout(sys.stderr)`).

    Args:
        weights: the trained `.pt`.
        model_version: the version it is packaged as (a ZenML model version, or any name such as "dev").
        model_name: the BentoML model name.
        imgsz: the inference size exported for and served at, pixels (a multiple of 32).
        backend: the variant the service runs by default, one of `vtpose.backends.VARIANTS`.
        openvino: also package the OpenVINO FP32 IR.
        int8_images: also package an OpenVINO INT8 IR calibrated on this folder's `.jpg`/`.png` images (sorted by
            name); the FP32 IR comes with it.
        int8_size: most calibration images (the first by name).
        source: what `GET /model` says this is (see `build_bento`).

    Returns:
        What `build_bento` built.

    Raises:
        VtposeError: bad weights, no calibration images, an export failure, or a stored model of the same tag with
            other weights.
        ValueError: bad imgsz, version or backend, or a backend whose variant is not packaged (e.g.
            "openvino-int8" without `int8_images`).
    """
    backend = resolve_variant(backend)
    variants = ["onnx", "openvino"] if openvino or int8_images is not None else []
    if int8_images is not None:
        variants.append("openvino-int8")
    if backend not in ("pytorch", "onnx", *variants):
        raise ValueError(
            f"backend {backend!r} is not packaged: add openvino=True for 'openvino', int8_images=DIR for "
            "'openvino-int8'"
        )
    images = calibration_images(int8_images) if int8_images is not None else []
    with tempfile.TemporaryDirectory(prefix="vtpose-variants-") as tmp:
        exported = export_model_variants(
            weights, variants, imgsz, Path(tmp), calibration_images=images, calibration_size=int8_size
        )
        return build_bento(
            Path(weights), model_version, model_name=model_name, imgsz=imgsz, backend_default=backend,
            variants={name: model.path for name, model in exported.items()}, source=source,
        )  # fmt: skip


if __name__ == "__main__":
    # The old script entry point: fail loudly rather than exit 0 having packaged nothing.
    sys.exit("python -m vtpose.serving.packaging is gone: run `vtpose model package WEIGHTS --model-version V`.")
