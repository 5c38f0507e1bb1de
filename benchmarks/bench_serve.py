"""Served /predict against the model it serves and against what a CPU user would run instead, side by side in one
run; then each served variant at several concurrencies against raw `YOLO(pt).predict`; optional soak.

    .venv/bin/python benchmarks/bench_serve.py [--backend openvino-int8 onnx openvino] [--rounds 60]
        [--requests 48] [--soak 60] [--baseline-home DIR [--baseline-tag TAG]] [--home DIR] [--no-sweep]
        [--out benchmarks/SERVE_RESULTS.md]

Builds the Bento with `vtpose model package` on data/pretrained/yolo11n-pose.pt into --home (its BENTOML_HOME;
default .runtime/bentoml), with the OpenVINO FP32 IR, and the INT8 IR calibrated on INT8_CALIBRATION train2017
images when openvino-int8 is asked for. Everything runs on the streamer photo (1280x720 JPEG) at imgsz 640.

Side by side (issue 18), for the first --backend (openvino-int8 by default: what the pretrained checkpoint is served
as), with `bentoml serve` up on a free loopback port (1 worker, VTPOSE_BACKEND=<variant>):
- ROUNDS rounds in which every candidate takes its turn, in an order shuffled each round: GET /livez over a
  kept-alive connection (the HTTP floor); POST /predict over a kept-alive connection and over a new connection per
  request; POST /predict_batch with BATCH copies (its time per image); in process, the service's decoder
  (`decode_image`) and `cv2.imdecode`, the backend's `predict_one`, decode + `predict_one` (the backend opened from
  the Bento's files as the service opens them), Ultralytics' own OpenVINO FP32 export `YOLO(dir).predict` and
  `YOLO(pt).predict`;
- CLIENTS concurrent clients against the server, and CLIENTS threads in process each decoding the upload and
  calling `predict_one` on that backend, the same number of calls, in 4 bursts taking turns;
- with --baseline-home, a second server from that BENTOML_HOME's Bento (say, one built from an earlier commit)
  takes its turns in the same rounds and the same load (and, with --soak, is soaked after this tree's), so a change
  is measured before and after in one run.
The goals of issue 18 are checked on those figures. The clients are Python's own `http.client` (a kept-alive
connection each, or a new one per request), sending a multipart body encoded once by httpx: on 2 cores the client
shares the CPU with the server, and httpx's client spent 4.6 ms of CPU a request at 8 threads against 0.4 for
`http.client` (issue 18, measured once), time the server would lose. The HTTP times include the client's send and
receive. A pause of PAUSE_S between calls
lets each call start on idle cores (OpenVINO's threads spin briefly after an inference).

Then, unless --no-sweep, for each --backend in turn: p50/p95/p99 and requests/s at concurrency 1, 4, 8 and 16, and
issue 9's ratios against raw `YOLO(pt).predict` (measured in the rounds above); with --soak S, S seconds at
concurrency 16 with status-code counts and server RSS every 10 s. The 1-minute load average is recorded before and
after, since the machine may be shared. Every loop is bounded by a count or a deadline; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import functools
import http.client
import os
import platform
import random
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import cv2
import httpx
import numpy as np
import yaml

from vtpose.backends import ENV_BACKEND, VARIANTS, PoseBackend
from vtpose.backends.packaged import load_packaged_backend
from vtpose.errors import VtposeError
from vtpose.paths import MEDIA_DIR, PRETRAINED_WEIGHTS, PROJECT_ROOT
from vtpose.serving.decoding import decode_image
from vtpose.serving.limits import ServingLimits
from vtpose.serving.what_runs import PRETRAINED_VARIANT
from vtpose.testing.local_server import package_bento, start_bento, stop, wait_ready

IMAGE = MEDIA_DIR / "game-streamer-tips.jpg"
IMGSZ = 640
DEFAULT_HOME = PROJECT_ROOT / ".runtime" / "bentoml"
INT8_CALIBRATION = 100
ROUNDS = 60
CLIENTS = 8
BATCH = 8
PAUSE_S = 0.03
LEVELS = (1, 4, 8, 16)
# service/service.py opens the backend for MODEL_WORKERS (2) calls at once, a share of the cores each, and all of
# them for a call that runs alone; the in-process rows open it the same way.
SERVICE_MODEL_WORKERS = 2
# Issue 18's goals: /predict p50 within this many ms of in-process decode + predict_one and at most Ultralytics'
# own OpenVINO predict; 8 clients at least this share of 8 in-process threads; a batch's time per image at most
# the single p50.
GOAL_OVERHEAD_MS = 3.0
GOAL_VS_ULTRALYTICS = 1.0
GOAL_CLIENTS_SHARE = 0.8
# Issue 9's goals: served p50 at most half of raw predict's; 8 clients at least twice raw sequential throughput.
GOAL_LATENCY_RATIO = 0.5
GOAL_THROUGHPUT_RATIO = 2.0
# The results file's hand-kept history starts at this heading; a run rewrites only what is above it.
KEPT_HEADING = "## Earlier runs"

IN_PROCESS_THREADS = "in process"
LIVEZ = "`GET /livez`, kept-alive (the HTTP floor)"
KEPT = "`POST /predict`, kept-alive connection"
FRESH = "`POST /predict`, a new connection per request"
BATCHED = f"`POST /predict_batch` of {BATCH}, per image"
DECODE = "in process: `decode_image` (the service's decoder)"
IMDECODE = "in process: `cv2.imdecode`"
MODEL = "in process: backend `predict_one` (letterbox, model, decoding)"
DECODE_MODEL = "in process: `decode_image` + `predict_one`"
ULTRALYTICS_OV = "in process: Ultralytics' own OpenVINO FP32 export, `YOLO(dir).predict`"
RAW = "in process: raw `YOLO(pt).predict`"


def percentiles(samples: list[float], scale: float = 1000) -> dict[str, float]:
    """p50/p95/p99 of samples times `scale` (seconds to milliseconds by default)."""
    ordered = np.sort(np.asarray(samples or [0.0])) * scale
    return {f"p{q}": float(np.percentile(ordered, q)) for q in (50, 95, 99)}


def ultralytics_openvino_dir(home: Path) -> Path:
    """Ultralytics' own OpenVINO FP32 export of the checkpoint (`YOLO(pt).export(format="openvino")`), made once
    into HOME/ultralytics-openvino: what a CPU user would run without this project."""
    from ultralytics import YOLO
    from ultralytics.utils import checks

    target = home / "ultralytics-openvino" / f"{PRETRAINED_WEIGHTS.stem}_openvino_model"
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


def packaged_backend(home: Path, tag_info: dict[str, object], variant: str) -> PoseBackend:
    """The Bento's model files opened as the service opens them (checksums checked, the same thread split)."""
    name, _, version = str(tag_info["model_tag"]).partition(":")
    folder = home / "models" / name / version
    metadata = yaml.safe_load((folder / "model.yaml").read_text())["metadata"]
    cores = len(os.sched_getaffinity(0))
    return load_packaged_backend(
        folder, metadata, variant, threads=max(1, cores // SERVICE_MODEL_WORKERS), wide_threads=cores
    )


def build(home: Path, env: dict[str, str], variants: list[str]) -> dict[str, object]:
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
    return package_bento(PRETRAINED_WEIGHTS, version, home, *options, env=env)


@dataclass(frozen=True)
class Upload:
    """A multipart request body encoded once, and its Content-Type."""

    content: bytes
    content_type: str

    @classmethod
    def of(cls, field: str, count: int = 1) -> Upload:
        """`count` copies of the photo under `field`, as httpx encodes `files=`."""
        files = [(field, (IMAGE.name, IMAGE.read_bytes(), "image/jpeg"))] * count
        request = httpx.Request("POST", "http://127.0.0.1/", files=files)
        return cls(request.read(), request.headers["content-type"])


class Client:
    """An HTTP/1.1 client on one loopback port: a kept-alive connection, or a new one per request (`fresh`).

    Raises:
        SystemExit: an answer other than 200 (nothing is retried).
    """

    def __init__(self, port: int, fresh: bool = False, reopen_idle: bool = False) -> None:
        self.port, self.fresh, self.reopen_idle = port, fresh, reopen_idle
        self._connection: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, upload: Upload | None = None) -> int:
        """The answer's status, its body read to the end.

        With `reopen_idle`, a kept-alive connection the server closed while it sat idle (its keep-alive timeout;
        the rounds leave seconds between a server's turns while models warm up) is opened again and the request
        sent once more, as pooling clients do. Otherwise, and on a new connection, a failure raises.
        """
        reused = self._connection is not None
        if self._connection is None:
            self._connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        body, headers = (upload.content, {"Content-Type": upload.content_type}) if upload else (None, {})
        try:
            self._connection.request(method, path, body, headers)
            response = self._connection.getresponse()
            response.read()
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            self.close()
            if not (reused and self.reopen_idle):
                raise
            return self.request(method, path, upload)
        finally:
            if self.fresh:
                self.close()
        return response.status

    def get(self, path: str) -> int:
        return _ok(path, self.request("GET", path))

    def post(self, path: str, upload: Upload) -> int:
        return _ok(path, self.request("POST", path, upload))

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _ok(path: str, status: int) -> int:
    if status != 200:
        raise SystemExit(f"{path}: the server answered {status}")
    return status


@dataclass
class Server:
    """A running `bentoml serve` and the clients the rounds use."""

    label: str
    proc: subprocess.Popen[bytes]
    port: int
    kept: Client
    fresh: Client


@contextmanager
def serving(label: str, home: Path, tag: str, env: dict[str, str]) -> Iterator[Server]:
    """`bentoml serve TAG` from HOME on a free loopback port, once ready; its log is HOME/bench-serve-LABEL.log."""
    log_path = home / f"bench-serve-{label.replace(' ', '-')}.log"
    proc, port = start_bento(tag, {**env, "BENTOML_HOME": str(home)}, home, log_path)
    kept, fresh = Client(port, reopen_idle=True), Client(port, fresh=True)
    try:
        try:
            wait_ready(proc, f"http://127.0.0.1:{port}", log_path)
        except VtposeError as error:
            raise SystemExit(str(error)) from error
        yield Server(label, proc, port, kept, fresh)
    finally:
        kept.close()
        stop(proc)


def rounds(servers: list[Server], backend: PoseBackend, home: Path, count: int) -> dict[str, list[float]]:
    """Every candidate once per round, in turn, `count` rounds after 3 warm-up rounds; ms per call (per image
    for the batch), round by round."""
    from ultralytics import YOLO

    payload = IMAGE.read_bytes()
    policy = ServingLimits().image_policy()
    image = decode_image(payload, policy)
    single, batch = Upload.of("image"), Upload.of("images", BATCH)
    raw_pt = YOLO(str(PRETRAINED_WEIGHTS), task="pose")
    raw_ov = YOLO(str(ultralytics_openvino_dir(home)), task="pose")
    calls: dict[str, tuple[Callable[[], object], int]] = {
        DECODE: (lambda: decode_image(payload, policy), 1),
        IMDECODE: (lambda: cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_COLOR), 1),
        MODEL: (functools.partial(backend.predict_one, image), 1),
        DECODE_MODEL: (lambda: backend.predict_one(decode_image(payload, policy)), 1),
        ULTRALYTICS_OV: (functools.partial(raw_ov.predict, image, imgsz=IMGSZ, verbose=False, device="cpu"), 1),
        RAW: (functools.partial(raw_pt.predict, image, imgsz=IMGSZ, verbose=False, device="cpu"), 1),
    }
    for server in servers:
        prefix = f"{server.label}: " if len(servers) > 1 else ""
        calls[prefix + LIVEZ] = (functools.partial(server.kept.get, "/livez"), 1)
        calls[prefix + KEPT] = (functools.partial(server.kept.post, "/predict", single), 1)
        calls[prefix + FRESH] = (functools.partial(server.fresh.post, "/predict", single), 1)
        calls[prefix + BATCHED] = (functools.partial(server.kept.post, "/predict_batch", batch), BATCH)
    times: dict[str, list[float]] = {name: [] for name in calls}
    order, shuffle = list(calls), random.Random(0).shuffle
    for n in range(count + 3):  # the first 3 rounds warm up: predictors built, graphs compiled, connections made
        shuffle(order)  # no row always follows the same other (whose threads may still be winding down)
        for name in order:
            call = calls[name][0]
            time.sleep(PAUSE_S)
            t0 = time.perf_counter()
            call()
            elapsed = time.perf_counter() - t0
            if n >= 3:
                times[name].append(elapsed * 1000 / calls[name][1])
    return times


def threaded(backend: PoseBackend, threads: int, calls: int) -> float:
    """Seconds `threads` threads take to make `calls` calls in all, each decoding the upload and calling
    `predict_one`."""
    payload = IMAGE.read_bytes()
    policy = ServingLimits().image_policy()
    left = iter(range(calls))
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                if next(left, None) is None:
                    return
            backend.predict_one(decode_image(payload, policy))

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(worker) for _ in range(threads)]:
            future.result()
    return time.perf_counter() - start


def at_once(servers: list[Server], backend: PoseBackend, calls: int, bursts: int = 4) -> dict[str, float]:
    """Requests/s of CLIENTS concurrent clients per server and calls/s of CLIENTS in-process threads, `calls` each,
    in `bursts` bursts taking turns (so a change in the machine's load falls on all of them alike)."""
    per_burst = max(CLIENTS, calls // bursts)
    walls: dict[str, float] = dict.fromkeys([server.label for server in servers] + [IN_PROCESS_THREADS], 0.0)
    threaded(backend, CLIENTS, CLIENTS * 2)  # warm the narrow model's per-thread requests
    for server in servers:
        load(server.port, CLIENTS, CLIENTS * 2, None)  # warm the server's threads
    for _ in range(bursts):
        for server in servers:
            walls[server.label] += cast(float, load(server.port, CLIENTS, per_burst, None)["wall_s"])
        walls[IN_PROCESS_THREADS] += threaded(backend, CLIENTS, per_burst)
    return {name: per_burst * bursts / wall for name, wall in walls.items()}


def load(port: int, concurrency: int, requests: int | None, deadline_s: float | None) -> dict[str, object]:
    """`concurrency` client threads posting the photo to /predict until `requests` are done or the deadline."""
    upload = Upload.of("image")
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
        http = Client(port)
        try:
            while take():
                t0 = time.perf_counter()
                try:
                    status = http.request("POST", "/predict", upload)
                except OSError:
                    status = -1  # connection refused or reset: counted, never retried silently
                    http.close()
                elapsed = time.perf_counter() - t0
                with lock:
                    statuses[status] += 1
                    if status == 200:
                        times.append(elapsed)
        finally:
            http.close()

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        for future in [pool.submit(client) for _ in range(concurrency)]:
            future.result()
    wall = time.perf_counter() - start
    return {
        **percentiles(times), "rps": statuses[200] / wall, "statuses": dict(statuses), "n": issued, "wall_s": wall,
    }  # fmt: skip


def tree_rss_mb(root_pid: int) -> float:
    """Resident memory of the server process and all its descendants (arbiter + workers), MiB."""
    from vtpose.testing.local_server import process_tree_rss

    return process_tree_rss(root_pid) / 2**20


def run_soak(pid: int, port: int, seconds: float) -> dict[str, object]:
    """`seconds` of load at concurrency 16, with the server's RSS sampled every 10 s."""
    rss_start = tree_rss_mb(pid)
    samples: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(10):
            samples.append(tree_rss_mb(pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    soak = load(port, 16, None, seconds)
    done.set()
    sampler.join()
    soak["rss_start_mb"], soak["rss_end_mb"] = rss_start, tree_rss_mb(pid)
    soak["rss_samples_mb"] = samples
    print(f"soak: {soak}", file=sys.stderr)
    return soak


def fmt(row: Mapping[str, object], rate: str = "rps") -> str:
    tail = f" | {row[rate]:.2f}" if rate in row else " |"
    return f"{row['p50']:.1f} | {row['p95']:.1f} | {row['p99']:.1f}{tail}"


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def side_by_side_report(
    variant: str, times: dict[str, list[float]], labels: list[str], concurrent: dict[str, float]
) -> list[str]:
    """The issue-18 table, the goals and the ratios."""
    local = {name: percentiles(samples, scale=1) for name, samples in times.items()}
    count = len(times[MODEL])
    threads_rps = concurrent[IN_PROCESS_THREADS]
    lines = [
        f"## The service against its model ({variant}, side by side)",
        "",
        f"{count} rounds, every row taking its turn once a round, in an order shuffled each round "
        f"({PAUSE_S * 1000:.0f} ms apart, after 3 warm-up rounds). In process: the Bento's {variant} files opened as "
        "the service opens them, on the photo's bytes or the image decoded from them.",
        "",
        "| what | p50 ms | p95 ms | p99 ms |",
        "|---|---|---|---|",
        *(f"| {name} | {fmt(row)}" for name, row in local.items()),
        "",
        f"{CLIENTS} at once, in 4 bursts taking turns:",
        "",
        "| | calls/s |",
        "|---|---|",
        f"| in process: {CLIENTS} threads, each `decode_image` + `predict_one` | {threads_rps:.2f} |",
        *(f"| {label}: {CLIENTS} concurrent clients, `POST /predict` | {concurrent[label]:.2f} |" for label in labels),
        "",
    ]
    model, decode_model = local[MODEL]["p50"], local[DECODE_MODEL]["p50"]
    ultralytics, raw = local[ULTRALYTICS_OV]["p50"], local[RAW]["p50"]
    for label in labels:
        prefix = f"{label}: " if len(labels) > 1 else ""
        kept, fresh = local[prefix + KEPT]["p50"], local[prefix + FRESH]["p50"]
        per_image, rps = local[prefix + BATCHED]["p50"], concurrent[label]
        # Round by round, the two calls made within a second of each other: slow drifts of the load cancel out.
        paired = float(np.median(np.subtract(times[prefix + KEPT], times[DECODE_MODEL])))
        lines += [
            f"{label}:",
            f"- /predict p50 kept-alive {kept:.1f} ms = in-process decode + `predict_one` {decode_model:.1f} ms "
            f"**{kept - decode_model:+.1f} ms** (goal <= +{GOAL_OVERHEAD_MS:g}: "
            f"{verdict(kept - decode_model <= GOAL_OVERHEAD_MS)}); round by round, the median difference "
            f"{paired:+.1f} ms; a new connection per request {fresh:.1f} ms ({fresh - decode_model:+.1f} ms)",
            f"- /predict p50 / Ultralytics' OpenVINO predict **{kept / ultralytics:.2f}x** ({ultralytics:.1f} ms; "
            f"goal <= {GOAL_VS_ULTRALYTICS:g}x: {verdict(kept <= GOAL_VS_ULTRALYTICS * ultralytics)}); / in-process "
            f"decode + `predict_one` **{kept / decode_model:.2f}x**; / `predict_one` alone **{kept / model:.2f}x**; "
            f"/ raw `YOLO(pt).predict` **{kept / raw:.2f}x** ({raw:.1f} ms)",
            f"- {CLIENTS} clients / {CLIENTS} in-process threads **{rps / threads_rps:.2f}x** (goal >= "
            f"{GOAL_CLIENTS_SHARE:g}x: {verdict(rps >= GOAL_CLIENTS_SHARE * threads_rps)})",
            f"- /predict_batch of {BATCH}: {per_image:.1f} ms per image against the single p50 {kept:.1f} ms "
            f"(goal: at most it: {verdict(per_image <= kept)})",
        ]
    return [*lines, ""]


def main() -> None:
    """Run the comparisons and write the Markdown report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", nargs="+", default=[PRETRAINED_VARIANT], choices=VARIANTS,
                        help="variants served, in turn; the first is measured side by side")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="side-by-side rounds")
    parser.add_argument("--requests", type=int, default=48, help="requests per concurrency level")
    parser.add_argument("--soak", type=float, default=0, help="seconds of load at concurrency 16 (0: skip)")
    parser.add_argument("--home", type=Path, default=DEFAULT_HOME, help="BENTOML_HOME the Bento is built in")
    parser.add_argument("--baseline-home", type=Path, help="a BENTOML_HOME whose Bento is measured alongside")
    parser.add_argument("--baseline-tag", default="pose-service:latest", help="that Bento's tag")
    parser.add_argument("--no-sweep", action="store_true", help="only the side-by-side part")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "benchmarks" / "SERVE_RESULTS.md")
    args = parser.parse_args()

    home = args.home.resolve()
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true"}
    tag_info = build(home, env, args.backend)
    tag = str(tag_info["tag"])
    variant = args.backend[0]
    load_before = os.getloadavg()[0]

    labels = ["this tree"] + (["baseline"] if args.baseline_home else [])
    with ExitStack() as stack:
        servers = [stack.enter_context(serving(labels[0], home, tag, {**env, ENV_BACKEND: variant}))]
        if args.baseline_home:
            servers.append(stack.enter_context(serving(
                labels[1], args.baseline_home.resolve(), args.baseline_tag, {**env, ENV_BACKEND: variant}
            )))  # fmt: skip
        backend = packaged_backend(home, tag_info, variant)
        local = rounds(servers, backend, home, args.rounds)
        print(f"side by side: {local}", file=sys.stderr)
        concurrent = at_once(servers, backend, max(CLIENTS * 8, args.requests * 2))
        print(f"{CLIENTS} at once: {concurrent}", file=sys.stderr)
        del backend

    results: dict[str, dict[int, dict[str, object]]] = {}
    soaks: dict[str, dict[str, object]] = {}
    if not args.no_sweep:
        for served in args.backend:
            with serving(served, home, tag, {**env, ENV_BACKEND: served}) as server:
                load(server.port, 2, 6, None)  # warm the server's paths
                results[served] = {c: load(server.port, c, args.requests, None) for c in LEVELS}
                print(f"{served}: {results[served]}", file=sys.stderr)
                if args.soak > 0 and served == args.backend[0]:
                    soaks[labels[0]] = run_soak(server.proc.pid, server.port, args.soak)
        if args.soak > 0 and args.baseline_home:
            baseline = (labels[1], args.baseline_home.resolve(), args.baseline_tag, {**env, ENV_BACKEND: variant})
            with serving(*baseline) as server:
                load(server.port, 2, 6, None)
                soaks[labels[1]] = run_soak(server.proc.pid, server.port, args.soak)
    load_after = os.getloadavg()[0]

    command = f"--backend {' '.join(args.backend)} --rounds {args.rounds} --requests {args.requests}"
    command += f" --soak {args.soak:g}" if args.soak > 0 else ""
    command += " --baseline-home DIR" if args.baseline_home else ""
    command += " --no-sweep" if args.no_sweep else ""
    busy = max(load_before, load_after) > (os.cpu_count() or 1)
    quiet = "**NOT a quiet machine**: other jobs ran" if busy else "quiet machine"
    cpu = f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()})"
    report = [
        f"# Serving benchmark: `.venv/bin/python benchmarks/bench_serve.py {command}`",
        "",
        f"Bento `{tag}` (yolo11n-pose, 1 BentoML worker, VTPOSE_BACKEND per run), the photo {IMAGE.name} "
        f"(1280x720 JPEG, {IMAGE.stat().st_size // 1024} KB) at imgsz {IMGSZ}, loopback HTTP, multipart upload. "
        f"Machine: {cpu}, 1-minute load average {load_before:.1f} before, {load_after:.1f} after ({quiet}; on a "
        "shared machine read the ratios, measured side by side, rather than the absolute numbers). "
        f"Python {platform.python_version()}."
        + (
            f" Baseline: `{args.baseline_tag}` from another BENTOML_HOME, served the same way."
            if args.baseline_home
            else ""
        ),
        "",
        *side_by_side_report(variant, local, labels, concurrent),
    ]
    raw = percentiles(local[RAW], scale=1)
    if results:
        report += [
            f"## Served variants at concurrency {', '.join(map(str, LEVELS))} ({args.requests} requests per level)",
            "",
            "| | p50 ms | p95 ms | p99 ms | req/s |",
            "|---|---|---|---|---|",
            f"| {RAW.removeprefix('in process: ')}, sequential (the rounds above) | {fmt(raw)} "
            f"{1000 / raw['p50']:.2f} |",
        ]
        for served, rows in results.items():
            report += [f"| {served}: served /predict, concurrency {c} | {fmt(rows[c])} |" for c in LEVELS]
        report.append("")
        for served, rows in results.items():
            ratio_latency = float(rows[1]["p50"]) / raw["p50"]  # type: ignore[arg-type]
            ratio_tput = float(rows[8]["rps"]) * raw["p50"] / 1000  # type: ignore[arg-type]
            report.append(
                f"- {served}: served p50 at concurrency 1 / raw p50 **{ratio_latency:.2f}** (issue 9's goal <= "
                f"{GOAL_LATENCY_RATIO}); req/s with 8 clients / raw sequential predicts/s **{ratio_tput:.2f}x** "
                f"(goal >= {GOAL_THROUGHPUT_RATIO}x); status codes: "
                + ", ".join(f"c={c}: {rows[c]['statuses']}" for c in LEVELS)
            )
    if soaks:
        report += ["", f"## Soak: {args.soak:.0f} s at concurrency 16 ({args.backend[0]})"]
    for label, soak in soaks.items():
        report += [
            "",
            *([f"{label}:"] if len(soaks) > 1 else []),
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


if __name__ == "__main__":
    main()
