"""Model exports for the backends: `.pt` -> ONNX (Ultralytics' exporter), ONNX -> OpenVINO IR (FP32), and FP32 IR ->
INT8 IR (NNCF post-training quantization calibrated on images).

`export_model_variants` is the one chain: the variants asked for, into one folder laid out as `MODEL_FILES`. The
pipeline's export step, packaging by hand (`vtpose.serving.packaging.package_weights`), the Bento's ONNX fallback
and the CLI's export cache (`cached_export`) all go through it.

Only the ONNX export needs PyTorch; the OpenVINO conversion and the quantization start from the ONNX graph. Every
function writes to a temporary name and renames, so an interrupted export leaves nothing half-written.
"""

from __future__ import annotations

import contextlib
import importlib.util
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vtpose.artifacts import ExportedModel
from vtpose.backends.base import check_imgsz, letterbox
from vtpose.backends.packaged import MODEL_FILES
from vtpose.errors import VtposeError

_ONNX_EXPORT_MODULES = ("onnx", "onnxslim", "onnxruntime")
# NNCF presets: "performance" quantizes weights and activations symmetrically; "mixed" (what Ultralytics uses)
# takes asymmetric activations, closer to the float model when activations are not centred on zero (SiLU).
INT8_PRESETS = ("mixed", "performance")
# The head's box decoding (DFL softmax, anchor offsets, stride multiply) and its sigmoids produce the output
# coordinates and scores directly; Ultralytics keeps the same part of the head in float for INT8 detection.
DEFAULT_INT8_IGNORED_PATTERNS: tuple[str, ...] = (r".*/dfl/.*", r".*Sigmoid.*")
DEFAULT_CALIBRATION_SIZE = 100
# `cached_export`'s INT8 IR (the CLI's `--backend openvino-int8`): calibrated on this many sample train images.
CACHED_INT8_CALIBRATION_SIZE = 30
# Where the IR records the inference size it was exported for (its rt_info, beside Ultralytics' own keys).
IR_IMGSZ_KEY = "vtpose_imgsz"


@contextlib.contextmanager
def _no_autoinstall() -> Iterator[None]:
    """Keep Ultralytics' exporter from pip-installing anything, whatever YOLO_AUTOINSTALL says."""
    from ultralytics.utils import checks

    previous = checks.AUTOINSTALL
    checks.AUTOINSTALL = False
    try:
        yield
    finally:
        checks.AUTOINSTALL = previous


def _check_modules(modules: Sequence[str], what: str) -> None:
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise VtposeError(
            f"{what} needs {', '.join(missing)}; install them with the project's constraints "
            f"(pip install -c constraints.txt {' '.join(missing)}). Nothing is installed at run time."
        )


def export_onnx(weights: str | Path, imgsz: int, out_dir: str | Path) -> Path:
    """Export `.pt` YOLO-pose weights to ONNX with Ultralytics' exporter, offline, on CPU.

    The graph has dynamic batch (and spatial) axes, so requests can share a call; it is simplified with onnxslim.
    The exporter writes beside its input, so it works on a copy inside `out_dir`.

    Args:
        weights: the `.pt` file.
        imgsz: the square inference size in pixels (multiple of 32), recorded in the graph's metadata.
        out_dir: where `<stem>.onnx` is written (created if needed).

    Returns:
        The `.onnx` file.

    Raises:
        VtposeError: weights missing, not `.pt`, export tools missing, or the exporter produced nothing.
        ValueError: imgsz is not a positive multiple of 32.
    """
    weights = Path(weights)
    if not weights.is_file():
        raise VtposeError(f"{weights}: weights file not found; pass the trained .pt file.")
    if weights.suffix != ".pt":
        raise VtposeError(f"{weights}: ONNX export needs PyTorch .pt weights, got {weights.suffix!r}.")
    check_imgsz(imgsz)
    _check_modules(_ONNX_EXPORT_MODULES, "ONNX export")
    from ultralytics import YOLO

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".export-") as tmp:
        source = Path(tmp) / weights.name
        shutil.copy2(weights, source)
        # The exporter prints its progress to stdout; keep stdout for results (`vtpose infer --json`).
        with _no_autoinstall(), contextlib.redirect_stdout(sys.stderr):
            exported = YOLO(str(source), task="pose").export(
                format="onnx", imgsz=imgsz, dynamic=True, simplify=True, device="cpu", verbose=False
            )
        exported_path = Path(str(exported))
        if not exported_path.is_file():
            raise VtposeError(f"Ultralytics reported {exported_path} but wrote no ONNX file; see its log above.")
        target = out_dir / f"{weights.stem}.onnx"
        shutil.move(str(exported_path), target)
    return target


@dataclass(frozen=True)
class OpenVinoIR:
    """An OpenVINO IR on disk: the graph (`.xml`) and its weights (`.bin`, same stem).

    Attributes:
        xml: the graph file; `openvino.Core().read_model(xml)` finds the `.bin` beside it.
        precision: "fp32" or "int8".
        imgsz: the inference size (input long side) it was exported for, pixels.
        calibration: for INT8, how it was calibrated (images, preset, ignored scope); empty for FP32.
    """

    xml: Path
    precision: str
    imgsz: int
    calibration: dict[str, Any] = field(default_factory=dict)

    @property
    def bin(self) -> Path:
        """The weights file beside the graph."""
        return self.xml.with_suffix(".bin")

    @property
    def files(self) -> tuple[Path, Path]:
        """(xml, bin): both must travel together."""
        return (self.xml, self.bin)

    @property
    def size_bytes(self) -> int:
        """Bytes of both files."""
        return sum(path.stat().st_size for path in self.files)


def _save_ir(model: Any, target_xml: Path) -> None:
    """`openvino.save_model` to a temporary stem in the target folder, then rename both files into place."""
    import openvino as ov

    target_xml.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target_xml.parent, prefix=".ir-") as tmp:
        tmp_xml = Path(tmp) / target_xml.name
        ov.save_model(model, str(tmp_xml), compress_to_fp16=False)
        # .bin first: a reader that finds the new .xml also finds its weights.
        tmp_xml.with_suffix(".bin").replace(target_xml.with_suffix(".bin"))
        tmp_xml.replace(target_xml)


def _with_imgsz(model: Any, imgsz: int) -> Any:
    """The model with its inference size recorded (dynamic batch and sides stay: the letterbox rule's rectangles
    vary with the image's aspect ratio)."""
    model.set_rt_info(str(imgsz), ["model_info", IR_IMGSZ_KEY])
    return model


def ir_imgsz(model: Any) -> int | None:
    """The inference size an `openvino.Model` records (`export_openvino` writes it), or None."""
    key = ["model_info", IR_IMGSZ_KEY]
    return int(model.get_rt_info(key).astype(str)) if model.has_rt_info(key) else None


def export_openvino(onnx_path: str | Path, out_xml: str | Path, imgsz: int) -> OpenVinoIR:
    """Convert an exported YOLO-pose ONNX graph to an FP32 OpenVINO IR (no PyTorch needed).

    Args:
        onnx_path: the `.onnx` file (`export_onnx`).
        out_xml: the `.xml` to write; the `.bin` goes beside it with the same stem.
        imgsz: inference size (input long side), pixels, recorded in the IR; batch and sides stay dynamic.

    Returns:
        The written IR.

    Raises:
        VtposeError: the ONNX file is missing or OpenVINO is not installed or cannot read it.
    """
    onnx_path, out_xml = Path(onnx_path), Path(out_xml)
    check_imgsz(imgsz)
    if not onnx_path.is_file():
        raise VtposeError(f"{onnx_path}: ONNX file not found; export one first (vtpose.backends.export_onnx).")
    if out_xml.suffix != ".xml":
        raise VtposeError(f"{out_xml}: an OpenVINO IR is written as a .xml (graph) beside a .bin; name it *.xml.")
    _check_modules(("openvino",), "OpenVINO export")
    import openvino as ov

    try:
        model = ov.convert_model(str(onnx_path))
    except Exception as error:  # OpenVINO's conversion errors share no base class; say which file
        raise VtposeError(f"{onnx_path}: OpenVINO cannot convert this ONNX graph ({error}).") from error
    _save_ir(_with_imgsz(model, imgsz), out_xml)
    return OpenVinoIR(out_xml, "fp32", imgsz)


def calibration_tensors(images: Sequence[str | Path | np.ndarray], imgsz: int) -> list[np.ndarray]:
    """Calibration inputs for INT8: each image letterboxed by the project's rule, (1, 3, h, w) float32.

    Args:
        images: image files or BGR arrays (H, W, 3) uint8, e.g. the training split the model learned from.
        imgsz: the model's input side, pixels.

    Raises:
        VtposeError: no images, or one cannot be read.
    """
    from vtpose.pose import load_image

    if not images:
        raise VtposeError("INT8 calibration needs images; pass some of the training split's images.")
    tensors = []
    for image in images:
        bgr = image if isinstance(image, np.ndarray) else load_image(image)
        tensors.append(letterbox(bgr, imgsz).tensor[None])
    return tensors


def quantize_openvino_int8(
    fp32: OpenVinoIR | str | Path,
    images: Sequence[str | Path | np.ndarray],
    out_xml: str | Path,
    imgsz: int | None = None,
    calibration_size: int = DEFAULT_CALIBRATION_SIZE,
    preset: str = "mixed",
    ignored_patterns: Sequence[str] = DEFAULT_INT8_IGNORED_PATTERNS,
    ignored_types: Sequence[str] = (),
    fast_bias_correction: bool = True,
) -> OpenVinoIR:
    """INT8 IR from an FP32 IR by NNCF post-training quantization, calibrated on `images`.

    Args:
        fp32: the FP32 IR (`export_openvino`) or its `.xml` path.
        images: calibration images (paths or BGR arrays); the first `calibration_size` are used, in order, so the
            same inputs give the same IR.
        out_xml: the INT8 `.xml` to write (`.bin` beside it).
        imgsz: input side; None for the FP32 IR's.
        calibration_size: most images used for the activation statistics.
        preset: "mixed" or "performance" (see INT8_PRESETS).
        ignored_patterns: regular expressions of operation names kept in float (default: the head's DFL box
            decoding and the sigmoids).
        ignored_types: OpenVINO operation types kept in float (e.g. "Sigmoid").
        fast_bias_correction: NNCF's fast bias correction (False: the slower, sometimes more accurate one).

    Returns:
        The written INT8 IR, with how it was calibrated in `calibration`.

    Raises:
        VtposeError: the FP32 IR is missing, NNCF is not installed, no images, or a bad preset.
        ValueError: calibration_size < 1.
    """
    if preset not in INT8_PRESETS:
        raise VtposeError(f"INT8 preset {preset!r} is not one of {INT8_PRESETS}.")
    if calibration_size < 1:
        raise ValueError(f"calibration_size={calibration_size} must be at least 1")
    fp32_xml = fp32.xml if isinstance(fp32, OpenVinoIR) else Path(fp32)
    if not fp32_xml.is_file() or not fp32_xml.with_suffix(".bin").is_file():
        raise VtposeError(f"{fp32_xml}: FP32 IR (.xml and .bin) not found; export it with export_openvino first.")
    _check_modules(("openvino", "nncf"), "INT8 quantization")
    import nncf
    import openvino as ov

    model = ov.Core().read_model(str(fp32_xml))
    if imgsz is None:
        imgsz = ir_imgsz(model)
        if imgsz is None:
            raise VtposeError(f"{fp32_xml}: the IR does not record its imgsz; pass imgsz= (the size it serves).")
    chosen = list(images)[:calibration_size]
    tensors = calibration_tensors(chosen, imgsz)
    names = [op.get_friendly_name() for op in model.get_ordered_ops()]
    patterns = [p for p in ignored_patterns if any(_matches(p, n) for n in names)]
    types = [t for t in ignored_types if any(op.get_type_name() == t for op in model.get_ordered_ops())]
    scope = nncf.IgnoredScope(patterns=patterns, types=types, validate=False) if patterns or types else None
    quantized = nncf.quantize(
        model,
        nncf.Dataset(tensors),
        preset=nncf.QuantizationPreset.MIXED if preset == "mixed" else nncf.QuantizationPreset.PERFORMANCE,
        subset_size=len(tensors),
        fast_bias_correction=fast_bias_correction,
        ignored_scope=scope,
    )
    out_xml = Path(out_xml)
    _save_ir(_with_imgsz(quantized, imgsz), out_xml)
    calibration = {
        "images": len(tensors),
        "preset": preset,
        "ignored_patterns": list(ignored_patterns),
        "ignored_types": list(ignored_types),
        "fast_bias_correction": fast_bias_correction,
    }
    return OpenVinoIR(out_xml, "int8", imgsz, calibration)


def _matches(pattern: str, name: str) -> bool:
    return re.fullmatch(pattern, name) is not None


def model_file(model: ExportedModel) -> Path:
    """The file a backend opens for an exported variant (the `.xml` inside an IR folder)."""
    if model.path.is_dir():
        return model.path / Path(MODEL_FILES[model.variant]).name
    return model.path


def export_model_variants(
    weights: str | Path,
    variants: Sequence[str],
    imgsz: int,
    out_dir: str | Path,
    *,
    calibration_images: Sequence[str | Path | np.ndarray] = (),
    calibration_size: int = DEFAULT_CALIBRATION_SIZE,
    preset: str = "mixed",
    ignored_names: Sequence[str] = (),
    ignored_patterns: Sequence[str] | None = None,
    ignored_types: Sequence[str] = (),
) -> dict[str, ExportedModel]:
    """The export chain, .pt -> ONNX -> OpenVINO FP32 IR -> INT8 IR: every variant asked for, into one folder.

    Each variant is written at `out_dir / MODEL_FILES[name]`, the layout of a packaged model. A step a later
    variant needs (ONNX for OpenVINO, FP32 for INT8) runs even when not asked for; its file stays in `out_dir` and
    is not returned. Weights that are already ONNX start the chain there (no "pytorch" variant then).

    Args:
        weights: the trained `.pt`, or an `.onnx` exported from it.
        variants: names from `VARIANTS`; "pytorch" (and "onnx" from an `.onnx`) is the weights file itself,
            returned without copying.
        imgsz: the inference size exported for, pixels (a multiple of 32).
        out_dir: the folder the exports go to (created if needed).
        calibration_images: images for INT8 (the training split's), paths or BGR arrays; the first
            `calibration_size` are used, in order.
        calibration_size: most calibration images.
        preset: NNCF preset, "mixed" or "performance".
        ignored_names: operation names NNCF keeps in float (matched exactly).
        ignored_patterns: regular expressions of operation names kept in float; None for
            DEFAULT_INT8_IGNORED_PATTERNS (the head's box decoding and the sigmoids).
        ignored_types: operation types kept in float.

    Returns:
        Variant name -> the exported model (an IR as its folder), in `VARIANTS` order; `source_sha256` is the
        weights'; INT8's `settings` say how it was calibrated.

    Raises:
        VtposeError: the weights are missing or of another type, an export fails, or INT8 is asked for without
            calibration images.
        ValueError: an unknown variant name, or a bad imgsz.
    """
    from vtpose.artifacts import sha256_file
    from vtpose.backends import VARIANTS, backend_for

    weights, out_dir = Path(weights), Path(out_dir)
    unknown = [name for name in variants if name not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown model variant(s) {unknown}; use names from {', '.join(VARIANTS)}")
    check_imgsz(imgsz)
    source = backend_for(weights)
    if source not in ("pytorch", "onnx"):
        raise VtposeError(f"{weights}: the export chain starts from .pt weights (or their .onnx), not {source}.")
    wanted = set(variants)
    if source == "onnx" and "pytorch" in wanted:
        raise VtposeError(f"{weights}: an .onnx cannot be turned back into PyTorch weights; pass the .pt.")
    if "openvino-int8" in wanted and not calibration_images:
        raise VtposeError("the openvino-int8 variant needs calibration images (the training split's); none given.")
    if not weights.is_file():
        raise VtposeError(f"{weights}: weights file not found; the export chain needs the trained .pt.")
    source_sha = sha256_file(weights)
    out: dict[str, ExportedModel] = {}
    if "pytorch" in wanted:
        out["pytorch"] = ExportedModel(weights, "pytorch", imgsz, source_sha)
    onnx_path = weights if source == "onnx" else None
    if onnx_path is None and wanted & {"onnx", "openvino", "openvino-int8"}:
        target = out_dir / MODEL_FILES["onnx"]
        onnx_path = export_onnx(weights, imgsz, target.parent).replace(target)
    if "onnx" in wanted:
        assert onnx_path is not None
        out["onnx"] = ExportedModel(onnx_path, "onnx", imgsz, source_sha)
    fp32 = None
    if wanted & {"openvino", "openvino-int8"}:
        assert onnx_path is not None
        fp32 = export_openvino(onnx_path, out_dir / MODEL_FILES["openvino"], imgsz)
        if "openvino" in wanted:
            out["openvino"] = ExportedModel(fp32.xml.parent, "openvino", imgsz, source_sha)
    if "openvino-int8" in wanted:
        assert fp32 is not None
        patterns = list(DEFAULT_INT8_IGNORED_PATTERNS if ignored_patterns is None else ignored_patterns)
        int8 = quantize_openvino_int8(
            fp32,
            calibration_images,
            out_dir / MODEL_FILES["openvino-int8"],
            imgsz=imgsz,
            calibration_size=calibration_size,
            preset=preset,
            ignored_patterns=[*patterns, *(re.escape(name) for name in ignored_names)],
            ignored_types=ignored_types,
        )
        settings = {**int8.calibration, "ignored_names": list(ignored_names)}
        out["openvino-int8"] = ExportedModel(int8.xml.parent, "openvino-int8", imgsz, source_sha, settings)
    return {name: out[name] for name in VARIANTS if name in wanted}


def cached_export(weights: str | Path, backend: str, imgsz: int, cache_dir: str | Path) -> Path:
    """The weights as the file `backend` opens, exported once (`export_model_variants`) and cached by content.

    `.pt` -> `.onnx` (Ultralytics' exporter, seconds) for "onnx", -> FP32 IR (from that ONNX) for "openvino", -> INT8
    IR (from that FP32 IR, calibrated on the first CACHED_INT8_CALIBRATION_SIZE train images of the sample data)
    for "openvino-int8"; "pytorch" and weights already in the backend's format are returned as they are. The cache
    key is the weights' sha256 and `imgsz`, so changed weights are exported again; the cache folder is safe to
    delete.

    Args:
        weights: `.pt`, `.onnx` or `.xml` weights.
        backend: "pytorch", "onnx", "openvino" or "openvino-int8".
        imgsz: inference size, pixels.
        cache_dir: where exports are kept (e.g. `.runtime/` in the project), one folder per weights and imgsz laid
            out as `MODEL_FILES`.

    Raises:
        VtposeError: the weights are missing, or cannot be converted to `backend` (e.g. `.onnx` to PyTorch).
    """
    from vtpose.artifacts import sha256_file
    from vtpose.backends import VARIANTS, backend_for

    weights = Path(weights)
    if backend not in VARIANTS:
        raise VtposeError(f"backend {backend!r} is not one of {VARIANTS}.")
    own = backend_for(weights)
    if own == backend:
        return weights
    if not weights.is_file():
        raise VtposeError(f"{weights}: weights file not found; pass --weights PATH to a .pt, .onnx or .xml file.")
    if VARIANTS.index(own) > VARIANTS.index(backend):
        raise VtposeError(
            f"{weights}: {own} weights cannot run on {backend}; pass the .pt (exports go .pt -> .onnx -> OpenVINO)."
        )
    folder = Path(cache_dir) / f"{weights.stem}-{sha256_file(weights)[:16]}-{imgsz}"
    target = folder / MODEL_FILES[backend]
    # An IR is complete once its .xml is there: the chain renames the .bin into place first.
    if target.is_file():
        return target
    cached_onnx = folder / MODEL_FILES["onnx"]
    # OpenVINO from a .pt whose ONNX is cached already: the chain starts from that ONNX.
    source = cached_onnx if own == "pytorch" and cached_onnx.is_file() else weights
    calibration: list[Path] = []
    if backend == "openvino-int8":
        from vtpose.paths import COCO_MINI_DIR

        calibration = sorted((COCO_MINI_DIR / "images" / "train2017").glob("*.jpg"))[:CACHED_INT8_CALIBRATION_SIZE]
        if not calibration:
            raise VtposeError(f"{COCO_MINI_DIR}: no train2017 images to calibrate INT8 on; run `make data` first.")
    # The exporters print their progress on stdout; a command's stdout is its answer (`vtpose infer --json`).
    with contextlib.redirect_stdout(sys.stderr):
        exported = export_model_variants(
            source, [backend], imgsz, folder,
            calibration_images=calibration, calibration_size=CACHED_INT8_CALIBRATION_SIZE,
        )  # fmt: skip
    return model_file(exported[backend])
