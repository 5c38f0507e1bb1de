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
- with --soak S: S seconds at concurrency 16, status-code counts and server RSS at start, every 10 s and at end;
- in process, with no server up, call by call in turn: the service's image decoder against `cv2.imdecode`, each
  variant's backend `predict_one` (the Bento's files, opened as the service opens them), raw `YOLO(pt).predict`
  and Ultralytics' own OpenVINO FP32 export run with `YOLO(dir).predict`.
The 1-minute load average is recorded before and after, since the machine may be shared.
Every loop is bounded by a request count or a deadline; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import httpx
import numpy as np
import yaml

from vtpose.backends import ENV_BACKEND, VARIANTS
from vtpose.backends.packaged import load_packaged_backend
from vtpose.errors import VtposeError
from vtpose.paths import MEDIA_DIR, PRETRAINED_WEIGHTS, PROJECT_ROOT
from vtpose.pose import load_image
from vtpose.serving.decoding import decode_image
from vtpose.serving.limits import ServingLimits
from vtpose.testing.local_server import package_bento, start_bento, stop, wait_ready

IMAGE = MEDIA_DIR / "game-streamer-tips.jpg"
IMGSZ = 640
BENTOML_HOME = PROJECT_ROOT / ".runtime" / "bentoml"
INT8_CALIBRATION = 100
# Issue 9's goals: served p50 at most half of raw predict's; 8 clients at least twice raw sequential throughput.
GOAL_LATENCY_RATIO = 0.5
GOAL_THROUGHPUT_RATIO = 2.0
# The results file's hand-kept history starts at this heading; a run rewrites only what is above it.
KEPT_HEADING = "## Earlier runs"
RAW = "raw `YOLO(pt).predict`"
RAW_OPENVINO = "raw `YOLO(openvino dir).predict` (Ultralytics' own FP32 export)"


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50/p95/p99 in milliseconds of samples in seconds."""
    ordered = np.sort(np.asarray(samples)) * 1000
    return {f"p{q}": float(np.percentile(ordered, q)) for q in (50, 95, 99)}


def ultralytics_openvino_dir() -> Path:
    """Ultralytics' own OpenVINO FP32 export of the checkpoint (`YOLO(pt).export(format="openvino")`), made once
    into .runtime/bentoml/ultralytics-openvino: what a CPU user would run without this project."""
    from ultralytics import YOLO
    from ultralytics.utils import checks

    target = BENTOML_HOME / "ultralytics-openvino" / f"{PRETRAINED_WEIGHTS.stem}_openvino_model"
    if (target / f"{PRETRAINED_WEIGHTS.stem}.xml").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    source = target.parent / PRETRAINED_WEIGHTS.name  # the exporter writes beside its input
    shutil.copy2(PRETRAINED_WEIGHTS, source)
    checks.AUTOINSTALL = False  # nothing is pip-installed by a benchmark
    exported = Path(str(YOLO(str(source), task="pose").export(format="openvino", imgsz=IMGSZ, device="cpu")))
    if exported != target:
        raise SystemExit(f"Ultralytics wrote its OpenVINO export to {exported}, expected {target}")
    return target


def packaged_model(tag_info: dict[str, object]) -> tuple[Path, dict[str, object]]:
    """The Bento's model folder in BENTOML_HOME and its metadata (BentoML's model.yaml), as the service reads them."""
    name, _, version = str(tag_info["model_tag"]).partition(":")
    folder = BENTOML_HOME / "models" / name / version
    return folder, yaml.safe_load((folder / "model.yaml").read_text())["metadata"]


def in_process(tag_info: dict[str, object], variants: list[str], runs: int) -> dict[str, dict[str, float]]:
    """Sequential in-process timings on the same image, every candidate taking its turn call by call (so another
    process's load falls on all of them alike), with no server up:
    - the service's decoder (`vtpose.serving.decoding.decode_image`, default limits) and plain `cv2.imdecode`,
      on the upload's bytes;
    - each variant's backend `predict_one` on the decoded image, opened from the Bento as the service opens it
      (`load_packaged_backend`, every core: what a lone request gets);
    - `YOLO(pt).predict` (the raw baseline) and `YOLO(ultralytics openvino dir).predict`.
    """
    from ultralytics import YOLO

    payload = IMAGE.read_bytes()
    image = load_image(IMAGE)
    policy = ServingLimits().image_policy()
    model_dir, metadata = packaged_model(tag_info)
    raw_pt = YOLO(str(PRETRAINED_WEIGHTS), task="pose")
    raw_ov = YOLO(str(ultralytics_openvino_dir()), task="pose")
    calls: dict[str, Callable[[], object]] = {
        "decode: `decode_image` (the service's)": lambda: decode_image(payload, policy),
        "decode: `cv2.imdecode`": lambda: cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_COLOR),
    }
    for variant in variants:
        backend = load_packaged_backend(model_dir, metadata, variant)
        calls[f"model: {variant} backend `predict_one`"] = functools.partial(backend.predict_one, image)
    calls[RAW] = functools.partial(raw_pt.predict, image, imgsz=IMGSZ, verbose=False, device="cpu")
    calls[RAW_OPENVINO] = functools.partial(raw_ov.predict, image, imgsz=IMGSZ, verbose=False, device="cpu")
    for _ in range(3):  # warm-up: first calls build predictors, fuse layers, compile graphs
        for call in calls.values():
            call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(runs):
        for name, call in calls.items():
            t0 = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - t0)
    return {name: {**percentiles(t), "rps": len(t) / sum(t)} for name, t in times.items()}


def build(env: dict[str, str], variants: list[str]) -> dict[str, object]:
    """The Bento's BentoInfo JSON (tag, model_tag...); it packages the OpenVINO IRs when a variant needs them."""
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
    return package_bento(PRETRAINED_WEIGHTS, version, BENTOML_HOME, *options, env=env)


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
    parser.add_argument("--raw-runs", type=int, default=30, help="calls per in-process row")
    parser.add_argument("--soak", type=float, default=0, help="seconds of load at concurrency 16 (0: skip)")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "benchmarks" / "SERVE_RESULTS.md")
    parser.add_argument("--backend", nargs="+", default=["onnx"], choices=VARIANTS, help="variants served, in turn")
    args = parser.parse_args()

    env = {**os.environ, "BENTOML_HOME": str(BENTOML_HOME), "BENTOML_DO_NOT_TRACK": "true"}
    tag_info = build(env, args.backend)
    tag = str(tag_info["tag"])
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
    # In-process timings run with no server up, so both get the same (shared) cores.
    local = in_process(tag_info, args.backend, args.raw_runs)
    raw = local[RAW]
    print(f"in-process: {local}", file=sys.stderr)
    load_after = os.getloadavg()[0]

    command = f"--backend {' '.join(args.backend)} --requests {args.requests} --raw-runs {args.raw_runs}"
    command += f" --soak {args.soak:g}" if args.soak > 0 else ""
    busy = max(load_before, load_after) > (os.cpu_count() or 1)
    quiet = "**NOT a quiet machine**: other jobs ran" if busy else "quiet machine"
    cpu = f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()})"
    report += [
        f"# Serving benchmark: `.venv/bin/python benchmarks/bench_serve.py {command}`",
        "",
        f"Bento `{tag}` (yolo11n-pose, each variant called directly: ONNX Runtime or OpenVINO, CPU, 1 BentoML worker, "
        f"VTPOSE_BACKEND per run) vs in-process `YOLO(pt).predict`, same image ({IMAGE.name}, 1280x720) and imgsz "
        f"{IMGSZ}; loopback HTTP, multipart upload, {args.requests} requests per level. Machine: {cpu}, 1-minute "
        f"load average {load_before:.1f} before, {load_after:.1f} after ({quiet}; shared machines make absolute "
        f"numbers noisy; the ratios come from the same run, the in-process ones call by call). "
        f"Python {platform.python_version()}.",
        "",
        "| | p50 ms | p95 ms | p99 ms | req/s |",
        "|---|---|---|---|---|",
        f"| {RAW}, sequential | {fmt(raw)} |",
    ]
    for variant, served in results.items():
        report += [f"| {variant}: served /predict, concurrency {c} | {fmt(served[c])} |" for c in levels]
    report += [
        "",
        f"In-process, one call at a time, no server up, every row taking its turn call by call ({args.raw_runs} "
        "calls each, after 3 warm-up rounds): what a request costs apart from HTTP, and what a CPU user would run "
        "instead of the service.",
        "",
        "| in-process | p50 ms | p95 ms | p99 ms | calls/s |",
        "|---|---|---|---|---|",
        *(f"| {name} | {fmt(row)} |" for name, row in local.items()),
        "",
    ]
    decode_ours, decode_cv2 = (row["p50"] for name, row in local.items() if name.startswith("decode:"))
    report.append(
        f"- decode: the service's decoder (size, type and pixel checks, EXIF orientation) / `cv2.imdecode` p50 "
        f"**{decode_ours / decode_cv2:.2f}x** ({decode_ours:.1f} ms against {decode_cv2:.1f} ms)"
    )
    for variant in results:
        model = local[f"model: {variant} backend `predict_one`"]["p50"]
        report.append(
            f"- {variant} backend `predict_one` p50 {model:.1f} ms; against it, p50 of Ultralytics' own OpenVINO "
            f"FP32 predict **{local[RAW_OPENVINO]['p50'] / model:.2f}x**, of `YOLO(pt).predict` "
            f"**{raw['p50'] / model:.2f}x**"
        )
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
    kept = ""
    if args.out.is_file() and KEPT_HEADING in args.out.read_text():  # earlier runs, written by hand, stay
        kept = "\n" + KEPT_HEADING + args.out.read_text().split(KEPT_HEADING, 1)[1]
    args.out.write_text("\n".join(report) + "\n" + kept)
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
