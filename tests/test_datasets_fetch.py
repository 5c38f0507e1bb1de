"""Downloading and extracting COCO-style archives from a real HTTP server on 127.0.0.1 (with Range support)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from vtpose.data import download, fetch_coco2017, safe_extract, validate_dataset
from vtpose.errors import VtposeError
from vtpose.paths import COCO_MINI_DIR


class ArchiveServer:
    """Serves `files` (URL path -> bytes) with HTTP Range; can cut a response short to simulate a dropped link."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.cut_after: dict[str, int] = {}  # path -> bytes to send before dropping the connection (once)
        self.honour_range = True
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                server.requests.append((self.path, self.headers.get("Range")))
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                start = 0
                rng = self.headers.get("Range")
                if rng and server.honour_range:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                payload = body[start:]
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                cut = server.cut_after.pop(self.path, None)
                if cut is not None:
                    self.wfile.write(payload[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def bytes_sent_for(self, path: str) -> list[str | None]:
        return [r for p, r in self.requests if p == path]


@pytest.fixture
def server() -> Iterator[ArchiveServer]:
    s = ArchiveServer()
    s.thread.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.fixture(scope="module")
def coco_archives() -> dict[str, bytes]:
    """COCO's layout in miniature: the real val2017 JSON cut to 3 images (two with persons), and those images."""
    coco = json.loads((COCO_MINI_DIR / "annotations" / "person_keypoints_val2017.json").read_text())
    with_persons = sorted({a["image_id"] for a in coco["annotations"] if a["num_keypoints"] > 0})[:2]
    negative = next(im["id"] for im in coco["images"] if im["id"] not in {a["image_id"] for a in coco["annotations"]})
    keep = {*with_persons, negative}
    coco["images"] = [im for im in coco["images"] if im["id"] in keep]
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] in keep]
    images = {
        f"val2017/{im['file_name']}": (COCO_MINI_DIR / "images" / "val2017" / im["file_name"]).read_bytes()
        for im in coco["images"]
    }
    return {
        "/annotations/annotations_trainval2017.zip": _zip(
            {"annotations/person_keypoints_val2017.json": json.dumps(coco).encode()}
        ),
        "/zips/val2017.zip": _zip(images),
    }


def _md5s(archives: dict[str, bytes]) -> dict[str, str]:
    return {Path(p).name: "md5:" + hashlib.md5(b).hexdigest() for p, b in archives.items()}


def test_fetch_coco2017_end_to_end_and_cached(server: ArchiveServer, coco_archives: dict[str, bytes], tmp_path: Path):
    server.files.update(coco_archives)
    kwargs = {"base_url": server.url, "splits": ("val2017",), "checksums": _md5s(coco_archives)}
    ds = fetch_coco2017(tmp_path / "ds", tmp_path / "cache", **kwargs)
    assert ds.splits == ["val2017"] and ds.train_split == ds.val_split == "val2017"
    assert len(list(ds.image_dir("val2017").iterdir())) == 3
    assert ds.info["splits"]["val2017"]["missing_images"] == 0
    _, report = validate_dataset(ds, tmp_path / "valid", on_error="fail")  # real data, intact after the trip
    assert report.splits["val2017"]["images"] == 3
    n_requests = len(server.requests)

    again = fetch_coco2017(tmp_path / "ds2", tmp_path / "cache", **kwargs)
    assert len(server.requests) == n_requests  # everything came from the cache
    assert sorted(os.listdir(again.image_dir("val2017"))) == sorted(os.listdir(ds.image_dir("val2017")))


def test_interrupted_download_resumes_with_range(
    server: ArchiveServer, coco_archives: dict[str, bytes], tmp_path: Path
):
    path = "/zips/val2017.zip"
    body = coco_archives[path]
    server.files[path] = body
    half = len(body) // 2
    server.cut_after[path] = half
    md5 = hashlib.md5(body).hexdigest()
    dest = tmp_path / "val2017.zip"

    with pytest.raises(VtposeError, match="run again to resume"):
        download(server.url + path, dest, md5=md5, retries=0)
    part = tmp_path / "val2017.zip.part"
    assert part.stat().st_size == half and not dest.exists()

    download(server.url + path, dest, md5=md5, retries=0)
    assert dest.read_bytes() == body
    assert not part.exists()
    assert server.bytes_sent_for(path) == [None, f"bytes={half}-"]  # the second request asked for the rest only


def test_retries_resume_within_one_call(server: ArchiveServer, coco_archives: dict[str, bytes], tmp_path: Path):
    path = "/zips/val2017.zip"
    body = coco_archives[path]
    server.files[path] = body
    server.cut_after[path] = 1000
    got = download(server.url + path, tmp_path / "a.zip", sha256=hashlib.sha256(body).hexdigest(), retries=2)
    assert got.read_bytes() == body
    assert server.bytes_sent_for(path) == [None, "bytes=1000-"]


def test_server_ignoring_range_restarts_cleanly(server: ArchiveServer, coco_archives: dict[str, bytes], tmp_path: Path):
    path = "/zips/val2017.zip"
    body = coco_archives[path]
    server.files[path] = body
    server.honour_range = False
    (tmp_path / "a.zip.part").write_bytes(body[:500])
    download(server.url + path, tmp_path / "a.zip", md5=hashlib.md5(body).hexdigest())
    assert (tmp_path / "a.zip").read_bytes() == body


def test_checksum_mismatch_fails_cleanly(server: ArchiveServer, coco_archives: dict[str, bytes], tmp_path: Path):
    path = "/annotations/annotations_trainval2017.zip"
    server.files[path] = coco_archives[path]
    wrong = "0" * 32
    got = hashlib.md5(coco_archives[path]).hexdigest()
    with pytest.raises(VtposeError) as err:
        download(server.url + path, tmp_path / "ann.zip", md5=wrong)
    message = str(err.value)
    assert server.url + path in message and wrong in message and got in message
    assert os.listdir(tmp_path) == []  # neither the file nor its .part


def test_fetch_refuses_zip_escaping_its_folder(server: ArchiveServer, coco_archives: dict[str, bytes], tmp_path: Path):
    server.files.update(coco_archives)
    server.files["/zips/val2017.zip"] = _zip({"val2017/ok.jpg": b"x", "../evil.txt": b"gotcha"})
    cache = tmp_path / "deep" / "cache"
    with pytest.raises(VtposeError, match=r"'\.\./evil\.txt' would be written outside"):
        fetch_coco2017(tmp_path / "deep" / "ds", cache, base_url=server.url, splits=("val2017",), checksums=None)
    assert not list(tmp_path.rglob("evil.txt"))
    assert not (cache / "extracted" / "val2017").exists()
    assert not (tmp_path / "deep" / "ds").exists()


@pytest.mark.parametrize(
    "members",
    [
        {"../evil.txt": b"x"},
        {"a/../../evil.txt": b"x"},
        {"/tmp/evil.txt": b"x"},
    ],
)
def test_safe_extract_refuses_zip_escapes(tmp_path: Path, members: dict[str, bytes]):
    archive = tmp_path / "a.zip"
    # writestr with a ZipInfo keeps the name verbatim (zipfile would otherwise strip a leading "/").
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("fine.txt", b"ok")
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data)
    with pytest.raises(VtposeError, match="outside the extraction folder"):
        safe_extract(archive, tmp_path / "out" / "x")
    assert os.listdir(tmp_path) == ["a.zip"]  # refused before anything was created


def test_safe_extract_refuses_zip_symlink_out(tmp_path: Path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = (0o120777) << 16  # a symlink member, its target stored as the content
        zf.writestr(info, "../../etc/passwd")
    with pytest.raises(VtposeError, match="points outside"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_safe_extract_tar(tmp_path: Path):
    good = tmp_path / "good.tar.gz"
    with tarfile.open(good, "w:gz") as tf:
        data = b"hello"
        info = tarfile.TarInfo("val2017/a.txt")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("val2017/b.txt")
        link.type, link.linkname = tarfile.SYMTYPE, "a.txt"  # an inside link is fine
        tf.addfile(link)
    safe_extract(good, tmp_path / "good")
    assert (tmp_path / "good" / "val2017" / "a.txt").read_bytes() == b"hello"

    bad = tmp_path / "bad.tar"
    with tarfile.open(bad, "w") as tf:
        link = tarfile.TarInfo("val2017/escape")
        link.type, link.linkname = tarfile.SYMTYPE, "../../outside"
        tf.addfile(link)
    with pytest.raises(VtposeError, match="points outside"):
        safe_extract(bad, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_safe_extract_replaces_atomically(tmp_path: Path):
    archive = tmp_path / "a.zip"
    archive.write_bytes(_zip({"new.txt": b"new"}))
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    safe_extract(archive, out)
    assert os.listdir(out) == ["new.txt"]
    assert sorted(os.listdir(tmp_path)) == ["a.zip", "out"]  # no temp folders left


def test_bad_checksum_spec_and_http_error(server: ArchiveServer, tmp_path: Path):
    with pytest.raises(VtposeError, match="checksum"):
        download(server.url + "/x.zip", tmp_path / "x.zip", md5="abc")
    with pytest.raises(VtposeError, match="HTTP 404"):
        download(server.url + "/missing.zip", tmp_path / "x.zip")
