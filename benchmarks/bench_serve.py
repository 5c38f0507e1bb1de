"""Served /predict vs raw in-process Ultralytics predict, measured in one run; optional soak under load.

    .venv/bin/python benchmarks/bench_serve.py [--backend onnx openvino openvino-int8] [--requests 48] [--soak 60]
        [--out benchmarks/SERVE_RESULTS.md]

Builds the Bento with `vtpose.serving.packaging.build_bento` on data/pretrained/yolo11n-pose.pt in .runtime/bentoml
(BENTOML_HOME; with the OpenVINO FP32 IR, and the INT8 IR calibrated on INT8_CALIBRATION train2017 images when
openvino-int8 is asked for), then for each --backend starts `bentoml serve` on 127.0.0.1 (1 worker,
VTPOSE_BACKEND=<variant>) and compares on the same image and image size:
- p50 latency of /predict at concurrency 1 vs raw `YOLO(pt).predict` p50;
- requests/s with 8 concurrent clients vs raw sequential predicts/s;
- p50/p95/p99 and requests/s at concurrency 1, 4 and 16;
- with --soak S: S seconds at concurrency 16, status-code counts and server RSS at start, every 10 s and at end.
The 1-minute load average is recorded before and after, since the machine may be shared.
Every loop is bounded by a request count or a deadline; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

from vtpose.backends import ENV_BACKEND, VARIANTS
from vtpose.errors import VtposeError
from vtpose.paths import MEDIA_DIR, PRETRAINED_WEIGHTS, PROJECT_ROOT
from vtpose.pose import load_image
from vtpose.testing.local_server import package_bento, start_bento, stop, wait_ready

IMAGE = MEDIA_DIR / "game-streamer-tips.jpg"
IMGSZ = 640
BENTOML_HOME = PROJECT_ROOT / ".runtime" / "bentoml"
INT8_CALIBRATION = 100
# Issue 9's goals: served p50 at most half of raw predict's; 8 clients at least twice raw sequential throughput.
GOAL_LATENCY_RATIO = 0.5
GOAL_THROUGHPUT_RATIO = 2.0


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50/p95/p99 in milliseconds of samples in seconds."""
    ordered = np.sort(np.asarray(samples)) * 1000
    return {f"p{q}": float(np.percentile(ordered, q)) for q in (50, 95, 99)}


def raw_predict(runs: int) -> dict[str, float]:
    """In-process `ultralytics.YOLO(pt).predict` on the same image and size, sequential."""
    from ultralytics import YOLO

    model = YOLO(str(PRETRAINED_WEIGHTS), task="pose")
    image = load_image(IMAGE)
    for _ in range(3):  # warm-up: first calls build the predictor and fuse layers
        model.predict(image, imgsz=IMGSZ, verbose=False, device="cpu")
    times = []
    start = time.perf_counter()
    for _ in range(runs):
        t0 = time.perf_counter()
        model.predict(image, imgsz=IMGSZ, verbose=False, device="cpu")
        times.append(time.perf_counter() - t0)
    wall = time.perf_counter() - start
    return {**percentiles(times), "rps": runs / wall}


def build(env: dict[str, str], variants: list[str]) -> str:
    """The Bento's tag; it packages the OpenVINO IRs when a variant needs them (version "bench-ov" then)."""
    if "openvino-int8" in variants:
        train = PROJECT_ROOT / "data" / "coco-person-mini" / "images" / "train2017"
        version, options = (
            "bench-ov8",
            ["--openvino", "--int8-images", str(train), "--int8-size", str(INT8_CALIBRATION)],
        )
    elif "openvino" in variants:
        version, options = "bench-ov", ["--openvino"]
    else:
        version, options = "bench", []
    return package_bento(PRETRAINED_WEIGHTS, version, BENTOML_HOME, *options, env=env)["tag"]


def tree_rss_mb(root_pid: int) -> float:
    """Resident memory of the server process and all its descendants (arbiter + workers), MiB."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            parents[int(entry.name)] = int(stat[1])  # field 4 of /proc/PID/stat: parent pid
            rss[int(entry.name)] = int((entry / "statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue  # the process ended while we looked
    tree, frontier = {root_pid}, [root_pid]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier.extend(children)
    return sum(rss.get(pid, 0) for pid in tree) / 2**20


def load(url: str, concurrency: int, requests: int | None, deadline_s: float | None) -> dict[str, object]:
    """`concurrency` client threads posting the image to /predict until `requests` are done or the deadline."""
    payload = IMAGE.read_bytes()
    lock = threading.Lock()
    times: list[float] = []
    statuses: Counter[int] = Counter()
    issued = 0
    stop_at = time.monotonic() + deadline_s if deadline_s else None

    def take() -> bool:
        nonlocal issued
        with lock:
            if requests is not None and issued >= requests:
                return False
            if stop_at is not None and time.monotonic() >= stop_at:
                return False
            issued += 1
            return True

    def client() -> None:
        with httpx.Client(timeout=120) as http:
            while take():
                t0 = time.perf_counter()
                try:
                    status = http.post(
                        f"{url}/predict", files={"image": (IMAGE.name, payload, "image/jpeg")}
                    ).status_code
                except httpx.TransportError:
                    status = -1  # connection refused or reset: counted, never retried silently
                elapsed = time.perf_counter() - t0
                with lock:
                    statuses[status] += 1
                    if status == 200:
                        times.append(elapsed)

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        for future in [pool.submit(client) for _ in range(concurrency)]:
            future.result()
    wall = time.perf_counter() - start
    return {**percentiles(times or [0.0]), "rps": statuses[200] / wall, "statuses": dict(statuses), "n": issued}


def serve(tag: str, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """`bentoml serve` on a free loopback port, once ready; its log is .runtime/bentoml/bench-serve.log."""
    log_path = BENTOML_HOME / "bench-serve.log"
    proc, port = start_bento(tag, env, BENTOML_HOME, log_path)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, url, log_path)
    except VtposeError as error:
        stop(proc)
        raise SystemExit(str(error)) from error
    return proc, url


def fmt(row: dict[str, object]) -> str:
    return f"{row['p50']:.1f} | {row['p95']:.1f} | {row['p99']:.1f} | {row['rps']:.2f}"


def main() -> None:
    """Run the comparison and write the Markdown report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=48, help="requests per concurrency level")
    parser.add_argument("--raw-runs", type=int, default=30)
    parser.add_argument("--soak", type=float, default=0, help="seconds of load at concurrency 16 (0: skip)")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "benchmarks" / "SERVE_RESULTS.md")
    parser.add_argument("--backend", nargs="+", default=["onnx"], choices=VARIANTS, help="variants served, in turn")
    args = parser.parse_args()

    env = {**os.environ, "BENTOML_HOME": str(BENTOML_HOME), "BENTOML_DO_NOT_TRACK": "true"}
    tag = build(env, args.backend)
    load_before = os.getloadavg()[0]
    report: list[str] = []
    levels = (1, 4, 8, 16)
    results: dict[str, dict[int, dict[str, object]]] = {}
    soak: dict[str, object] | None = None
    for variant in args.backend:
        proc, url = serve(tag, {**env, ENV_BACKEND: variant})
        try:
            load(url, 2, 6, None)  # warm the server's paths
            served: dict[int, dict[str, object]] = {}
            for concurrency in levels:
                served[concurrency] = load(url, concurrency, args.requests, None)
                print(f"{variant} c={concurrency}: {served[concurrency]}", file=sys.stderr)
            results[variant] = served
            if args.soak > 0 and variant == args.backend[0]:
                soak = run_soak(proc.pid, url, args.soak)
        finally:
            stop(proc)
    # Raw predict runs with no server up, so both get the same (shared) cores.
    raw = raw_predict(args.raw_runs)
    print(f"raw: {raw}", file=sys.stderr)
    load_after = os.getloadavg()[0]

    cpu = f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()})"
    report += [
        "# Serving benchmark (`benchmarks/bench_serve.py`)",
        "",
        f"Bento `{tag}` (yolo11n-pose, each variant called directly: ONNX Runtime or OpenVINO, CPU, 1 BentoML worker, "
        f"VTPOSE_BACKEND per run) vs in-process `YOLO(pt).predict`, same image ({IMAGE.name}, 1280x720) and imgsz "
        f"{IMGSZ}; loopback HTTP, multipart upload, {args.requests} requests per level. Machine: {cpu}, 1-minute "
        f"load average {load_before:.1f} before, {load_after:.1f} after (shared machines make absolute numbers "
        f"noisy; the ratios come from the same run). Python {platform.python_version()}.",
        "",
        "| | p50 ms | p95 ms | p99 ms | req/s |",
        "|---|---|---|---|---|",
        f"| raw `YOLO(pt).predict`, sequential | {fmt(raw)} |",
    ]
    for variant, served in results.items():
        report += [f"| {variant}: served /predict, concurrency {c} | {fmt(served[c])} |" for c in levels]
    report.append("")
    for variant, served in results.items():
        ratio_latency = served[1]["p50"] / raw["p50"]  # type: ignore[operator]
        ratio_tput = served[8]["rps"] / raw["rps"]  # type: ignore[operator]
        report += [
            f"- {variant}: served p50 at concurrency 1 / raw p50 **{ratio_latency:.2f}** (goal <= "
            f"{GOAL_LATENCY_RATIO}); req/s with 8 clients / raw sequential predicts/s **{ratio_tput:.2f}x** (goal >= "
            f"{GOAL_THROUGHPUT_RATIO}x); status codes: " + ", ".join(f"c={c}: {served[c]['statuses']}" for c in levels)
        ]
    if soak is not None:
        report += [
            "",
            f"## Soak: {args.soak:.0f} s at concurrency 16 ({args.backend[0]})",
            "",
            f"- requests: {soak['n']}, status codes: {soak['statuses']} (-1 = connection error)",
            f"- p50 {soak['p50']:.0f} ms, p95 {soak['p95']:.0f} ms, p99 {soak['p99']:.0f} ms, {soak['rps']:.2f} req/s",
            f"- server RSS (process tree: arbiter + worker): {soak['rss_start_mb']:.0f} MiB at start, "
            f"{soak['rss_end_mb']:.0f} MiB at end; every 10 s: "
            + ", ".join(f"{mb:.0f}" for mb in soak["rss_samples_mb"])  # type: ignore[attr-defined]
            + " MiB",
        ]
    args.out.write_text("\n".join(report) + "\n")
    print("\n".join(report))


def run_soak(pid: int, url: str, seconds: float) -> dict[str, object]:
    """`seconds` of load at concurrency 16, with the server's RSS sampled every 10 s."""
    rss_start = tree_rss_mb(pid)
    samples: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(10):
            samples.append(tree_rss_mb(pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    soak = load(url, 16, None, seconds)
    done.set()
    sampler.join()
    soak["rss_start_mb"], soak["rss_end_mb"] = rss_start, tree_rss_mb(pid)
    soak["rss_samples_mb"] = samples
    print(f"soak: {soak}", file=sys.stderr)
    return soak


if __name__ == "__main__":
    main()
