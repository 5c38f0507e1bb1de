"""The input batch: a folder of photos and videos copied into the artifact store, and how it is split into shards."""

from __future__ import annotations

import fnmatch
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vtpose.errors import VtposeError
from vtpose.paths import resolve_project_path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
Kind = Literal["image", "video", "other"]


def media_kind(path: Path) -> Kind:
    """By suffix: "image", "video", or "other" (neither: listed as a bad input)."""
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    return "other"


@dataclass
class MediaBatch:
    """The inputs of one inference run: every file under `root`, by relative path.

    Attributes:
        root: the folder (a copy of the configured inputs).
        source: where it was read from, for the record.
    """

    root: Path
    source: str = ""

    def files(self, exclude: Sequence[str] = ()) -> list[str]:
        """Every file's path relative to `root` (POSIX), sorted; hidden files (".gitignore") and names matching an
        `exclude` pattern left out."""
        names = []
        for path in self.root.rglob("*"):
            parts = path.relative_to(self.root).parts
            hidden = any(part.startswith(".") for part in parts)
            excluded = any(fnmatch.fnmatch(path.name, pattern) for pattern in exclude)
            if path.is_file() and not hidden and not excluded:
                names.append(path.relative_to(self.root).as_posix())
        return sorted(names)

    def shard(self, index: int, count: int, exclude: Sequence[str] = ()) -> list[str]:
        """The files of shard `index` of `count`: every count-th file from the index-th, so shards are of equal size
        within one and each holds a mix of images and videos."""
        if not 0 <= index < count:
            raise ValueError(f"shard {index} is not in 0..{count - 1}")
        return self.files(exclude)[index::count]


def ingest_media(inputs: str, dvc_remote: str | None = None) -> MediaBatch:
    """Copy the configured inputs (a folder, or one file) into a fresh folder.

    Args:
        inputs: a path relative to the project root, or absolute.
        dvc_remote: read `inputs` from this DVC remote instead (a DVC-tracked path), as the training's ingestion does.

    Raises:
        VtposeError: the inputs do not exist, or hold no file.
    """
    dest = Path(tempfile.mkdtemp(prefix="vtpose-media-")) / "media"
    if dvc_remote is not None:
        from vtpose.data.dvc_remote import fetch_tracked

        fetched = fetch_tracked(inputs, dvc_remote, dest)
        if fetched.is_file():
            _as_folder(fetched)
        return _checked(MediaBatch(root=dest, source=f"{dvc_remote}:{inputs}"), inputs)
    source = resolve_project_path(inputs)
    if source.is_dir():
        shutil.copytree(source, dest)
    elif source.is_file():
        dest.mkdir(parents=True)
        shutil.copy2(source, dest / source.name)
    else:
        raise VtposeError(
            f"inference.inputs {inputs!r}: {source} does not exist; name a folder of images and videos "
            "(default data/media: run `make data`)."
        )
    return _checked(MediaBatch(root=dest, source=str(source)), inputs)


def _as_folder(file: Path) -> None:
    """A single fetched file becomes a folder holding it."""
    tmp = file.with_name(file.name + ".tmp")
    file.rename(tmp)
    file.mkdir()
    tmp.rename(file / file.name)


def _checked(batch: MediaBatch, inputs: str) -> MediaBatch:
    if not batch.files():
        raise VtposeError(f"inference.inputs {inputs!r}: the folder holds no file; put images or videos there.")
    return batch
