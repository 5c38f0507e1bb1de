"""Moving local folders and files in and out of any ZenML artifact store (local disk, S3, GCS...).

A folder travels as one uncompressed tar: images are already compressed, and one object per artifact is far
faster on object stores than thousands of small ones.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import tempfile
from pathlib import Path

from zenml.io import fileio

FOLDER_ARCHIVE = "folder.tar"


def upload_folder(local_dir: Path, artifact_uri: str) -> None:
    """Tar `local_dir` (sorted, fixed metadata) and copy it to `artifact_uri/folder.tar`."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / FOLDER_ARCHIVE
        with tarfile.open(archive, "w") as tar:
            for path in sorted(p for p in local_dir.rglob("*") if p.is_file()):
                tar.add(path, arcname=path.relative_to(local_dir).as_posix(), filter=_normalise)
        fileio.copy(str(archive), os.path.join(artifact_uri, FOLDER_ARCHIVE), overwrite=True)


def download_folder(artifact_uri: str, local_dir: Path) -> Path:
    """Copy `artifact_uri/folder.tar` here and extract it into `local_dir`, refusing members that escape it."""
    local_dir.mkdir(parents=True, exist_ok=True)
    archive = local_dir.parent / f".{local_dir.name}.tar"
    fileio.copy(os.path.join(artifact_uri, FOLDER_ARCHIVE), str(archive), overwrite=True)
    try:
        with tarfile.open(archive, "r") as tar:
            tar.extractall(local_dir, filter="data")
    finally:
        archive.unlink(missing_ok=True)
    return local_dir


def upload_file(local_file: Path, artifact_uri: str, name: str) -> None:
    """Copy one file to `artifact_uri/name`."""
    fileio.copy(str(local_file), os.path.join(artifact_uri, name), overwrite=True)


def download_file(artifact_uri: str, name: str, local_file: Path) -> Path:
    """Copy `artifact_uri/name` to `local_file`."""
    local_file.parent.mkdir(parents=True, exist_ok=True)
    fileio.copy(os.path.join(artifact_uri, name), str(local_file), overwrite=True)
    return local_file


def hash_folder(local_dir: Path) -> str:
    """sha256 over every file's relative path and bytes, in sorted order: equal content, equal hash."""
    digest = hashlib.sha256()
    for path in sorted(p for p in local_dir.rglob("*") if p.is_file()):
        digest.update(path.relative_to(local_dir).as_posix().encode())
        digest.update(b"\0")
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def _normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
    # Same content gives the same archive bytes, whoever wrote it and when.
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 0
    return info
