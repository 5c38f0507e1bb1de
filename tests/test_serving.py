"""vtpose.serving.http and vtpose.serving.packaging without a server: decoding limits, batching, version tags.
(The model backends, the packaged-file checks and the letterbox are in test_backends.py.)"""

from __future__ import annotations

import asyncio
import io
import threading

import numpy as np
import pytest
from PIL import Image

from vtpose.keypoints import NUM_KEYPOINTS
from vtpose.paths import MEDIA_DIR
from vtpose.pose import PersonPose, load_image
from vtpose.serving.http import (
    ImageRejected,
    PoseBatcher,
    ServingLimits,
    check_batch_size,
    decode_image_bytes,
)
from vtpose.serving.packaging import sanitize_version

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


def _person(value: float) -> PersonPose:
    return PersonPose(bbox=(value, 0, 1, 1), score=0.9, keypoints=np.zeros((NUM_KEYPOINTS, 3), dtype=np.float32))


def test_batcher_merges_concurrent_requests_and_keeps_order() -> None:
    started, release = threading.Event(), threading.Event()
    calls: list[list[float]] = []

    def run(items: list[float]) -> list[list[PersonPose]]:
        started.set()
        assert release.wait(30), "the test never released the model call"
        calls.append(list(items))
        return [[_person(item)] for item in items]

    batcher = PoseBatcher(run, key=lambda item: int(item) % 2, max_batch_size=8)

    async def main() -> list[list[list[PersonPose]]]:
        first = asyncio.ensure_future(batcher.infer([1.0]))
        # The worker is inside the model call for [1.0], held there until `release`.
        assert await asyncio.to_thread(started.wait, 30), "the batcher never called the model"
        rest = [asyncio.ensure_future(batcher.infer(items)) for items in ([2.0, 3.0], [4.0], [5.0, 6.0, 8.0])]
        # One turn of the loop runs each new task up to its `await` on the answer, its request queued by then
        # (tasks start in the order they were made, before this coroutine resumes).
        await asyncio.sleep(0)
        assert not any(r.done() for r in rest) and calls == []
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
