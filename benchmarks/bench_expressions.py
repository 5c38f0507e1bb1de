"""What the expressions cost the live studio: fps displayed and capture-to-screen latency, side by side in one run.

    .venv/bin/python benchmarks/bench_expressions.py [--seconds 20] [--warmup 8] [--out FILE]

The Bento `make studio` serves (the pretrained checkpoint, OpenVINO INT8; calibrated on a few train images as the
browser tests do, in .runtime/bench-expressions) on 127.0.0.1, and Debian's headless Chromium opening /studio with
dance.avi as a 1280x720 fake camera, at the default settings, three ways in turn on the same server:
- `?expr=off`: no blinks, the face drawn as before the expressions;
- expressions on (the default): blinks, each redrawing the scene between poses for its ~150 ms;
- expressions on and "mouth from microphone" ticked: Chromium's fake microphone beeps, so the mouth moves most of
  the time and the scene is redrawn between poses at up to 30 Hz (expressions.js's FACE_REDRAW_MS).
The conditions take turns, --rounds times (each round in a rotated order), and the table gives each one's median
over the rounds with every round's figure beside it: on a shared machine the load changes from one minute to the
next, and turns spread that over the three. Browser and server share the machine's cores; the 1-minute load
average is printed before and after each round.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from bench_live import CAMERA_FPS, CAMERA_FRAMES, CAMERA_SIZE, CAMERA_START, DANCE, load_average

from vtpose.paths import PROJECT_ROOT
from vtpose.testing.fake_camera import CHROMIUM, chromium_args, write_y4m
from vtpose.testing.local_server import serve_bento, studio_bento

CONDITIONS = {
    "expressions off (?expr=off)": ("?expr=off", False),
    "expressions on (blinks)": ("", False),
    "expressions on + microphone (fake beeps)": ("", True),
}


def measure(url: str, y4m: Path, query: str, microphone: bool, warmup_s: float, seconds: float) -> dict[str, Any]:
    """One condition: the page's per-frame records over the measured window, and its face redraws."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=chromium_args(y4m))
        page = browser.new_context(viewport={"width": 1600, "height": 1000}, bypass_csp=True).new_page()
        page.goto(f"{url}/studio/{query}")
        page.wait_for_function("window.studio && window.studio.stats.frames.length >= 3", timeout=120_000)
        if microphone:
            page.check("#mouth-mic")
            page.wait_for_function("window.studio.expressions.microphoneOn", timeout=30_000)
        time.sleep(warmup_s)
        start = page.evaluate("performance.now()")
        drawn0, faces0 = page.evaluate("[window.studio.stats.drawn, window.studio.expressionsDrawn]")
        time.sleep(seconds)
        snapshot, faces1, end = page.evaluate(
            "[window.studio.stats.snapshot(), window.studio.expressionsDrawn, performance.now()]"
        )
        browser.close()
    frames = [f for f in snapshot["frames"] if start <= f["drawnAt"] <= end]
    if not frames:
        raise SystemExit("no frames were drawn in the measured window")
    latency = np.array([f["latency"] for f in frames])
    window_s = (end - start) / 1000
    return {
        "fps": (snapshot["drawn"] - drawn0) / window_s,
        "p50": float(np.percentile(latency, 50)),
        "p95": float(np.percentile(latency, 95)),
        "shut": faces1["shut"] - faces0["shut"],
        "open": faces1["open"] - faces0["open"],
        "window_s": window_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window per condition")
    parser.add_argument("--warmup", type=float, default=8.0, help="seconds of frames before measuring")
    parser.add_argument("--rounds", type=int, default=3, help="times each condition is measured, in turns")
    parser.add_argument("--out", type=Path, default=None, help="also write the Markdown report here")
    args = parser.parse_args()
    if not CHROMIUM.is_file():
        raise SystemExit(f"{CHROMIUM} missing: run `make browser`")
    root = PROJECT_ROOT / ".runtime" / "bench-expressions"
    root.mkdir(parents=True, exist_ok=True)
    bento = studio_bento(root)
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in CONDITIONS}
    loads = []
    with tempfile.TemporaryDirectory(prefix="vtpose-bench-expressions-") as tmp:
        y4m = Path(tmp) / "dance.y4m"
        write_y4m(y4m, DANCE, CAMERA_SIZE, CAMERA_FRAMES, CAMERA_FPS, CAMERA_START)
        with serve_bento(bento["tag"], bento["env"], bento["home"], Path(tmp) / "server.log") as url:
            names = list(CONDITIONS)
            for round_ in range(args.rounds):
                before = load_average()
                for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
                    query, microphone = CONDITIONS[name]
                    results[name].append(measure(url, y4m, query, microphone, args.warmup, args.seconds))
                    print(round_, name, results[name][-1], flush=True)
                loads.append(f"round {round_ + 1}: {before} -> {load_average()}")
    lines = [
        "## Expressions in the live studio: `.venv/bin/python benchmarks/bench_expressions.py`",
        "",
        f"{platform.machine()}, {os.cpu_count()} cores; browser (headless Chromium) and server on the same machine; "
        f"camera {CAMERA_SIZE[0]}x{CAMERA_SIZE[1]} at {CAMERA_FPS} fps (dance.avi), default settings, openvino-int8.",
        "",
        f"Median of {args.rounds} rounds (each round's figure in brackets), {args.seconds:.0f} s measured each time.",
        "",
        "| condition | fps displayed | capture-to-screen p50 ms | p95 ms | frames drawn: eyes shut / mouth open |",
        "|---|---|---|---|---|",
    ]
    for name, rounds in results.items():
        cells = []
        for key, digits in (("fps", 1), ("p50", 0), ("p95", 0)):
            values = [r[key] for r in rounds]
            each = ", ".join(f"{v:.{digits}f}" for v in values)
            cells.append(f"{float(np.median(values)):.{digits}f} ({each})")
        faces = ", ".join(f"{r['shut']} / {r['open']}" for r in rounds)
        lines.append(f"| {name} | {' | '.join(cells)} | {faces} |")
    lines += ["", "```", *loads, "```"]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out is not None:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
