"""vtpose.serving's limits, batcher and packaging without a server: request limits, batching, version tags.
(The image decoder is in test_decoding.py; the model backends, the packaged-file checks and the letterbox in
test_backends.py.)"""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from vtpose.errors import RequestRejected
from vtpose.keypoints import NUM_KEYPOINTS
from vtpose.pose import PersonPose
from vtpose.serving.batcher import PoseBatcher
from vtpose.serving.limits import ServingLimits, check_batch_size
from vtpose.serving.packaging import sanitize_version

LIMITS = ServingLimits(max_image_bytes=2_000_000, max_image_pixels=10_000_000, max_batch_images=4)


def test_limits_from_env() -> None:
    limits = ServingLimits.from_env({"VTPOSE_MAX_IMAGE_BYTES": "123", "VTPOSE_MAX_BATCH_IMAGES": ""})
    assert limits.max_image_bytes == 123 and limits.max_batch_images == ServingLimits().max_batch_images
    with pytest.raises(ValueError, match="VTPOSE_MAX_IMAGE_PIXELS"):
        ServingLimits.from_env({"VTPOSE_MAX_IMAGE_PIXELS": "lots"})
    with pytest.raises(RequestRejected) as many:
        check_batch_size(5, LIMITS)
    assert many.value.to_json() == {
        "error": "images: 5 images is over the batch limit of 4 (VTPOSE_MAX_BATCH_IMAGES); split the request.",
        "field": "images",
        "status": 413,
    }
    with pytest.raises(RequestRejected) as none:
        check_batch_size(0, LIMITS)
    assert none.value.status == 400 and none.value.field == "images"
    # Uploads are decoded under these limits, every known format, EXIF orientation applied.
    policy = LIMITS.image_policy()
    assert (policy.max_bytes, policy.max_pixels, policy.max_side) == (2_000_000, 10_000_000, None)
    assert policy.formats == ("JPEG", "PNG", "WebP", "BMP", "GIF", "TIFF") and policy.apply_exif


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
