"""The studio in headless Chromium with a video as its camera: the browser tests and `bench_live.py` both use it.

Chromium's `--use-file-for-fake-video-capture` plays a YUV4MPEG2 (.y4m) file as the camera, looping it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package (`make browser`)


def write_y4m(
    path: Path, video: Path, size: tuple[int, int], frames: int, fps: int, start: int = 0, step: int = 1
) -> int:
    """A YUV4MPEG2 clip for Chromium's fake camera: `frames` frames of `video` (from `start`, every `step`-th)
    at `size` (width, height), forward then back so the loop has no jump; returns its frame count."""
    capture = cv2.VideoCapture(str(video))
    images: list[np.ndarray] = []
    index = 0
    while len(images) < frames:
        ok, frame = capture.read()
        if not ok:
            break
        if index >= start and (index - start) % step == 0:
            images.append(cv2.resize(frame, size, interpolation=cv2.INTER_AREA))
        index += 1
    capture.release()
    sequence = images + images[-2:0:-1]
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{size[0]} H{size[1]} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for image in sequence:
            out.write(b"FRAME\n")
            out.write(cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420).tobytes())
    return len(sequence)


def chromium_args(y4m: Path) -> list[str]:
    """Headless Chromium with a fake camera playing `y4m`, nothing fetched from the network."""
    return [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={y4m}",
    ]


@contextmanager
def chromium_with_camera(y4m: Path) -> Iterator[Any]:
    """Playwright's headless Chromium (Debian's, `chromium_args`) with `y4m` as its camera; closed on exit.

    Raises:
        FileNotFoundError: Debian's chromium is not installed (`make browser` installs it).
    """
    if not CHROMIUM.is_file():
        raise FileNotFoundError(f"{CHROMIUM} missing; `make browser` installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=chromium_args(y4m))
        try:
            yield browser
        finally:
            browser.close()
