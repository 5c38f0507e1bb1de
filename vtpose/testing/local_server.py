"""Real Bentos for the tests and benchmarks: packaged in a subprocess, then `bentoml serve TAG` on a free loopback
port as a child process, ready when /readyz answers 200.

One home for packaging into a given BENTOML_HOME, picking the port, waiting for readiness (bounded), naming the
log on failure and stopping the whole process group.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vtpose.artifacts import sha256_file
from vtpose.errors import VtposeError
from vtpose.paths import COCO_MINI_DIR, PRETRAINED_WEIGHTS, PROJECT_ROOT, atomic_path
from vtpose.serving.what_runs import PRETRAINED_VARIANT

LOOPBACK = "127.0.0.1"
READY_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 20.0
_LOG_TAIL_CHARS = 4000


PACKAGE_TIMEOUT_S = 600.0
# What `make studio` packages with nothing in production (`vtpose model bento`): the pretrained checkpoint with its
# OpenVINO IRs, INT8 calibrated on train images, and INT8 served. A few images are enough for the tests (the
# command takes up to DEFAULT_CALIBRATION_SIZE: calibration is the slow part).
STUDIO_VARIANT = PRETRAINED_VARIANT
STUDIO_CALIBRATION_DIR = COCO_MINI_DIR / "images" / "train2017"
STUDIO_CALIBRATION_IMAGES = 10
_INFO_FILE = "bento-info.json"
_FINGERPRINT_KEY = "sources_sha256"


def package_bento(weights: Path, model_version: str, home: Path, *options: str,
                  env: Mapping[str, str] | None = None) -> dict[str, Any]:  # fmt: skip
    """`vtpose model package WEIGHTS --model-version V --json OPTIONS` with BENTOML_HOME=`home`.

    A subprocess, because BentoML reads its home once, at import. Returns the BentoInfo JSON plus "home" and "env"
    (the environment to serve it with).

    Raises:
        VtposeError: packaging failed; the message ends with its stderr's tail.
    """
    env = {**(env if env is not None else os.environ), "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true"}
    command = [
        sys.executable,
        "-m",
        "vtpose.cli",
        "model",
        "package",
        str(weights),
        "--model-version",
        model_version,
        "--json",
    ]
    out = subprocess.run(
        [*command, *options], env=env, capture_output=True, text=True, check=False, timeout=PACKAGE_TIMEOUT_S
    )
    if out.returncode != 0:
        raise VtposeError(f"packaging {weights} failed ({out.returncode}):\n{out.stderr[-_LOG_TAIL_CHARS:]}")
    return {**json.loads(out.stdout), "home": home, "env": env}


def studio_bento(root: Path, calibration_images: int = STUDIO_CALIBRATION_IMAGES) -> dict[str, Any]:
    """The Bento `make studio` serves (`STUDIO_VARIANT`), packaged once under `root` and reused while the code it
    carries is unchanged.

    Test modules that each start a studio server share one packaging this way: `root` is a session's temporary
    folder, and the BentoInfo JSON written there marks it done. A benchmark keeps `root` between runs; the
    fingerprint of the files the Bento copies (`bento_sources_fingerprint`), kept in that JSON, repackages it when
    the pages or the service changed, instead of serving the old ones. The "env" returned serves `STUDIO_VARIANT`.

    Raises:
        VtposeError: packaging failed (the message ends with its stderr's tail).
    """
    from vtpose.backends import ENV_BACKEND

    info_file, home = root / _INFO_FILE, root / "bentoml"
    fingerprint = bento_sources_fingerprint()
    info = json.loads(info_file.read_text()) if info_file.is_file() else {}
    if info.get(_FINGERPRINT_KEY) != fingerprint:
        home.mkdir(parents=True, exist_ok=True)
        options = ("--openvino", "--int8-images", str(STUDIO_CALIBRATION_DIR),
                   "--int8-size", str(calibration_images), "--backend", STUDIO_VARIANT)  # fmt: skip
        packaged = package_bento(PRETRAINED_WEIGHTS, "pretrained", home, *options)
        info = {k: v for k, v in packaged.items() if k not in ("home", "env")} | {_FINGERPRINT_KEY: fingerprint}
        with atomic_path(info_file) as temporary:
            temporary.write_text(json.dumps(info))
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true", ENV_BACKEND: STUDIO_VARIANT}
    return {**info, "home": home, "env": env}


def bento_sources_fingerprint(project_root: Path = PROJECT_ROOT) -> str:
    """SHA-256 over the paths and checksums of the files a Bento copies from the project (`BENTO_INCLUDE`)."""
    from vtpose.serving.packaging import BENTO_INCLUDE

    files: set[Path] = set()
    for pattern in BENTO_INCLUDE:
        # Path.glob's trailing "**" yields folders only (Python 3.11): their files are "**/*".
        matched = project_root.glob(pattern + "/*" if pattern.endswith("**") else pattern)
        files.update(path for path in matched if path.is_file() and "__pycache__" not in path.parts)
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(f"{path.relative_to(project_root).as_posix()}\0{sha256_file(path)}\n".encode())
    return digest.hexdigest()


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def bentoml_command(tag: str, port: int, host: str | None = LOOPBACK) -> list[str]:
    """`bentoml serve TAG --port N` from this interpreter's environment; `host=None` keeps the service's bind."""
    command = [str(Path(sys.executable).with_name("bentoml")), "serve", tag, "--port", str(port)]
    return [*command, "--host", host] if host is not None else command


def start_bento(tag: str, env: Mapping[str, str], cwd: Path, log_path: Path, port: int | None = None,
                host: str | None = LOOPBACK) -> tuple[subprocess.Popen[bytes], int]:  # fmt: skip
    """Start `bentoml serve` in its own process group, output to `log_path`; the process and its port."""
    port = port or free_port()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            bentoml_command(tag, port, host),
            env=dict(env),
            cwd=cwd,  # not the project folder: the server must run from the Bento, not from the source tree
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return proc, port


def wait_ready(proc: subprocess.Popen[bytes], url: str, log_path: Path, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Poll `url`/readyz until it answers 200.

    Raises:
        VtposeError: the server exited, or was not ready within `timeout_s`; the message ends with its log's tail.
    """
    import httpx

    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise VtposeError(f"bentoml serve exited with {proc.returncode}:\n{_tail(log_path)}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise VtposeError(f"bentoml serve not ready in {timeout_s:.0f} s:\n{_tail(log_path)}")
        time.sleep(0.5)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group (BentoML's workers included), SIGKILL if it lingers."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@dataclass(frozen=True)
class RunningBento:
    """A ready `bentoml serve`: its base URL and the pid of the `bentoml serve` process (its workers' ancestor)."""

    url: str
    pid: int

    def rss_bytes(self) -> int:
        """Resident memory of the whole server, bytes: the supervisor and every worker it started."""
        return process_tree_rss(self.pid)


@contextlib.contextmanager
def running_bento(tag: str, env: Mapping[str, str], cwd: Path, log_path: Path, host: str | None = LOOPBACK,
                  timeout_s: float = READY_TIMEOUT_S) -> Iterator[RunningBento]:  # fmt: skip
    """A ready Bento server for the `with` block (always on http://127.0.0.1:PORT), stopped after it."""
    proc, port = start_bento(tag, env, cwd, log_path, host=host)
    try:
        url = f"http://{LOOPBACK}:{port}"
        wait_ready(proc, url, log_path, timeout_s)
        yield RunningBento(url, proc.pid)
    finally:
        stop(proc)


@contextlib.contextmanager
def serve_bento(tag: str, env: Mapping[str, str], cwd: Path, log_path: Path, host: str | None = LOOPBACK,
                timeout_s: float = READY_TIMEOUT_S) -> Iterator[str]:  # fmt: skip
    """A ready Bento server for the `with` block; yields its base URL (always http://127.0.0.1:PORT)."""
    with running_bento(tag, env, cwd, log_path, host, timeout_s) as server:
        yield server.url


def process_tree_rss(pid: int) -> int:
    """The summed resident set size (bytes) of process `pid` and all its descendants, read from /proc.

    By descent, not by process group: BentoML starts each worker in a session of its own.
    """
    page = os.sysconf("SC_PAGE_SIZE")
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # After the command name (which may hold spaces and parentheses): state, ppid, ...
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
    tree, frontier = {pid}, [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier and child not in tree]
        tree.update(children)
        frontier = children
    total = 0
    for member in tree:
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int(Path(f"/proc/{member}/statm").read_text().split()[1]) * page  # its second field: RSS pages
    return total


def _tail(log_path: Path) -> str:
    return log_path.read_text(errors="replace")[-_LOG_TAIL_CHARS:] if log_path.is_file() else "(no log)"
