"""The INT8 IR the benchmarks run: the FP32 IR quantized by `vtpose.backends.export.quantize_openvino_int8`,
calibrated on the first N train2017 images of data/coco-person-mini (sorted by name, so a rerun gives the same IR),
cached beside the FP32 IR under .runtime/exports. Imported by bench_openvino.py and bench_animate.py (scripts
run from benchmarks/, which puts this folder on sys.path).
"""

from __future__ import annotations

from pathlib import Path

from vtpose.backends.export import cached_export, quantize_openvino_int8
from vtpose.errors import VtposeError
from vtpose.paths import COCO_MINI_DIR, EXPORT_CACHE_DIR

TRAIN_IMAGES = COCO_MINI_DIR / "images" / "train2017"


def calibration_images(count: int) -> list[Path]:
    """The first `count` train2017 images by name.

    Raises:
        VtposeError: the folder has no images (run `make data`).
    """
    images = sorted(TRAIN_IMAGES.glob("*.jpg"))[:count]
    if not images:
        raise VtposeError(f"{TRAIN_IMAGES}: no .jpg images to calibrate INT8 on; run `make data`.")
    return images


def cached_ir(weights: Path, precision: str, imgsz: int, calibration: int) -> Path:
    """The `.xml` of the FP32 IR ("fp32") or of its INT8 quantization ("int8", `calibration` images) of `weights`.

    Exports happen once (seconds for FP32, a minute or so for INT8 on 2 cores) and are reused by content hash.
    """
    fp32 = cached_export(weights, "openvino", imgsz, EXPORT_CACHE_DIR)
    if precision == "fp32":
        return fp32
    if precision != "int8":
        raise ValueError(f"precision={precision!r} must be 'fp32' or 'int8'")
    xml = fp32.parent.parent / f"openvino-int8-{calibration}" / "model.xml"
    if not xml.is_file():
        quantize_openvino_int8(fp32, calibration_images(calibration), xml, imgsz, calibration_size=calibration)
    return xml
