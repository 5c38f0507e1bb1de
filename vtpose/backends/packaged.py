"""Open a packaged model (a BentoML model folder written by `vtpose.serving.packaging`) on the backend of one
variant, after checking every file it needs is the one packaged.

The packaging metadata says where each variant's file is (`files`: variant -> path inside the folder, default
`MODEL_FILES`) and the sha256 of every packaged file (`sha256`: path inside the folder -> hex digest). An OpenVINO
IR is two files, the `.xml` graph and the `.bin` weights beside it; both are checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vtpose.artifacts import sha256_file
from vtpose.backends import DEFAULT_IMGSZ, VARIANTS, PoseBackend
from vtpose.errors import VtposeError

# Each variant's file inside a packaged model folder (OpenVINO IRs as folders of .xml + .bin).
MODEL_FILES = {
    "pytorch": "model.pt",
    "onnx": "model.onnx",
    "openvino": "openvino/model.xml",
    "openvino-int8": "openvino-int8/model.xml",
}


def variant_files(metadata: Mapping[str, Any], variant: str) -> list[str]:
    """The files (paths inside the model folder) serving `variant` reads: the model file, and an IR's `.bin`.

    Raises:
        VtposeError: an unknown variant, or the metadata names no file for it.
    """
    if variant not in VARIANTS:
        raise VtposeError(f"unknown model variant {variant!r}; use one of {', '.join(VARIANTS)}.")
    files = {**MODEL_FILES, **dict(metadata.get("files") or {})}
    main = str(files[variant])
    return [main, str(Path(main).with_suffix(".bin").as_posix())] if main.endswith(".xml") else [main]


def packaged_variants(metadata: Mapping[str, Any]) -> list[str]:
    """The variants whose every file has a packaged checksum, in `VARIANTS` order."""
    checksums = metadata.get("sha256") or {}
    return [v for v in VARIANTS if all(name in checksums for name in variant_files(metadata, v))]


def verify_model_file(path: Path, expected_sha256: str) -> None:
    """Refuse a model file whose bytes are not the packaged ones.

    Raises:
        VtposeError: the file is missing or its sha256 differs from the packaging metadata.
    """
    if not path.is_file():
        raise VtposeError(
            f"{path}: packaged model file missing; rebuild the Bento with vtpose.serving.packaging.build_bento."
        )
    actual = sha256_file(path)
    if actual != expected_sha256:
        raise VtposeError(
            f"{path}: sha256 {actual} does not match the packaged {expected_sha256}; the model store was modified "
            "after packaging. Refusing to serve it: rebuild the Bento (vtpose.serving.packaging.build_bento)."
        )


def load_packaged_backend(
    model_dir: str | Path,
    metadata: Mapping[str, Any],
    variant: str,
    device: str | None = None,
    threads: int | None = None,
    wide_threads: int | None = None,
) -> PoseBackend:
    """Open the packaged model file for `variant` after checking its bytes against the packaging metadata.

    Args:
        model_dir: the BentoML model's folder.
        metadata: the BentoML model's metadata, as written by `vtpose.serving.packaging.build_bento`.
        variant: "pytorch", "onnx", "openvino" or "openvino-int8".
        device: PyTorch device (None: CUDA when present, else CPU); ONNX Runtime takes CUDA when it has it;
            OpenVINO runs on the CPU.
        threads: CPU threads per call when calls overlap (ONNX, OpenVINO); None for every core.
        wide_threads: threads for a call that runs alone (ONNX, OpenVINO).

    Raises:
        VtposeError: the variant was not packaged, a file is missing or its sha256 differs, or it is not a valid
            model for its backend.
    """
    from vtpose.backends import open_backend

    model_dir = Path(model_dir)
    checksums = metadata.get("sha256") or {}
    names = variant_files(metadata, variant)
    missing = [name for name in names if name not in checksums]
    if missing:
        packaged = ", ".join(packaged_variants(metadata)) or "none"
        raise VtposeError(
            f"{model_dir}: the model's metadata has no sha256 for {', '.join(missing)}: variant {variant!r} was not "
            f"packaged (packaged: {packaged}). Choose a packaged one or rebuild the Bento with it."
        )
    for name in names:
        verify_model_file(model_dir / name, checksums[name])
    imgsz = int(metadata.get("imgsz", DEFAULT_IMGSZ))
    backend = open_backend(model_dir / names[0], imgsz=imgsz, device=device, threads=threads, wide_threads=wide_threads)
    expected_precision = variant.partition("-")[2] or "fp32"
    if backend.precision != expected_precision:
        raise VtposeError(
            f"{model_dir / names[0]}: packaged as {variant} but the graph is {backend.precision}; rebuild the Bento."
        )
    return backend
