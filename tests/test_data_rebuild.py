"""Rebuilding data/ from its public originals, served on 127.0.0.1 from a temporary folder (issue 11).

The served "originals" are made from the pulled data/: every file that data/ copies verbatim, at its URL's path,
and a small COCO annotations archive holding the real person_keypoints records plus records that must be left out.
A rebuild must give data/ byte for byte, and a DVC repository with the project's data.dvc must read it as pulled.
"""

from __future__ import annotations

import csv
import filecmp
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import threading
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

import pytest

from vtpose.data.originals import (
    SOURCES_DIR,
    check_data,
    load_originals,
    load_pins,
    mirror_url,
    rebuild_data,
    register_with_dvc,
)
from vtpose.errors import VtposeError
from vtpose.paths import DATA_DIR, PROJECT_ROOT

ARCHIVE = "coco/annotations_trainval2017.zip"
CHECKPOINT = "pretrained/yolo11n-pose.pt"
VTPOSE = Path(sys.executable).with_name("vtpose")


class FolderServer:
    """Serves the files under `root` with HTTP Range; can cut one response short or serve other bytes for a path."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.cut_after: dict[str, int] = {}  # path -> bytes to send before dropping the connection (once)
        self.override: dict[str, bytes] = {}  # path -> the bytes to serve instead of the file's
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                with server.lock:
                    server.requests.append((self.path, self.headers.get("Range")))
                    cut = server.cut_after.pop(self.path, None)
                file = server.root / self.path.lstrip("/")
                body = server.override.get(self.path)
                if body is None:
                    if ".." in self.path or not file.is_file():
                        self.send_error(404)
                        return
                    body = file.read_bytes()
                start = int(self.headers.get("Range", "bytes=0-").removeprefix("bytes=").split("-")[0])
                if start >= len(body) > 0:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                payload = body[start : start + cut] if cut is not None else body[start:]
                self.wfile.write(payload)
                if cut is not None:
                    self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def ranges_for(self, path: str) -> list[str | None]:
        return [r for p, r in self.requests if p == path]


@dataclass
class Originals:
    server: FolderServer
    sources: Path  # a copy of datasources/ whose archive row pins the test archive
    paths: dict[str, str]  # original name -> its path on the server


def _with_extra_records(coco: dict) -> dict:
    """The real records, plus an image and annotations that are not pinned, in an order the rebuild must undo."""
    extra_image = {**coco["images"][0], "id": 999_000_001, "file_name": "999000001.jpg"}
    extra_on_pinned = {**coco["annotations"][0], "id": 999_000_002}  # a pinned image, an unpinned annotation
    extra_on_extra = {**coco["annotations"][0], "id": 999_000_003, "image_id": extra_image["id"]}
    return {
        **coco,
        "images": [extra_image, *reversed(coco["images"])],
        "annotations": [extra_on_extra, *reversed(coco["annotations"]), extra_on_pinned],
    }


@pytest.fixture(scope="module")
def originals(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Originals]:
    root = tmp_path_factory.mktemp("originals")
    www = root / "www"
    server = FolderServer(www)
    paths = {}
    for original in load_originals():
        url = urlparse(mirror_url(original.url, server.url))
        paths[original.name] = url.path
        if original.dest:
            (www / url.path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(DATA_DIR / original.dest, www / url.path.lstrip("/"))
    records = json.loads((SOURCES_DIR / "coco-person-mini-records.json").read_text())
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("annotations/instances_val2017.json", "{}")  # the official archive has other members too
        for out in records["outputs"]:
            coco = json.loads((DATA_DIR / out["dest"]).read_text())
            zf.writestr(out["member"], json.dumps(_with_extra_records(coco)))
    archive = www / paths[ARCHIVE].lstrip("/")
    archive.parent.mkdir(parents=True, exist_ok=True)
    archive.write_bytes(buf.getvalue())

    sources = root / "datasources"
    shutil.copytree(SOURCES_DIR, sources)
    with open(SOURCES_DIR / "originals.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        if row["name"] == ARCHIVE:
            row["sha256"], row["bytes"] = hashlib.sha256(buf.getvalue()).hexdigest(), str(len(buf.getvalue()))
    with open(sources / "originals.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    yield Originals(server, sources, paths)
    server.httpd.shutdown()
    server.httpd.server_close()


def _all_files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def _assert_same_tree(got: Path, expected: Path) -> None:
    assert _all_files(got) == _all_files(expected)
    _, mismatch, errors = filecmp.cmpfiles(got, expected, sorted(_all_files(expected)), shallow=False)
    assert mismatch == [] and errors == []


def test_clean_rebuild_equals_dvc_pull_byte_for_byte(
    originals: Originals, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dvc.repo import Repo

    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    repo = tmp_path / "clone"
    Repo.init(str(repo), no_scm=True).close()
    shutil.copyfile(PROJECT_ROOT / "data.dvc", repo / "data.dvc")
    originals.server.requests.clear()

    report = rebuild_data(repo / "data", tmp_path / "cache", originals.sources, mirror=originals.server.url)

    _assert_same_tree(repo / "data", DATA_DIR)
    assert sorted(report.written) == sorted(load_pins()) and len(report.downloaded) == len(originals.paths)
    assert sorted(p for p, _ in originals.server.requests) == sorted(originals.paths.values())  # each one once
    assert sorted(os.listdir(repo)) == [
        ".dvc",
        ".dvcignore",
        "data",
        "data.dvc",
    ]  # no temporary folder left beside data/
    register_with_dvc(repo)
    with Repo(str(repo)) as dvc:
        assert dvc.status() == {}  # what `dvc status` says after `dvc pull`
    assert (repo / "data.dvc").read_bytes() == (PROJECT_ROOT / "data.dvc").read_bytes()

    again = rebuild_data(repo / "data", tmp_path / "cache", originals.sources, mirror=originals.server.url)
    assert again.written == [] and f"already holds the {len(load_pins())} pinned files" in again.summary()
    assert len(originals.server.requests) == len(originals.paths)  # a complete data/ needs no network


def _vtpose_data_rebuild(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """`vtpose data rebuild` as `make data` runs it: the installed command, in a subprocess."""
    return subprocess.run(
        [str(VTPOSE), "data", "rebuild", *map(str, args)], capture_output=True, text=True, timeout=600, check=False
    )


def test_the_command_leaves_a_complete_data_dir_alone_and_says_so(originals: Originals, tmp_path: Path) -> None:
    complete = tmp_path / "data"
    shutil.copytree(DATA_DIR, complete)
    originals.server.requests.clear()
    result = _vtpose_data_rebuild(
        "--data", complete, "--cache", tmp_path / "cache", "--mirror", originals.server.url, "--no-dvc"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"{complete} already holds the {len(load_pins())} pinned files (datasources/data.sha256); nothing to do\n"
    )
    assert originals.server.requests == []


def test_the_command_says_in_one_line_that_the_pull_and_the_rebuild_failed(
    originals: Originals, tmp_path: Path
) -> None:
    """The real datasources/ pin the official annotations archive; the server's is the small test one."""
    dest = tmp_path / "data"
    result = _vtpose_data_rebuild(
        "--data", dest, "--cache", tmp_path / "cache", "--mirror", originals.server.url, "--after-failed-pull"
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout == "" and result.stderr.count("\n") == 1, result.stderr
    note, _, error = result.stderr.strip().partition("; rebuilding data/ from its public originals failed: ")
    # The project's default remote, by name and by the URL DVC resolves it to.
    assert note.startswith("dvc pull from DVC remote 'sample' (/") and note.endswith("/dvc-storage) failed"), note
    assert error.startswith(f"{ARCHIVE}: {originals.server.url}{originals.paths[ARCHIVE]}: checksum mismatch"), error
    assert not dest.exists()


def test_an_interrupted_download_resumes(originals: Originals, tmp_path: Path) -> None:
    path = originals.paths[CHECKPOINT]
    size = (DATA_DIR / CHECKPOINT).stat().st_size
    originals.server.requests.clear()
    originals.server.cut_after[path] = size // 3
    dest, cache = tmp_path / "data", tmp_path / "cache"

    with pytest.raises(VtposeError, match="run again to resume") as err:
        rebuild_data(dest, cache, originals.sources, mirror=originals.server.url, retries=0)
    assert str(err.value).startswith(f"{CHECKPOINT}: {originals.server.url}{path}")
    assert not dest.exists() and os.listdir(tmp_path) == ["cache"]  # nothing half-written
    assert (cache / f"{CHECKPOINT}.part").stat().st_size == size // 3

    report = rebuild_data(dest, cache, originals.sources, mirror=originals.server.url, retries=0)
    _assert_same_tree(dest, DATA_DIR)
    assert originals.server.ranges_for(path) == [None, f"bytes={size // 3}-"]  # the second asked for the rest only
    assert CHECKPOINT in report.downloaded
    # Whatever the first call finished came from the cache (what it had not started yet, it fetched now).
    asked = Counter(p for p, _ in originals.server.requests)
    assert asked == Counter({**dict.fromkeys(originals.paths.values(), 1), path: 2})


def test_a_file_that_does_not_match_its_checksum_is_refused(originals: Originals, tmp_path: Path) -> None:
    name = "media/game-streamer-tips.jpg"
    path = originals.paths[name]
    good = (DATA_DIR / name).read_bytes()
    bad = good[:1000] + bytes([good[1000] ^ 0xFF]) + good[1001:]
    originals.server.override[path] = bad
    dest, cache = tmp_path / "data", tmp_path / "cache"
    try:
        with pytest.raises(VtposeError) as err:
            rebuild_data(dest, cache, originals.sources, mirror=originals.server.url, retries=0)
    finally:
        del originals.server.override[path]
    message = str(err.value)
    pinned = next(o.sha256 for o in load_originals() if o.name == name)
    assert message.startswith(f"{name}: {originals.server.url}{path}: checksum mismatch")
    assert pinned in message and hashlib.sha256(bad).hexdigest() in message
    assert not dest.exists() and os.listdir(tmp_path) == ["cache"]
    assert not list((cache / "media").glob("game-streamer-tips.jpg*"))  # neither the file nor a .part


@pytest.mark.parametrize(
    ("edit", "error"),
    [
        (lambda ids: ids.pop(), r"person_keypoints_val2017\.json: rebuilt with sha256 [0-9a-f]{64}, pinned"),
        (lambda ids: ids.append(123_456_789), r"lacks pinned image ids \[\] / annotation ids \[123456789\]"),
    ],
    ids=["a record left out", "a record the archive lacks"],
)
def test_a_rebuild_that_would_differ_writes_nothing(
    originals: Originals, tmp_path: Path, edit: Callable[[list[int]], object], error: str
) -> None:
    sources = tmp_path / "datasources"
    shutil.copytree(originals.sources, sources)
    records_file = sources / "coco-person-mini-records.json"
    records = json.loads(records_file.read_text())
    edit(records["outputs"][1]["annotation_ids"])  # val2017
    records_file.write_text(json.dumps(records))
    dest = tmp_path / "data"
    with pytest.raises(VtposeError, match=error):
        rebuild_data(dest, tmp_path / "cache", sources, mirror=originals.server.url)
    assert sorted(os.listdir(tmp_path)) == ["cache", "datasources"]  # no data/, no temporary folder


def test_a_partial_data_dir_is_completed_and_a_changed_file_refused(originals: Originals, tmp_path: Path) -> None:
    dest = tmp_path / "data"
    shutil.copytree(DATA_DIR, dest)
    gone = ["coco-person-mini/annotations/person_keypoints_val2017.json", "media/dance.avi", "README.md"]
    for rel in gone:
        (dest / rel).unlink()
    (dest / "my-notes.txt").write_text("mine")  # not pinned: left alone
    report = rebuild_data(dest, tmp_path / "cache", originals.sources, mirror=originals.server.url)
    assert report.written == sorted(gone) and sorted(report.downloaded) == [ARCHIVE, "media/dance.avi"]
    assert check_data(dest, load_pins()) == ([], []) and (dest / "my-notes.txt").read_text() == "mine"

    changed = dest / "mpii-sample" / "annotations" / "test_mpii.json"
    changed.write_text("[]")
    (dest / "media" / "dance.avi").unlink()
    with pytest.raises(VtposeError, match=r"test_mpii\.json: differs from its pin"):
        rebuild_data(dest, tmp_path / "cache", originals.sources, mirror=originals.server.url)
    assert changed.read_text() == "[]" and not (dest / "media" / "dance.avi").exists()  # nothing overwritten


def test_the_pins_describe_the_pulled_data() -> None:
    pins = load_pins()
    assert _all_files(DATA_DIR) == set(pins)  # a change of data/ (dvc) needs new pins, and this says so
    assert check_data(DATA_DIR, pins) == ([], [])
    originals = load_originals()
    for original in originals:
        if original.dest:
            assert pins[original.dest] == original.sha256
            assert (DATA_DIR / original.dest).stat().st_size == original.bytes
        assert original.confirmed.startswith(("git-blob:", "no: "))
    with open(DATA_DIR / "coco-person-mini" / "MANIFEST.csv", newline="") as f:
        manifest = {f"coco-person-mini/{r['file']}": (r["sha256"], int(r["bytes"])) for r in csv.DictReader(f)}
    assert manifest == {o.dest: (o.sha256, o.bytes) for o in originals if o.dest.startswith("coco-person-mini/")}


def test_mirror_url_keeps_the_host_as_the_first_folder() -> None:
    url = "http://images.cocodataset.org/annotations/annotations_trainval2017.zip"
    assert mirror_url(url, None) == url
    assert mirror_url(url, "http://127.0.0.1:8000/") == (
        "http://127.0.0.1:8000/images.cocodataset.org/annotations/annotations_trainval2017.zip"
    )
