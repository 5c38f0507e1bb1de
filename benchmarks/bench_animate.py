"""`vtpose animate` speed on data/media/dance.avi (1280x720, 205 frames), and where the time goes.

    .venv/bin/python benchmarks/bench_animate.py [--imgsz 320 640] [--weights W]
        [--backend pytorch onnx openvino openvino-int8] [--int8-calibration 100] [--max-frames N]

For each inference size and backend (`.pt` weights exported once, before the clock, for ONNX and OpenVINO; for
openvino-int8 the FP32 IR quantized by NNCF on the first --int8-calibration train2017 images, as
`vtpose.backends.export.quantize_openvino_int8` does for the pipeline; an IR given as --weights runs as it is):
the end-to-end pipelined run exactly as `vtpose animate` does it (fps = frames written per second of the pipeline,
after model load and warm-up, which are reported apart), each stage's busy time in that run (stages overlap on
threads, so the slowest stage bounds the rate), each stage timed alone on the first ISOLATED_FRAMES frames with
nothing else running in this process (inference also split into its letterbox and its model call proper), the
ratio of the pipelined fps to the bound the model sets (one `predict_one` after another, alone), and batching:
consecutive frames two per `predict` call against the same two frames in two `predict_one` calls, the two ways
taking turns pair by pair (letterbox and decoding included in both).
"""

from __future__ import annotations

import argparse
import itertools
import os
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import cv2
import numpy as np
from int8_ir import cached_ir

from vtpose.backends import VARIANTS, open_backend
from vtpose.backends.export import DEFAULT_CALIBRATION_SIZE, cached_export
from vtpose.paths import EXPORT_CACHE_DIR, MEDIA_DIR, PRETRAINED_WEIGHTS
from vtpose.studio.avatar import FrameRenderer
from vtpose.studio.motion import PoseSmoother, PoseTracker
from vtpose.studio.video import INFERENCE_THREADS, animate_video, read_frames, torch_threads

VIDEO = MEDIA_DIR / "dance.avi"
ISOLATED_FRAMES = 60
# Issue 9's goals for the chosen backend: at least 50 fps at imgsz 320 and 25 fps at 640 (25 elsewhere).
GOAL_FPS = {320: 50.0, 640: 25.0}
DEFAULT_GOAL_FPS = 25.0


def isolated(weights: Path, imgsz: int) -> dict[str, float]:
    """Milliseconds per frame of each stage run alone, one after the other."""
    t0 = time.perf_counter()
    frames = list(read_frames(VIDEO, ISOLATED_FRAMES))
    decode = (time.perf_counter() - t0) / len(frames)
    predictor = open_backend(weights, imgsz=imgsz, threads=INFERENCE_THREADS)
    with torch_threads(INFERENCE_THREADS) if predictor.name == "pytorch" else nullcontext():
        predictor.predict_one(frames[0])
        t0 = time.perf_counter()
        detections = [predictor.predict_one(f) for f in frames]
        infer = (time.perf_counter() - t0) / len(frames)
        # The same call in its two parts: the letterbox, and the model call proper (network + output decoding).
        t0 = time.perf_counter()
        prepared = [predictor.prepare(f) for f in frames]
        letterbox = (time.perf_counter() - t0) / len(frames)
        t0 = time.perf_counter()
        for item in prepared:
            predictor.run([item])
        model = (time.perf_counter() - t0) / len(frames)
    tracker, smoother = PoseTracker(), PoseSmoother(50.0)
    t0 = time.perf_counter()
    tracked = [smoother.update(tracker.update(d)) for d in detections]
    motion = (time.perf_counter() - t0) / len(frames)
    renderer = FrameRenderer((frames[0].shape[1], frames[0].shape[0]))
    t0 = time.perf_counter()
    rendered = [renderer.render(f, p) for f, p in zip(frames, tracked, strict=True)]
    render = (time.perf_counter() - t0) / len(frames)
    with tempfile.TemporaryDirectory() as tmp:
        writer = cv2.VideoWriter(str(Path(tmp) / "x.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 50.0, renderer.output_size)
        t0 = time.perf_counter()
        for image in rendered:
            writer.write(image)
        writer.release()
        encode = (time.perf_counter() - t0) / len(frames)
    return {
        "decode": decode, "inference": infer, "track+smooth": motion, "render": render, "encode": encode,
        "inference: letterbox": letterbox, "inference: model call": model,
    }  # fmt: skip


def batching(weights: Path, imgsz: int) -> dict[str, float]:
    """Milliseconds per frame of consecutive frame pairs run as one `predict` call and as two `predict_one` calls."""
    frames = list(read_frames(VIDEO, ISOLATED_FRAMES))
    predictor = open_backend(weights, imgsz=imgsz, threads=INFERENCE_THREADS)
    times: dict[str, list[float]] = {"two single calls": [], "one call of two": []}
    with torch_threads(INFERENCE_THREADS) if predictor.name == "pytorch" else nullcontext():
        predictor.predict(frames[:2])  # sizes the runtime's buffers for a batch of two
        for first, second in zip(frames[0::2], frames[1::2], strict=False):
            t0 = time.perf_counter()
            predictor.predict_one(first)
            predictor.predict_one(second)
            times["two single calls"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            predictor.predict([first, second])
            times["one call of two"].append(time.perf_counter() - t0)
    return {name: float(np.median(t)) / 2 for name, t in times.items()}


def model_file(weights: Path, variant: str, imgsz: int, calibration: int) -> Path:
    """The file `variant` runs: the `.pt` exported (cached) for its engine; an INT8 IR quantized once."""
    if variant == "openvino-int8" and weights.suffix == ".pt":
        return cached_ir(weights, "int8", imgsz, calibration)
    return cached_export(weights, variant.removesuffix("-int8"), imgsz, EXPORT_CACHE_DIR)


def main() -> None:
    """Print the figures for each size."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--imgsz", type=int, nargs="+", default=[320, 640])
    parser.add_argument("--weights", type=Path, default=PRETRAINED_WEIGHTS)
    parser.add_argument("--backend", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument(
        "--int8-calibration", type=int, default=DEFAULT_CALIBRATION_SIZE, help="train2017 images INT8 is calibrated on"
    )
    parser.add_argument("--max-frames", type=int, default=None, help="stop each run early (a quick sanity check)")
    args = parser.parse_args()
    print(
        f"{VIDEO.name}, weights {args.weights.name}, {os.cpu_count()} CPUs, inference threads "
        f"{INFERENCE_THREADS}, load average before {os.getloadavg()[0]:.1f}"
    )
    for imgsz, backend in itertools.product(args.imgsz, args.backend):
        # Exported before the clock starts: a one-off, cached under .runtime/exports.
        t0 = time.perf_counter()
        weights = model_file(args.weights, backend, imgsz, args.int8_calibration)
        print(f"\n{backend} model {weights.parent.name}/{weights.name} ready in {time.perf_counter() - t0:.1f} s")
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            stats = animate_video(
                VIDEO, Path(tmp) / "out.mp4", weights, imgsz, progress=False, max_frames=args.max_frames
            )
            total = time.perf_counter() - t0
        setup = total - stats.wall_s
        busy = ", ".join(f"{k} {1000 * v / stats.frames:.1f}" for k, v in stats.busy_s.items())
        goal = GOAL_FPS.get(imgsz, DEFAULT_GOAL_FPS)
        verdict = "meets" if stats.fps >= goal else "below"
        print(
            f"imgsz {imgsz}, {backend}: fps: {stats.fps:.1f} ({verdict} the {goal:.0f} fps goal) over "
            f"{stats.frames} frames, {stats.wall_s:.2f} s; setup (model load + warm-up) {setup:.2f} s; "
            f"with setup {stats.frames / total:.1f} fps"
        )
        print(f"  pipelined busy ms/frame: {busy}")
        alone = isolated(weights, imgsz)
        parts = {k: v for k, v in alone.items() if k.startswith("inference: ")}
        stages = {k: v for k, v in alone.items() if k not in parts}
        per_stage = ", ".join(f"{k} {1000 * v:.1f}" for k, v in stages.items())
        total_alone = sum(stages.values())
        print(
            f"  alone ms/frame: {per_stage} (sum {1000 * total_alone:.1f}, {1 / total_alone:.1f} fps without overlap); "
            + ", ".join(f"{k} {1000 * v:.1f}" for k, v in parts.items())
        )
        # The bound: the inference stage is sequential (tracking needs frames in order), so no pipeline beats one
        # `predict_one` after another on its INFERENCE_THREADS thread(s) with nothing else running.
        bound = 1 / stages["inference"]
        print(
            f"  against the model alone: `predict_one` {1000 * stages['inference']:.1f} ms/frame, a bound of "
            f"{bound:.1f} fps (the model call proper alone: {1 / parts['inference: model call']:.1f} fps); animate "
            f"runs at **{stats.fps / bound:.2f}x** the bound"
        )
        paired = batching(weights, imgsz)
        single, batched = paired["two single calls"], paired["one call of two"]
        print(
            f"  batching two frames: {1000 * batched:.1f} ms/frame in one call of two, {1000 * single:.1f} in two "
            f"single calls (saves {100 * (1 - batched / single):.0f}%)"
        )
        print(f"  load average after {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
