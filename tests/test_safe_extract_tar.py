"""Tar archives in `safe_extract`: hard links, absolute names, devices, fifos, truncation.

Each bad archive must be refused with one clear line, before anything is written: no destination folder and no
temporary folder beside it.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from vtpose.data.fetch import safe_extract
from vtpose.errors import VtposeError


def _file(name: str, data: bytes = b"data") -> tuple[tarfile.TarInfo, io.BytesIO]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, io.BytesIO(data)


def _entry(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = 1, 3  # /dev/null
    return info, None


def _tar(path: Path, *members: tuple[tarfile.TarInfo, io.BytesIO | None], mode: str = "w") -> Path:
    with tarfile.open(path, mode) as tf:
        for info, data in members:
            tf.addfile(info, data)
    return path


def _assert_nothing_written(dest: Path) -> None:
    assert not dest.exists()
    assert not [p.name for p in dest.parent.iterdir() if p.name.startswith(f".{dest.name}.")]


def test_a_hard_link_to_a_file_inside_is_extracted(tmp_path: Path) -> None:
    archive = _tar(
        tmp_path / "good.tar.gz",
        _file("val2017/a.jpg", b"jpeg bytes"),
        _entry("val2017/b.jpg", tarfile.LNKTYPE, "val2017/a.jpg"),  # hard links name the archive-root path
        mode="w:gz",
    )
    out = safe_extract(archive, tmp_path / "out")
    assert (out / "val2017" / "b.jpg").read_bytes() == b"jpeg bytes"
    assert (out / "val2017" / "a.jpg").read_bytes() == b"jpeg bytes"


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ([_entry("val2017/x", tarfile.LNKTYPE, "/etc/passwd")], "points outside"),
        ([_entry("val2017/x", tarfile.LNKTYPE, "../outside")], "points outside"),
        ([_entry("x", tarfile.LNKTYPE, "val2017/../../outside")], "points outside"),
        ([_entry("val2017/x", tarfile.LNKTYPE, "val2017/missing.jpg")], "not a file earlier in the archive"),
        ([_entry("val2017", tarfile.DIRTYPE), _entry("x", tarfile.LNKTYPE, "val2017")], "not a file earlier"),
        ([_entry("a", tarfile.LNKTYPE, "b"), _file("b")], "not a file earlier in the archive"),
        ([_file("/etc/evil")], "outside the extraction folder"),
        ([_file("//server/share/evil")], "outside the extraction folder"),
        ([_file("C:/evil")], "outside the extraction folder"),
        ([_file("val2017/../../evil")], "outside the extraction folder"),
        ([_entry("val2017/null", tarfile.CHRTYPE)], "device or fifo"),
        ([_entry("val2017/disk", tarfile.BLKTYPE)], "device or fifo"),
        ([_entry("val2017/pipe", tarfile.FIFOTYPE)], "device or fifo"),
    ],
    ids=[
        "hardlink-absolute",
        "hardlink-dotdot",
        "hardlink-dotdot-inside-name",
        "hardlink-missing-target",
        "hardlink-to-directory",
        "hardlink-before-its-target",
        "absolute-name",
        "unc-name",
        "drive-letter",
        "dotdot-name",
        "char-device",
        "block-device",
        "fifo",
    ],
)
def test_unsafe_tar_members_are_refused_before_anything_is_written(
    tmp_path: Path, members: list[tuple[tarfile.TarInfo, io.BytesIO | None]], message: str
) -> None:
    # A good file first: the refusal must come before it is written too.
    archive = _tar(tmp_path / "bad.tar", _file("val2017/ok.jpg"), *members)
    dest = tmp_path / "out"
    with pytest.raises(VtposeError, match=message) as error:
        safe_extract(archive, dest)
    assert "\n" not in str(error.value) and str(archive) in str(error.value)
    _assert_nothing_written(dest)


def test_a_truncated_tar_is_a_clear_error(tmp_path: Path) -> None:
    whole = _tar(tmp_path / "whole.tar.gz", _file("val2017/a.jpg", bytes(range(256)) * 4096), mode="w:gz")
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    dest = tmp_path / "out"
    with pytest.raises(VtposeError, match="corrupt") as error:
        safe_extract(cut, dest)
    assert "download it again" in str(error.value)
    _assert_nothing_written(dest)


def test_an_existing_destination_survives_a_refused_archive(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    safe_extract(_tar(tmp_path / "good.tar", _file("val2017/a.jpg", b"old")), dest)
    with pytest.raises(VtposeError):
        safe_extract(_tar(tmp_path / "bad.tar", _entry("val2017/a.jpg", tarfile.LNKTYPE, "/etc/passwd")), dest)
    assert (dest / "val2017" / "a.jpg").read_bytes() == b"old"
