"""Ingestion's container path: DVC-tracked data read straight from the DVC remote over HTTP, with no git checkout.

A real HTTP server on 127.0.0.1 serves the project's real DVC remote; the "checkout" is a folder holding only what
ZenML's code archive carries (`.dvc/config`, `data.dvc`), as in a step container.
"""

from __future__ import annotations

import functools
import shutil
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from vtpose.artifacts import sha256_file
from vtpose.data.dvc_remote import fetch_tracked
from vtpose.errors import VtposeError
from vtpose.paths import COCO_MINI_DIR, PRETRAINED_WEIGHTS, PROJECT_ROOT


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def remote_url() -> Iterator[str]:
    """The project's default DVC remote, served read-only on 127.0.0.1 (as scripts/containers/sources.sh does)."""
    from dvc.config import Config

    config = Config(str(PROJECT_ROOT / ".dvc"))
    url = config["remote"][config["core"]["remote"]]["url"]
    folder = (PROJECT_ROOT / ".dvc" / url).resolve() if not Path(url).is_absolute() else Path(url)
    if not folder.is_dir():
        pytest.skip(f"the DVC remote {folder} is not a local folder here")
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture()
def code_archive(tmp_path: Path) -> Path:
    """What a step container has of the project: the DVC metadata, no .git, no data/."""
    root = tmp_path / "app"
    (root / ".dvc").mkdir(parents=True)
    shutil.copy2(PROJECT_ROOT / ".dvc" / "config", root / ".dvc" / "config")
    shutil.copy2(PROJECT_ROOT / "data.dvc", root / "data.dvc")
    return root


def test_a_tracked_file_arrives_identical(remote_url: str, code_archive: Path, tmp_path: Path) -> None:
    dest = fetch_tracked("data/pretrained", remote_url, tmp_path / "pretrained", repo_root=code_archive)
    assert sha256_file(dest / PRETRAINED_WEIGHTS.name) == sha256_file(PRETRAINED_WEIGHTS)
    assert not (code_archive / "data").exists()  # read from the remote, not checked out


def test_a_tracked_folder_arrives_whole(remote_url: str, code_archive: Path, tmp_path: Path) -> None:
    dest = fetch_tracked("data/coco-person-mini", remote_url, tmp_path / "coco", repo_root=code_archive)
    local = sorted(p.relative_to(COCO_MINI_DIR) for p in COCO_MINI_DIR.rglob("*") if p.is_file())
    fetched = sorted(p.relative_to(dest) for p in dest.rglob("*") if p.is_file())
    assert fetched == local and len(fetched) > 200


def test_untracked_and_escaping_paths_are_clear_errors(remote_url: str, code_archive: Path, tmp_path: Path) -> None:
    with pytest.raises(VtposeError, match="not tracked by DVC"):
        fetch_tracked("models/nothing-here", remote_url, tmp_path / "x", repo_root=code_archive)
    with pytest.raises(VtposeError, match="does the path exist in the tracked folder"):
        fetch_tracked("data/nothing-here", remote_url, tmp_path / "w", repo_root=code_archive)
    with pytest.raises(VtposeError, match="relative to the project root"):
        fetch_tracked("../etc", remote_url, tmp_path / "y", repo_root=code_archive)


def test_an_unreachable_remote_says_which(code_archive: Path, tmp_path: Path) -> None:
    with pytest.raises(VtposeError, match=r"cannot fetch from DVC remote http://127\.0\.0\.1:9"):
        fetch_tracked("data/pretrained", "http://127.0.0.1:9", tmp_path / "z", repo_root=code_archive)
