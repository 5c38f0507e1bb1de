"""Real Bentos for the tests and benchmarks: packaged in a subprocess, then `bentoml serve TAG` on a free loopback
port as a child process, ready when /readyz answers 200.

One home for packaging into a given BENTOML_HOME, picking the port, waiting for readiness (bounded), naming the
log on failure and stopping the whole process group.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from vtpose.errors import VtposeError

LOOPBACK = "127.0.0.1"
READY_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 20.0
_LOG_TAIL_CHARS = 4000


PACKAGE_TIMEOUT_S = 600.0


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


@contextlib.contextmanager
def serve_bento(tag: str, env: Mapping[str, str], cwd: Path, log_path: Path, host: str | None = LOOPBACK,
                timeout_s: float = READY_TIMEOUT_S) -> Iterator[str]:  # fmt: skip
    """A ready Bento server for the `with` block; yields its base URL (always http://127.0.0.1:PORT)."""
    proc, port = start_bento(tag, env, cwd, log_path, host=host)
    try:
        url = f"http://{LOOPBACK}:{port}"
        wait_ready(proc, url, log_path, timeout_s)
        yield url
    finally:
        stop(proc)


def _tail(log_path: Path) -> str:
    return log_path.read_text(errors="replace")[-_LOG_TAIL_CHARS:] if log_path.is_file() else "(no log)"
