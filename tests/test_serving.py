"""vtpose.serving and vtpose.packaging without a server: decoding limits, the sha256 check, ONNX vs PyTorch."""

from __future__ import annotations

import asyncio
import io
import shutil
import threading
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
    OnnxPoseModel,
    PoseBatcher,
    ServingLimits,
    check_batch_size,
    decode_image_bytes,
    letterbox,
    load_packaged_predictor,
    nms,
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


def test_decode_applies_exif_orientation() -> None:
    """A JPEG tagged "rotate 90" (EXIF orientation 6) comes out turned, as cv2.imread turns it."""
    pixels = np.zeros((40, 60, 3), dtype=np.uint8)
    pixels[:, :10] = 255  # a white band on the left
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", exif=exif.tobytes(), quality=95)
    decoded = decode_image_bytes(buffer.getvalue(), LIMITS)
    assert decoded.shape == (60, 40, 3)
    assert decoded[:10].mean() > 200 and decoded[20:].mean() < 50  # the band is now on top


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


@pytest.mark.parametrize("runner", ["ultralytics", "onnxruntime"])
def test_onnx_and_pytorch_keypoints_agree(onnx_weights: Path, runner: str) -> None:
    """Same persons, confident keypoints within 1 pixel, on the streamer and the first COCO val images.

    "ultralytics" runs the .onnx through `PosePredictor`; "onnxruntime" through the service's `OnnxPoseModel`
    (our own letterbox, NMS and keypoint decoding).
    """
    images = [STREAMER, *sorted((COCO_MINI_DIR / "images" / "val2017").glob("*.jpg"))[:8]]
    torch_model = PosePredictor(PRETRAINED_WEIGHTS, device="cpu")
    onnx_model = PosePredictor(onnx_weights, device="cpu") if runner == "ultralytics" else OnnxPoseModel(onnx_weights)
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


def test_onnxruntime_model_matches_ultralytics_on_the_same_file(onnx_weights: Path) -> None:
    """Our decoding of the raw output is Ultralytics' own: same persons, boxes and keypoints to float rounding."""
    ours, theirs = OnnxPoseModel(onnx_weights), PosePredictor(onnx_weights, device="cpu")
    paths = [STREAMER, *sorted((COCO_MINI_DIR / "images" / "val2017").glob("*.jpg"))[:4]]
    images = [load_image(p) for p in paths]
    batched = ours.predict(images)  # mixed shapes: each image on its own rectangle, as alone
    for path, image, in_batch in zip(paths, images, batched, strict=True):
        want = theirs.predict_one(image)
        got = ours.predict_one(image)
        assert len(got) == len(want) == len(in_batch), path.name
        for a, b, c in zip(got, want, in_batch, strict=True):
            np.testing.assert_allclose(a.bbox, b.bbox, atol=0.05)
            np.testing.assert_allclose(a.keypoints, b.keypoints, atol=0.05)
            np.testing.assert_allclose(c.keypoints, a.keypoints, atol=0.05)
            assert a.score == pytest.approx(b.score, abs=1e-4)


def test_lone_calls_use_the_wide_session_and_concurrent_ones_the_narrow(onnx_weights: Path) -> None:
    """Both sessions give the same answer; which one runs depends only on whether another call is in flight."""
    import threading

    model = OnnxPoseModel(onnx_weights, threads=1, wide_threads=2)
    assert model._wide_session is not None
    used: list[object] = []
    for session in (model.session, model._wide_session):
        original = session.run

        def spy(*args: object, _session: object = session, _run=original, **kwargs: object):  # type: ignore[no-untyped-def]
            used.append(_session)
            return _run(*args, **kwargs)

        session.run = spy  # the real ONNX Runtime call, recorded
    image = load_image(STREAMER)
    alone = model.predict_one(image)
    assert used == [model._wide_session]

    used.clear()
    release = threading.Event()
    blocker = model._wide_session.run

    def slow_wide(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        release.wait(30)  # keeps the first call in flight while the second one starts
        return blocker(*args, **kwargs)

    model._wide_session.run = slow_wide
    first = threading.Thread(target=model.predict_one, args=(image,))
    first.start()
    while model._active == 0:
        pass
    concurrent = model.predict_one(image)
    release.set()
    first.join()
    assert used[0] is model.session  # the second call ran narrow while the first was in flight
    for a, b in zip(alone, concurrent, strict=True):
        np.testing.assert_allclose(a.keypoints, b.keypoints, atol=1e-3)
    assert model._active == 0


def test_letterbox_geometry() -> None:
    """1280x720 -> 640x360 scaled, padded to 640x384 (12 px top and bottom); 500x375 -> 640x480, no padding."""
    box = letterbox(np.zeros((720, 1280, 3), dtype=np.uint8), 640)
    assert box.tensor.shape == (3, 384, 640) and box.tensor.dtype == np.float32
    assert box.gain == (0.5, 0.5) and box.pad == (0, 12)
    assert box.tensor[:, 0].max() == pytest.approx(114 / 255) and box.tensor[:, 12:372].max() == 0
    small = letterbox(np.zeros((375, 500, 3), dtype=np.uint8), 640)
    assert small.tensor.shape == (3, 480, 640) and small.pad == (0, 0)


def test_nms_keeps_the_best_of_overlapping_boxes() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30], [0, 0, 10, 9]], dtype=np.float32)
    scores = np.array([0.5, 0.9, 0.8, 0.1], dtype=np.float32)
    assert nms(boxes, scores, 0.7).tolist() == [1, 2]
    assert nms(boxes, scores, 0.95).tolist() == [1, 2, 0, 3]


def _person(value: float) -> PersonPose:
    return PersonPose(bbox=(value, 0, 1, 1), score=0.9, keypoints=np.zeros((NUM_KEYPOINTS, 3), dtype=np.float32))


def test_batcher_merges_concurrent_requests_and_keeps_order() -> None:
    release = threading.Event()
    calls: list[list[float]] = []

    def run(items: list[float]) -> list[list[PersonPose]]:
        release.wait(5)
        calls.append(list(items))
        return [[_person(item)] for item in items]

    batcher = PoseBatcher(run, key=lambda item: int(item) % 2, max_batch_size=8)

    async def main() -> list[list[list[PersonPose]]]:
        first = asyncio.ensure_future(batcher.infer([1.0]))  # occupies the worker until released
        await asyncio.sleep(0.05)
        rest = [asyncio.ensure_future(batcher.infer(items)) for items in ([2.0, 3.0], [4.0], [5.0, 6.0, 8.0])]
        await asyncio.sleep(0.05)
        release.set()
        return [await first, *[await r for r in rest]]

    try:
        results = asyncio.run(main())
    finally:
        batcher.close()
    assert [[p[0].bbox[0] for p in r] for r in results] == [[1.0], [2.0, 3.0], [4.0], [5.0, 6.0, 8.0]]
    assert calls[0] == [1.0]
    # The three requests queued meanwhile ran together: one call per key (input shape), items of all three mixed.
    assert sorted(map(sorted, calls[1:])) == [[2.0, 4.0, 6.0, 8.0], [3.0, 5.0]]


def test_batcher_hands_model_errors_to_the_request() -> None:
    def run(items: list[float]) -> list[list[PersonPose]]:
        raise RuntimeError("model broke")

    batcher = PoseBatcher(run, key=lambda item: 0)
    try:
        with pytest.raises(RuntimeError, match="model broke"):
            asyncio.run(batcher.infer([1.0]))
    finally:
        batcher.close()
    with pytest.raises(ValueError, match="workers"):
        PoseBatcher(run, key=lambda item: 0, workers=0)
