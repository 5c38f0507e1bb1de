"""vtpose.serving and vtpose.packaging without a server: decoding limits, the sha256 check, ONNX vs PyTorch."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vtpose.errors import VtposeError
from vtpose.keypoints import NUM_KEYPOINTS
from vtpose.packaging import export_onnx, sanitize_version
from vtpose.paths import COCO_MINI_DIR, MEDIA_DIR, PRETRAINED_WEIGHTS
from vtpose.predict import PersonPose, PosePredictor, load_image
from vtpose.serving import (
    ImageRejected,
    ServingLimits,
    check_batch_size,
    decode_image_bytes,
    load_packaged_predictor,
    rescale_poses,
    shrink_for_model,
)

STREAMER = MEDIA_DIR / "game-streamer-tips.jpg"
LIMITS = ServingLimits(max_image_bytes=2_000_000, max_image_pixels=10_000_000, max_batch_images=4)


def test_decode_matches_opencv() -> None:
    decoded = decode_image_bytes(STREAMER.read_bytes(), LIMITS)
    reference = load_image(STREAMER)
    assert decoded.shape == reference.shape and decoded.dtype == np.uint8
    # Both use libjpeg; allow a rounding step in chroma upsampling.
    assert np.abs(decoded.astype(np.int16) - reference).mean() < 1.0


@pytest.mark.parametrize(
    ("data", "content_type", "status"),
    [
        (b"", None, 400),
        (b"hello", None, 415),
        (b"\xff\xd8\xff\xe0garbage", "image/jpeg", 400),
        (b"\x89PNG\r\n\x1a\n", "image/png", 415),
        (b"hello", "text/plain", 415),
        (b"x" * 2_000_001, None, 413),
    ],
)
def test_decode_rejections(data: bytes, content_type: str | None, status: int) -> None:
    with pytest.raises(ImageRejected) as caught:
        decode_image_bytes(data, LIMITS, content_type=content_type)
    assert caught.value.status == status
    assert caught.value.to_json()["error"].startswith("image:")


def test_truncated_and_oversized_images() -> None:
    with pytest.raises(ImageRejected, match="truncated") as caught:
        decode_image_bytes(STREAMER.read_bytes()[:20000], LIMITS)
    assert caught.value.status == 400
    buffer = io.BytesIO()
    Image.new("1", (4000, 3000)).save(buffer, format="PNG")  # 12 Mpx in a few KB
    with pytest.raises(ImageRejected, match="4000x3000") as caught:
        decode_image_bytes(buffer.getvalue(), LIMITS)
    assert caught.value.status == 413


def test_limits_from_env() -> None:
    limits = ServingLimits.from_env({"VTPOSE_MAX_IMAGE_BYTES": "123", "VTPOSE_MAX_BATCH_IMAGES": ""})
    assert limits.max_image_bytes == 123 and limits.max_batch_images == ServingLimits().max_batch_images
    with pytest.raises(ValueError, match="VTPOSE_MAX_IMAGE_PIXELS"):
        ServingLimits.from_env({"VTPOSE_MAX_IMAGE_PIXELS": "lots"})
    with pytest.raises(ImageRejected):
        check_batch_size(5, LIMITS)
    with pytest.raises(ImageRejected):
        check_batch_size(0, LIMITS)


def test_shrink_and_rescale_round_trip() -> None:
    image = np.zeros((720, 1280, 3), dtype=np.uint8)
    small, ratio = shrink_for_model(image, 640)
    assert small.shape == (360, 640, 3) and ratio == 0.5
    assert shrink_for_model(small, 640)[1] == 1.0
    person = PersonPose(bbox=(10, 20, 30, 40), score=0.9, keypoints=np.ones((NUM_KEYPOINTS, 3), dtype=np.float32))
    (big,) = rescale_poses([person], ratio)
    assert big.bbox == (20, 40, 60, 80) and big.keypoints[0].tolist() == [2.0, 2.0, 1.0]


def test_sanitize_version() -> None:
    assert sanitize_version("Run 3") == "run-3"
    assert sanitize_version("2024-11-24T05:53") == "2024-11-24t05-53"
    with pytest.raises(ValueError):
        sanitize_version("--")


@pytest.fixture(scope="module")
def onnx_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not PRETRAINED_WEIGHTS.is_file():
        pytest.skip(f"{PRETRAINED_WEIGHTS} missing; run `dvc pull`")
    return export_onnx(PRETRAINED_WEIGHTS, 640, tmp_path_factory.mktemp("onnx"))


def test_export_writes_only_to_out_dir(onnx_weights: Path) -> None:
    assert onnx_weights.suffix == ".onnx" and onnx_weights.stat().st_size > 1_000_000
    assert not PRETRAINED_WEIGHTS.with_suffix(".onnx").exists()


def test_packaged_model_sha256_is_checked(onnx_weights: Path, tmp_path: Path) -> None:
    shutil.copy2(onnx_weights, tmp_path / "model.onnx")
    from vtpose.artifacts import sha256_file

    metadata = {"imgsz": 640, "sha256": {"model.onnx": sha256_file(onnx_weights)}}
    assert load_packaged_predictor(tmp_path, metadata, "onnx").backend == "onnx"
    with (tmp_path / "model.onnx").open("ab") as f:
        f.write(b"tampered")
    with pytest.raises(VtposeError, match="does not match the packaged"):
        load_packaged_predictor(tmp_path, metadata, "onnx")
    with pytest.raises(VtposeError, match="no sha256"):
        load_packaged_predictor(tmp_path, {"sha256": {}}, "pytorch")


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    w = max(0.0, min(ax2, bx2) - max(a[0], b[0]))
    h = max(0.0, min(ay2, by2) - max(a[1], b[1]))
    inter = w * h
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def test_onnx_and_pytorch_keypoints_agree(onnx_weights: Path) -> None:
    """Same persons, confident keypoints within 1 pixel, on the streamer and the first COCO val images."""
    images = [STREAMER, *sorted((COCO_MINI_DIR / "images" / "val2017").glob("*.jpg"))[:8]]
    torch_model = PosePredictor(PRETRAINED_WEIGHTS, device="cpu")
    onnx_model = PosePredictor(onnx_weights, device="cpu")
    compared = 0
    for path in images:
        image = load_image(path)
        pt_persons = [p for p in torch_model.predict_one(image) if p.score >= 0.5]
        onnx_persons = onnx_model.predict_one(image)
        for person in pt_persons:
            match = max(onnx_persons, key=lambda o, p=person: _iou(o.bbox, p.bbox))
            assert _iou(match.bbox, person.bbox) > 0.9, path.name
            confident = (person.keypoints[:, 2] > 0.5) & (match.keypoints[:, 2] > 0.5)
            error = np.abs(match.keypoints[confident, :2] - person.keypoints[confident, :2]).max(initial=0.0)
            assert error <= 1.0, f"{path.name}: keypoints differ by {error:.2f} px"
            compared += int(confident.sum())
    assert compared > 30
