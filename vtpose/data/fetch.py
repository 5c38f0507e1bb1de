"""Download COCO 2017 by URL: resumable, cached, checksum-verified downloads and safe archive extraction."""

from __future__ import annotations

import gzip
import hashlib
import http.client
import lzma
import os
import re
import stat
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import TypedDict
from urllib.parse import urlparse

from vtpose.artifacts import PoseDataset
from vtpose.data._fs import atomic_dir, link_or_copy
from vtpose.data.coco import SplitSource, ingest_coco_splits
from vtpose.errors import VtposeError

__all__ = ["COCO2017_BASE_URL", "COCO2017_CHECKSUMS", "download", "fetch_coco2017", "safe_extract"]

COCO2017_BASE_URL = "http://images.cocodataset.org"
# The MD5 sums COCO's archives are published and checked against in many places (e.g. PaddleDetection's
# download table, mmdetection-style download scripts): these files never change, so they are constants.
# Values are "algorithm:hex"; pass `checksums=None` to skip verification, or your own map for a mirror.
COCO2017_CHECKSUMS: dict[str, str] = {
    "annotations_trainval2017.zip": "md5:f4bbac642086de4f52a3fdda2de5fa2c",
    "train2017.zip": "md5:cced6f7f71b7629ddf16f17bbcfab6b2",
    "val2017.zip": "md5:442b8da7639aecaf257c1dceb8ba8c80",
}
ANNOTATIONS_ARCHIVE = "annotations/annotations_trainval2017.zip"
_HASHES = {"md5": 32, "sha1": 40, "sha256": 64}
_CHUNK = 1 << 20  # 1 MiB reads: large enough for throughput, small enough to lose little on interruption


def _parse_checksum(spec: str) -> tuple[str, str]:
    """'md5:abc..' / 'sha256:..' / bare hex (algorithm from its length) -> (algorithm, lowercase hex)."""
    algo, _, hexdigest = spec.rpartition(":")
    hexdigest = hexdigest.strip().lower()
    algo = algo.lower() or next((a for a, n in _HASHES.items() if n == len(hexdigest)), "")
    if algo not in _HASHES or len(hexdigest) != _HASHES[algo] or not re.fullmatch(r"[0-9a-f]+", hexdigest):
        raise VtposeError(f"checksum {spec!r}: expected 'md5:<32 hex>', 'sha1:<40 hex>' or 'sha256:<64 hex>'.")
    return algo, hexdigest


def _hash_file(path: Path, algo: str) -> str:
    digest = hashlib.new(algo)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _stat_key(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size} {st.st_mtime_ns}"


def _fetch_once(url: str, part: Path, timeout: float) -> None:
    """One HTTP request that appends to `part` from its current size (Range), or restarts it.

    Raises:
        OSError / http.client.HTTPException / urllib.error.URLError: transport problems worth a retry.
        VtposeError: an HTTP error status other than 416 (retrying would not help).
    """
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:
            # Range past the end: the part is either complete or longer than the file; Content-Range says which.
            total = re.fullmatch(r"bytes \*/(\d+)", e.headers.get("Content-Range", "") or "")
            if total and int(total.group(1)) == offset:
                return
            part.unlink()
            raise http.client.HTTPException(f"stale partial file for {url}, restarting") from e
        raise VtposeError(f"{url}: HTTP {e.code} {e.reason}; check the URL (base_url in the config).") from e
    with response:
        expected = response.headers.get("Content-Length")
        if response.status == 206:
            match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != offset:
                raise http.client.HTTPException(f"{url}: server answered a different range, restarting")
            mode = "ab"
        else:  # 200: the server ignored Range, so the body is the whole file
            mode, offset = "wb", 0
        received = 0
        with open(part, mode) as f:
            while chunk := response.read(_CHUNK):
                f.write(chunk)
                received += len(chunk)
        if expected is not None and received < int(expected):
            raise http.client.IncompleteRead(b"", int(expected) - received)


def download(
    url: str,
    dest: Path,
    sha256: str | None = None,
    md5: str | None = None,
    cache_dir: Path | None = None,
    retries: int = 3,
    timeout: float = 60.0,
) -> Path:
    """Download `url` to `dest`, resuming an interrupted download and skipping a finished one.

    Bytes go to `<file>.part`, which only becomes `<file>` after the whole body arrived and its checksum matched,
    so an existing `<file>` is always complete. An interrupted transfer (dropped connection, timeout, a crash of
    this process) leaves the `.part`; the next attempt (a retry here, or a later call) asks for the rest with an
    HTTP Range request; a server that ignores Range sends the whole file again and the part is rewritten.
    A verified file gets a `<file>.verified` note (checksum, size, mtime) so a cache hit does not re-hash 18 GB.

    Args:
        url: http(s) URL.
        dest: the file to produce.
        sha256 / md5: expected hex digest (at most one); None skips verification.
        cache_dir: when given, the file is kept as `cache_dir/<name in URL>` and `dest` is a hard link or copy of
            it, so several datasets share one download.
        retries: extra attempts after a transport error, each resuming where the last one stopped.
        timeout: seconds without data before an attempt fails.

    Returns:
        `dest`.

    Raises:
        VtposeError: an HTTP error, still-failing transport after `retries`, or a checksum mismatch (the message
            names the URL, the expected and the actual digest; the bad file is removed).
    """
    if sha256 and md5:
        raise VtposeError(f"{url}: give sha256 or md5, not both.")
    expected = _parse_checksum(f"sha256:{sha256}") if sha256 else _parse_checksum(f"md5:{md5}") if md5 else None
    dest = Path(dest)
    target = Path(cache_dir) / PurePosixPath(urlparse(url).path).name if cache_dir is not None else dest
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    note = target.with_name(target.name + ".verified")

    if target.is_file():
        if expected is None:
            return _publish(target, dest)
        key = f"{expected[0]}:{expected[1]} {_stat_key(target)}"
        if note.is_file() and note.read_text() == key:
            return _publish(target, dest)
        if _hash_file(target, expected[0]) == expected[1]:
            note.write_text(key)
            return _publish(target, dest)
        # A corrupted cache entry: drop it and download again rather than fail on a file we can replace.
        target.unlink()
        note.unlink(missing_ok=True)

    for attempt in range(retries + 1):
        try:
            _fetch_once(url, part, timeout)
            break
        except (OSError, http.client.HTTPException, urllib.error.URLError) as e:
            if attempt == retries:
                size = part.stat().st_size if part.exists() else 0
                raise VtposeError(
                    f"{url}: download failed after {retries + 1} attempt(s) ({type(e).__name__}: {e}); "
                    f"{size} bytes kept in {part}; run again to resume."
                ) from e
            time.sleep(min(2.0**attempt, 10.0) * 0.1)
    if expected is not None:
        got = _hash_file(part, expected[0])
        if got != expected[1]:
            part.unlink()
            raise VtposeError(
                f"{url}: checksum mismatch: expected {expected[0]} {expected[1]}, got {got}; the download was "
                "removed. Retry, or fix the checksum in the config if the file legitimately changed."
            )
    os.replace(part, target)
    if expected is not None:
        note.write_text(f"{expected[0]}:{expected[1]} {_stat_key(target)}")
    return _publish(target, dest)


def _publish(cached: Path, dest: Path) -> Path:
    if cached.resolve() != dest.resolve():
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.unlink(missing_ok=True)
        link_or_copy(cached, dest)
    return dest


def _check_member_name(name: str, archive: Path) -> None:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or re.match(r"^[A-Za-z]:", name) or ".." in path.parts:
        raise VtposeError(
            f"{archive}: member {name!r} would be written outside the extraction folder; refusing to extract "
            "this archive (it is corrupt or malicious). Delete it and download it again from a trusted source."
        )


def _check_link_target(name: str, target: str, archive: Path) -> None:
    # A link is resolved relative to the folder holding it; it must land inside the extraction folder.
    resolved = PurePosixPath(name).parent / target.replace("\\", "/")
    depth = 0
    for part in resolved.parts:
        depth += -1 if part == ".." else 0 if part == "." else 1
        if depth < 0:
            break
    if target.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", target) or depth < 0:
        raise VtposeError(
            f"{archive}: link {name!r} -> {target!r} points outside the extraction folder; refusing to extract "
            "this archive. Delete it and download it again from a trusted source."
        )


def _check_tar_members(members: list[tarfile.TarInfo], archive: Path) -> None:
    """Refuse names or links leaving the folder, devices and fifos, and hard links to anything but a file before."""
    files: set[str] = set()
    for m in members:
        _check_member_name(m.name, archive)
        if m.issym():
            _check_link_target(m.name, m.linkname, archive)  # relative to the symlink's own folder
        elif m.islnk():
            _check_link_target("x", m.linkname, archive)  # hard links name a path from the archive root
            if _member_key(m.linkname) not in files:
                raise VtposeError(
                    f"{archive}: hard link {m.name!r} -> {m.linkname!r}: the target is not a file earlier in the "
                    "archive; refusing to extract (the archive is corrupt). Delete it and download it again."
                )
        elif not (m.isfile() or m.isdir()):
            raise VtposeError(f"{archive}: member {m.name!r} is a device or fifo; refusing to extract.")
        if m.isfile():
            files.add(_member_key(m.name))


def _member_key(name: str) -> str:
    return PurePosixPath(name.replace("\\", "/")).as_posix()


def safe_extract(archive: Path, dest: Path) -> Path:
    """Extract a zip or tar archive into `dest`, refusing any member that would land outside it.

    Every member is checked before anything is written: absolute names, drive letters, `..` components and links
    (symlinks or hard links) whose target leaves the folder are refused; in a tar, so are devices and fifos, and
    hard links to anything but a regular file earlier in the archive. Tar archives additionally go through
    Python's `filter="data"` (no setuid bits, links re-checked). Extraction happens in a temporary folder beside
    `dest` that is renamed onto `dest` (replacing it) only when everything was extracted.

    Args:
        archive: a .zip or a tar (optionally gz/bz2/xz compressed).
        dest: the folder to create.

    Returns:
        `dest`.

    Raises:
        VtposeError: an unsafe member, an unknown, truncated or corrupt archive (nothing is written).
    """
    archive, dest = Path(archive), Path(dest)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                _check_member_name(info.filename, archive)
                if stat.S_ISLNK(info.external_attr >> 16):
                    _check_link_target(info.filename, zf.read(info).decode("utf-8", "replace"), archive)
            with atomic_dir(dest) as tmp:
                try:
                    zf.extractall(tmp)
                except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as e:
                    raise VtposeError(f"{archive}: corrupt zip ({e}); delete it and download it again.") from e
        return dest
    if tarfile.is_tarfile(archive):
        try:
            with tarfile.open(archive) as tf:
                members = tf.getmembers()
                _check_tar_members(members, archive)
                with atomic_dir(dest) as tmp:
                    tf.extractall(tmp, members=members, filter="data")
        except tarfile.FilterError as e:
            raise VtposeError(f"{archive}: unsafe member refused ({e}); refusing to extract.") from e
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError) as e:
            # A truncated or damaged archive, found while reading it: nothing of it was published.
            raise VtposeError(f"{archive}: corrupt tar ({e}); delete it and download it again.") from e
        return dest
    raise VtposeError(f"{archive}: neither a zip nor a tar archive (or corrupt); delete it and download it again.")


class _Checksum(TypedDict, total=False):
    """`download`'s checksum keyword: one of the two."""

    sha256: str
    md5: str


def _checksum_kwargs(name: str, checksums: dict[str, str] | None) -> _Checksum:
    if checksums is None:
        return {}
    if name not in checksums:
        raise VtposeError(
            f"no checksum for {name} in the checksums map {sorted(checksums)}; add one, or set checksums to null "
            "to download without verification."
        )
    algo, hexdigest = _parse_checksum(checksums[name])
    if algo not in ("md5", "sha256"):
        raise VtposeError(f"checksum for {name}: use md5 or sha256, not {algo}.")
    return {"sha256": hexdigest} if algo == "sha256" else {"md5": hexdigest}


def _extract_cached(archive: Path, cache_dir: Path) -> Path:
    """Extract once per archive version: a stamp of the archive's size and mtime marks a finished extraction."""
    out = cache_dir / "extracted" / archive.name.removesuffix(".zip")
    stamp = out / ".vtpose-archive"
    if stamp.is_file() and stamp.read_text() == _stat_key(archive):
        return out
    safe_extract(archive, out)
    stamp.write_text(_stat_key(archive))
    return out


def fetch_coco2017(
    dest_dir: Path,
    cache_dir: Path,
    base_url: str = COCO2017_BASE_URL,
    splits: Sequence[str] = ("train2017", "val2017"),
    checksums: dict[str, str] | None = COCO2017_CHECKSUMS,
    train_split: str | None = None,
    val_split: str | None = None,
    name: str = "coco2017",
) -> PoseDataset:
    """Download, verify and extract the COCO 2017 archives and ingest their person keypoints as a PoseDataset.

    Fetches `{base_url}/annotations/annotations_trainval2017.zip` (holding
    `annotations/person_keypoints_{split}.json`) and `{base_url}/zips/{split}.zip` (holding `{split}/*.jpg`) for
    each split, into `cache_dir` (resumable, reused on the next call), extracts each once under
    `cache_dir/extracted/`, and builds `dest_dir` with hard links to the extracted images.

    Args:
        dest_dir: the dataset folder to create (replaced atomically).
        cache_dir: where archives and their extractions are kept between runs (~19 GB for train2017).
        base_url: the COCO server or a mirror with the same layout.
        splits: which image splits to fetch.
        checksums: archive file name -> "md5:<hex>" or "sha256:<hex>"; None downloads without verification.
        train_split / val_split: defaults: "train2017"/"val2017" when fetched, else the first/last split.
        name: dataset name.

    Returns:
        The dataset (`source` = base_url).

    Raises:
        VtposeError: a download, checksum, extraction or ingestion problem (see `download`, `safe_extract`).
    """
    if not splits:
        raise VtposeError("fetch_coco2017: splits is empty; name at least one of train2017, val2017.")
    cache_dir = Path(cache_dir)
    base = base_url.rstrip("/")
    ann_zip = download(
        f"{base}/{ANNOTATIONS_ARCHIVE}",
        cache_dir / PurePosixPath(ANNOTATIONS_ARCHIVE).name,
        **_checksum_kwargs(PurePosixPath(ANNOTATIONS_ARCHIVE).name, checksums),
    )
    ann_root = _extract_cached(ann_zip, cache_dir)
    sources: dict[str, SplitSource] = {}
    for split in splits:
        archive = download(
            f"{base}/zips/{split}.zip", cache_dir / f"{split}.zip", **_checksum_kwargs(f"{split}.zip", checksums)
        )
        image_root = _extract_cached(archive, cache_dir)
        sources[split] = SplitSource(ann_root / "annotations" / f"person_keypoints_{split}.json", image_root / split)
    for split, src in sources.items():
        if not src.annotation_file.is_file():
            raise VtposeError(f"{ann_zip}: has no annotations/person_keypoints_{split}.json; is {split} a COCO split?")
    train_split = train_split or ("train2017" if "train2017" in sources else splits[0])
    val_split = val_split or ("val2017" if "val2017" in sources else splits[-1])
    return ingest_coco_splits(
        sources, Path(dest_dir), name=name, train_split=train_split, val_split=val_split, source=base_url,
        extra_info={"archives": sorted(p.name for p in cache_dir.glob("*.zip"))},
    )  # fmt: skip
