"""Video in and out, and the animate pipeline: decode, infer, render and encode overlapping on threads.

The stages run concurrently (OpenCV and PyTorch release the GIL in their heavy work), joined by small bounded
queues so memory stays flat. The output is written to a temporary file beside the target and renamed at the end,
so an interrupted run leaves no broken video.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vtpose.errors import VtposeError
from vtpose.paths import EXPORT_CACHE_DIR, atomic_path

# Container suffix -> FourCC codec that OpenCV's bundled FFmpeg writes without extra libraries.
CODECS = {".mp4": "mp4v", ".avi": "MJPG", ".mkv": "mp4v", ".mov": "mp4v"}
# Webcams often report 0 fps; this is what their frames are assumed to arrive at.
WEBCAM_FPS = 30.0
# Frames buffered between stages: enough to absorb one slow frame, small enough to keep memory flat at 1080p.
QUEUE_SIZE = 8
# Inference threads while animating (PyTorch's intra-op pool, or ONNX Runtime / OpenVINO threads). One: the other
# core decodes, renders and encodes meanwhile, and two threads competing with those stages (or with anything else
# on a 2-core machine) spin-wait and run many times slower than one.
INFERENCE_THREADS = 1
_DONE = object()  # end-of-stream marker passed down the queues
# FFmpeg prints its own complaint about a broken file ("moov atom not found") besides ours; ours names the fix.
# OpenCV reads this when it opens a capture, so setting it here (before any capture) is enough; quiet = -8.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")


@dataclass(frozen=True)
class VideoInfo:
    """What a video source is.

    Attributes:
        width, height: frame size, pixels.
        fps: frames per second (as the container says; WEBCAM_FPS for cameras that do not say).
        frame_count: frames in the file, or None for a live camera.
    """

    width: int
    height: int
    fps: float
    frame_count: int | None


def parse_source(source: str | Path | int) -> str | int:
    """A camera index (int, or a string of digits like "0") or a file path string."""
    if isinstance(source, int):
        return source
    text = str(source)
    return int(text) if text.isdigit() else text


def open_video(source: str | Path | int) -> tuple[cv2.VideoCapture, VideoInfo]:
    """Open a video file or a webcam and describe it.

    Args:
        source: a file path, or a camera index (0 for the first webcam).

    Returns:
        The opened capture and its `VideoInfo`.

    Raises:
        VtposeError: the file is missing or not a video OpenCV can decode, or the camera cannot be opened.
    """
    src = parse_source(source)
    if isinstance(src, str) and not Path(src).is_file():
        raise VtposeError(f"{src}: no such video file; check the path (or pass --source 0 for a webcam).")
    capture = _quiet_capture(src)
    if not capture.isOpened():
        what = (
            f"camera {src}: cannot be opened; check it is connected and not in use"
            if isinstance(src, int)
            else (f"{src}: not a readable video; pass a video file OpenCV/FFmpeg can decode (MP4, AVI, MKV...)")
        )
        raise VtposeError(what + ".")
    width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
    height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
    if isinstance(src, int):
        return capture, VideoInfo(width, height, fps if fps > 0 else WEBCAM_FPS, None)
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    if width <= 0 or height <= 0 or fps <= 0 or count <= 0:
        capture.release()
        raise VtposeError(
            f"{src}: not a readable video (no frames, size or rate); pass a video file OpenCV can decode."
        )
    return capture, VideoInfo(width, height, fps, count)


def _quiet_capture(src: str | int) -> cv2.VideoCapture:
    """cv2.VideoCapture with OpenCV's own warnings silenced while it probes its backends.

    A missing camera makes each backend print a paragraph; our one-line error says what went wrong instead.
    """
    log = cv2.utils.logging
    previous = log.getLogLevel()
    log.setLogLevel(log.LOG_LEVEL_SILENT)
    try:
        return cv2.VideoCapture(src)
    finally:
        log.setLogLevel(previous)


@contextmanager
def video_writer(path: str | Path, fps: float, size: tuple[int, int]) -> Iterator[cv2.VideoWriter]:
    """A cv2.VideoWriter on a temporary file that becomes `path` only if the block ends without error.

    Args:
        path: the output video; its suffix picks the codec (see CODECS).
        fps: frames per second to write.
        size: (width, height) of every frame, pixels.

    Raises:
        VtposeError: unsupported suffix, or the writer cannot be opened.
    """
    path = Path(path)
    codec = CODECS.get(path.suffix.lower())
    if codec is None:
        raise VtposeError(f"{path}: cannot write videos of type {path.suffix!r}; use one of {', '.join(CODECS)}.")
    with atomic_path(path) as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter.fourcc(*codec), fps, size)
        if not writer.isOpened():
            raise VtposeError(f"{path}: cannot open a video writer ({codec}); check the folder is writable.")
        try:
            yield writer
        finally:
            writer.release()


@dataclass
class PipelineStats:
    """What a pipeline run did and where its time went.

    Attributes:
        frames: frames written.
        wall_s: seconds from start to the last frame written.
        busy_s: stage name -> seconds that stage spent working (stages overlap, so these can add up to more
            than `wall_s`; the largest bounds the frame rate).
    """

    frames: int = 0
    wall_s: float = 0.0
    busy_s: dict[str, float] = field(default_factory=dict)

    @property
    def fps(self) -> float:
        """End-to-end frames per second."""
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0


class _Stage(threading.Thread):
    """One pipeline stage on its own thread: take from `inbox`, work, put into `outbox`, until the end marker."""

    def __init__(
        self,
        name: str,
        work: Callable[[Any], Any],
        inbox: queue.Queue,
        outbox: queue.Queue | None,
        stop: threading.Event,
    ) -> None:
        super().__init__(name=f"vtpose-{name}", daemon=True)
        self.stage, self.work, self.inbox, self.outbox, self.stop = name, work, inbox, outbox, stop
        self.busy = 0.0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                try:
                    item = self.inbox.get(timeout=0.1)
                except queue.Empty:
                    continue
                if item is _DONE:
                    break
                start = time.perf_counter()
                result = self.work(item)
                self.busy += time.perf_counter() - start
                if self.outbox is not None:
                    _put(self.outbox, result, self.stop)
        except BaseException as error:  # handed to the main thread, which re-raises it
            self.error = error
            self.stop.set()
        finally:
            if self.outbox is not None:
                _put(self.outbox, _DONE, self.stop, force=True)


def _put(q: queue.Queue, item: Any, stop: threading.Event, force: bool = False) -> None:
    """Put without blocking forever: give up when the pipeline stops (unless forcing the end marker)."""
    while True:
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            if stop.is_set() and not force:
                return
            if stop.is_set():
                # Make room for the end marker so the next stage can finish.
                with suppress(queue.Empty):
                    q.get_nowait()


def run_video_pipeline(
    capture: cv2.VideoCapture,
    analyse: Callable[[np.ndarray], Any],
    render: Callable[[np.ndarray, Any], np.ndarray],
    write: Callable[[np.ndarray], object],
    on_frame: Callable[[], None] | None = None,
    max_frames: int | None = None,
) -> PipelineStats:
    """Decode -> analyse -> render -> write, each stage on its own thread, in frame order.

    Analysis runs on the calling thread's behalf in a stage of its own (it is sequential: tracking and smoothing
    need the frames in order); every stage keeps frame order because each is a single thread fed by a FIFO.

    Args:
        capture: an opened video source.
        analyse: frame (H, W, 3) BGR uint8 -> anything (e.g. the frame's tracked, smoothed persons).
        render: (frame, analysis) -> the output frame, BGR uint8.
        write: takes each output frame, in order.
        on_frame: called after each frame is written (a progress bar's update).
        max_frames: stop after this many frames (None: until the source ends).

    Returns:
        Frame count, wall time and each stage's busy time.

    Raises:
        Whatever a stage raised (VtposeError for a user-fixable problem); KeyboardInterrupt stops all stages.
    """
    stop = threading.Event()
    decoded: queue.Queue = queue.Queue(QUEUE_SIZE)
    analysed: queue.Queue = queue.Queue(QUEUE_SIZE)
    rendered: queue.Queue = queue.Queue(QUEUE_SIZE)
    stats = PipelineStats()

    def write_one(frame: np.ndarray) -> None:
        write(frame)
        stats.frames += 1
        if on_frame is not None:
            on_frame()

    stages = [
        _Stage("analyse", lambda f: (f, analyse(f)), decoded, analysed, stop),
        _Stage("render", lambda fa: render(*fa), analysed, rendered, stop),
        _Stage("encode", write_one, rendered, None, stop),
    ]
    start = time.perf_counter()
    decode_busy = 0.0
    for stage in stages:
        stage.start()
    try:
        count = 0
        while not stop.is_set() and (max_frames is None or count < max_frames):
            t0 = time.perf_counter()
            ok, frame = capture.read()
            decode_busy += time.perf_counter() - t0
            if not ok:
                break
            _put(decoded, frame, stop)
            count += 1
        _put(decoded, _DONE, stop, force=True)
        for stage in stages:
            while stage.is_alive():
                stage.join(timeout=0.1)
    except KeyboardInterrupt:
        stop.set()
        for stage in stages:
            stage.join(timeout=5.0)
        raise
    stats.wall_s = time.perf_counter() - start
    stats.busy_s = {"decode": decode_busy, **{s.stage: s.busy for s in stages}}
    for stage in stages:
        if stage.error is not None:
            raise stage.error
    return stats


def read_frames(source: str | Path | int, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """Yield the BGR frames (H, W, 3) uint8 of a video, in order (for tests and benchmarks)."""
    capture, _ = open_video(source)
    try:
        count = 0
        while max_frames is None or count < max_frames:
            ok, frame = capture.read()
            if not ok:
                return
            count += 1
            yield frame
    finally:
        capture.release()


def animate_video(
    source: str | Path | int,
    output: str | Path,
    weights: str | Path,
    imgsz: int,
    avatar: str | Path | None = None,
    background: str | Path | None = None,
    side_by_side: bool = False,
    max_frames: int | None = None,
    progress: bool = True,
    backend: str | None = None,
) -> PipelineStats:
    """Turn a video (or webcam) into an avatar video: detect, track, smooth, draw, encode.

    Args:
        source: video file path, or a camera index.
        output: the video to write (.mp4, .avi...), with the source's frame count and rate.
        weights: .pt or .onnx pose weights.
        imgsz: inference size, pixels (multiple of 32).
        avatar: an avatar for everyone, or None: each track gets a prepared avatar in turn and keeps it.
        background: prepared background name or image path, or None for the default.
        side_by_side: the source frame on the left, the avatars on the right.
        max_frames: stop after this many frames (a webcam otherwise runs until Ctrl+C).
        progress: show a progress bar on stderr.
        backend: "pytorch", "onnx" or "openvino" (`.pt` weights exported once into EXPORT_CACHE_DIR), or None
            for the weights' own engine. Every backend runs with INFERENCE_THREADS threads and the same letterbox
            as `vtpose infer` (benchmarks/bench_animate.py compares them).

    Returns:
        The run's frame count, wall time and per-stage busy time.

    Raises:
        VtposeError: unreadable source, bad weights, unwritable output.
    """
    from tqdm import tqdm

    from vtpose.backends import open_backend
    from vtpose.backends.export import cached_export
    from vtpose.studio.avatar.scene import FrameRenderer
    from vtpose.studio.motion import PoseSmoother, PoseTracker

    capture, info = open_video(source)
    try:
        if backend is not None:
            weights = cached_export(weights, backend, imgsz, EXPORT_CACHE_DIR)
        predictor = open_backend(weights, imgsz=imgsz, threads=INFERENCE_THREADS)
        tracker = PoseTracker()
        smoother = PoseSmoother(info.fps)
        renderer = FrameRenderer((info.width, info.height), avatar, background, side_by_side)

        def analyse(frame: np.ndarray) -> list:
            return smoother.update(tracker.update(predictor.predict_one(frame)))

        # The first call sizes the runtime's buffers (and compiles OpenVINO's graph for the shape); do it before the
        # clock starts, so `fps` is the steady rate a user sees. Loading and warm-up are setup, reported apart.
        predictor.predict_one(np.zeros((info.height, info.width, 3), np.uint8))

        total = info.frame_count if max_frames is None else min(max_frames, info.frame_count or max_frames)
        live = info.frame_count is None
        with (
            video_writer(output, info.fps, renderer.output_size) as writer,
            tqdm(total=total, unit="frame", disable=not progress, leave=False) as bar,
        ):
            try:
                with torch_threads(INFERENCE_THREADS) if predictor.name == "pytorch" else nullcontext():
                    return run_video_pipeline(capture, analyse, renderer.render, writer.write, bar.update, max_frames)
            except KeyboardInterrupt:
                if not live:
                    raise  # an interrupted file run leaves no output
                # Ctrl+C is how a webcam recording ends: keep what was recorded.
                return PipelineStats(frames=bar.n, wall_s=bar.format_dict["elapsed"])
    finally:
        capture.release()


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with PyTorch using `count` intra-op threads, then restore the previous number."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
