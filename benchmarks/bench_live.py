"""The live studio end to end: fps displayed and capture-to-screen latency, and where the time goes.

    .venv/bin/python benchmarks/bench_live.py [--backend onnx openvino-int8] [--seconds 30] [--warmup 8]
        [--out benchmarks/LIVE_RESULTS.md]

Packages data/pretrained/yolo11n-pose.pt with `vtpose.serving.packaging` in .runtime/bentoml (BENTOML_HOME) with
its ONNX file and OpenVINO FP32 and INT8 IRs (INT8 calibrated on INT8_CALIBRATION train2017 images), then for
each --backend in turn starts `bentoml serve` on 127.0.0.1 (the service's defaults: 1 worker; VTPOSE_BACKEND=<variant>:
openvino-int8 is what the pipeline chooses for this checkpoint, onnx what the service ran before) and opens /studio
in Debian's headless Chromium (driven by Playwright) with data/media/dance.avi as the fake camera at 1280x720, at
the page's default settings (frames downscaled to a 640-pixel long side, JPEG quality 0.7, everyone in view, mirror
on). After a warm-up it reads the page's own measurements (vtpose/studio/live/web/stats.js, `performance.now()` on the
page's clock) for every frame drawn during the measured window:

- latency: from the frame's capture time (requestVideoFrameCallback's captureTime) to the end of drawing it;
- capture: capture time to the page grabbing the frame; encode: downscaling and JPEG encoding in the page;
  ahead: how long a frame encoded ahead waits for the answer to the frame in flight before it is sent;
- network: the round trip minus the server's own time (WebSocket both ways, queueing, JSON);
- decode, model, track: the server's (JPEG decode; letterbox and the model through the service's batcher;
  tracking, One Euro smoothing and the rig); draw: drawing the scene on the canvas.

The displayed fps is frames drawn / window. Browser and server share the machine's cores, as they would on a
streamer's laptop. The 1-minute load average is printed before and after: the machine may be shared.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from vtpose.backends import VARIANTS
from vtpose.paths import COCO_MINI_DIR, MEDIA_DIR, PRETRAINED_WEIGHTS, PROJECT_ROOT
from vtpose.testing.fake_camera import CHROMIUM, chromium_args, write_y4m
from vtpose.testing.local_server import package_bento, serve_bento

BENTOML_HOME = PROJECT_ROOT / ".runtime" / "bentoml"
DANCE = MEDIA_DIR / "dance.avi"
CAMERA_SIZE = (1280, 720)
CAMERA_FPS = 30
# From frame 20 (the clip's first frames pan the camera), forward then back so the loop has no jump.
CAMERA_START, CAMERA_FRAMES = 20, 60
STAGES = ("capture", "encode", "ahead", "network", "decode", "model", "track", "draw")
# Issue 8's goals on the 2-core machine.
GOAL_FPS = 20.0
GOAL_P50_MS = 120.0
INT8_CALIBRATION = 100


def load_average() -> str:
    """The machine's load (`uptime`), to say how busy it was."""
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def build_bento(env: dict[str, str]) -> str:
    """Package the pretrained checkpoint with every variant (reusing the stored model if it is there); the tag."""
    options = ("--openvino", "--int8-images", str(COCO_MINI_DIR / "images" / "train2017"))
    return package_bento(
        PRETRAINED_WEIGHTS, "bench-live", BENTOML_HOME, *options, "--int8-size", str(INT8_CALIBRATION), env=env
    )["tag"]


def measure(url: str, y4m: Path, warmup_s: float, seconds: float) -> dict[str, Any]:
    """Open the studio with the fake camera; the page's per-frame records over the measured window."""
    from playwright.sync_api import sync_playwright

    args = chromium_args(y4m)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
        # bypass_csp: Playwright's wait_for_function evaluates strings, which the page's CSP forbids.
        page = browser.new_context(viewport={"width": 1600, "height": 1000}, bypass_csp=True).new_page()
        page.goto(f"{url}/studio/")
        page.wait_for_function("window.studio && window.studio.stats.frames.length >= 3", timeout=120_000)
        time.sleep(warmup_s)
        start = page.evaluate("performance.now()")
        sent0, dropped0, drawn0 = page.evaluate(
            "[window.studio.stats.sent, window.studio.stats.dropped, window.studio.stats.drawn]"
        )
        time.sleep(seconds)
        snapshot = page.evaluate("window.studio.stats.snapshot()")
        end = page.evaluate("performance.now()")
        video = page.evaluate(
            "[document.getElementById('preview').videoWidth, document.getElementById('preview').videoHeight]"
        )
        browser.close()
    frames = [f for f in snapshot["frames"] if start <= f["drawnAt"] <= end]
    return {
        "frames": frames,
        "window_s": (end - start) / 1000,
        "sent": snapshot["sent"] - sent0,
        "drawn": snapshot["drawn"] - drawn0,
        "camera_frames_skipped": snapshot["dropped"] - dropped0,
        "camera": video,
    }


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    """fps displayed, latency p50/p95 and each stage's mean, ms."""
    frames = result["frames"]
    if not frames:
        raise SystemExit("no frames were drawn in the measured window")
    latency = np.array([f["latency"] for f in frames])
    stages = {k: float(np.mean([f[k] for f in frames])) for k in STAGES}
    stages["other"] = float(latency.mean()) - sum(stages.values())
    return {
        "fps_displayed": result["drawn"] / result["window_s"],
        "latency_p50_ms": float(np.percentile(latency, 50)),
        "latency_p95_ms": float(np.percentile(latency, 95)),
        "latency_mean_ms": float(latency.mean()),
        "stages_mean_ms": stages,
        "frames": result["drawn"],
        "window_s": result["window_s"],
        "camera": result["camera"],
        "camera_frames_skipped": result["camera_frames_skipped"],
        "persons_mean": float(np.mean([f["persons"] for f in frames])),
    }


def report(summary: dict[str, Any], before: str, after: str, variant: str) -> str:
    """The result as Markdown."""
    stages = summary["stages_mean_ms"]
    fps_ok = "met" if summary["fps_displayed"] >= GOAL_FPS else "NOT met"
    p50_ok = "met" if summary["latency_p50_ms"] < GOAL_P50_MS else "NOT met"
    lines = [
        f"## Live studio, served by `{variant}`: `.venv/bin/python benchmarks/bench_live.py`",
        "",
        f"{platform.machine()}, {os.cpu_count()} cores; browser (headless Chromium) and server on the same machine; "
        f"camera {summary['camera'][0]}x{summary['camera'][1]} at {CAMERA_FPS} fps (dance.avi), default settings.",
        "",
        "```",
        before,
        f"fps displayed:        {summary['fps_displayed']:.1f}  (goal >= {GOAL_FPS:.0f}: {fps_ok})",
        f"latency p50 / p95:    {summary['latency_p50_ms']:.0f} / {summary['latency_p95_ms']:.0f} ms  "
        f"(goal p50 < {GOAL_P50_MS:.0f} ms: {p50_ok})",
        f"frames drawn:         {summary['frames']} in {summary['window_s']:.1f} s, "
        f"{summary['persons_mean']:.1f} persons per frame; camera frames not sent (one in flight): "
        f"{summary['camera_frames_skipped']}",
        "where the time goes (mean ms per frame):",
        *[f"  {name:<8} {value:6.1f}" for name, value in stages.items()],
        after,
        "```",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="measured window")
    parser.add_argument("--warmup", type=float, default=8.0, help="seconds of frames before measuring")
    parser.add_argument("--out", type=Path, default=None, help="also write the Markdown report here")
    parser.add_argument("--backend", nargs="+", default=["onnx", "openvino-int8"], choices=VARIANTS)
    args = parser.parse_args()
    if not CHROMIUM.is_file():
        raise SystemExit(f"{CHROMIUM} missing: run `make browser`")
    BENTOML_HOME.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "BENTOML_HOME": str(BENTOML_HOME), "BENTOML_DO_NOT_TRACK": "true", "YOLO_OFFLINE": "1"}
    tag = build_bento(env)
    texts = []
    with tempfile.TemporaryDirectory(prefix="vtpose-bench-live-") as tmp:
        y4m = Path(tmp) / "dance.y4m"
        write_y4m(y4m, DANCE, CAMERA_SIZE, CAMERA_FRAMES, CAMERA_FPS, CAMERA_START)
        for variant in args.backend:
            server_env = {**env, "VTPOSE_BACKEND": variant}
            with serve_bento(tag, server_env, BENTOML_HOME, Path(tmp) / f"server-{variant}.log") as url:
                before = load_average()
                result = measure(url, y4m, args.warmup, args.seconds)
                after = load_average()
            texts.append(report(summarise(result), before, after, variant))
            print(texts[-1], flush=True)
    if args.out is not None:
        args.out.write_text("\n".join(texts))


if __name__ == "__main__":
    main()
