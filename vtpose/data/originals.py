"""Rebuild data/ from its public originals, byte for byte what `dvc pull` gives, when the DVC remote is out of reach.

The recipe lives in `datasources/` in the repository (outside the git-ignored data/):
- `originals.csv`: every public original, one row each: `name` (its place in the download cache), `url`, `sha256`,
  `bytes`, `dest` (the data/ path it is copied to verbatim; empty for the COCO annotations archive) and
  `confirmed` (`git-blob:<sha1>` where the file was matched against a mirror of its git repository at the pinned
  commit; `no: <why>` where no machine here could download the published file).
- `coco-person-mini-records.json`: which person_keypoints records of the official COCO 2017 annotations archive
  make each `person_keypoints_*2017.json` (image and annotation ids, both kept in id order).
- `text/`: the project's own notes (README.md, SOURCE.md, MANIFEST.csv), copied verbatim.
- `data.sha256`: the sha256 of every file of data/ (`sha256sum -c` format); a rebuild is checked against it before
  anything lands in data/.

Downloads go through `vtpose.data.fetch.download` (resumable with HTTP Range, sha256-checked, `.part` files
until verified) into a cache folder; data/ is assembled in a temporary folder beside it and renamed into place only
when every file matched its pin. The annotations archive is read member by member, never extracted (its six JSON
members are 800 MB). `vtpose data rebuild` (vtpose/cli/data.py) is what `make data` runs when `dvc pull` fails.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from vtpose.artifacts import sha256_file
from vtpose.data._fs import safe_relative_name
from vtpose.data.fetch import download
from vtpose.errors import VtposeError
from vtpose.paths import DATA_DIR, PROJECT_ROOT

__all__ = [
    "DEFAULT_CACHE_DIR",
    "SOURCES_DIR",
    "Original",
    "RebuildReport",
    "check_data",
    "failed_pull_note",
    "load_originals",
    "load_pins",
    "mirror_url",
    "rebuild_data",
    "register_with_dvc",
]

SOURCES_DIR = PROJECT_ROOT / "datasources"
DEFAULT_CACHE_DIR = PROJECT_ROOT / ".runtime" / "originals"
ORIGINALS_CSV = "originals.csv"
RECORDS_JSON = "coco-person-mini-records.json"
PINS_FILE = "data.sha256"
TEXT_DIR = "text"
MIRROR_ENV = "VTPOSE_ORIGINALS_MIRROR"
_COLUMNS = ("name", "url", "sha256", "bytes", "dest", "confirmed")


@dataclass(frozen=True)
class Original:
    """One public file that data/ is made from (a row of datasources/originals.csv).

    Attributes:
        name: relative path in the download cache, unique.
        url: where it is published.
        sha256: its pinned digest (hex).
        bytes: its pinned size (for the record and the user's estimate; the sha256 is what a download must match).
        dest: the data/ path it is copied to verbatim, or "" when data/ takes records from it (the COCO archive).
        confirmed: `git-blob:<sha1>` or `no: <why>` (see the module docstring).
    """

    name: str
    url: str
    sha256: str
    bytes: int
    dest: str
    confirmed: str


@dataclass
class RebuildReport:
    """What `rebuild_data` did.

    Attributes:
        data_dir: the folder checked or rebuilt.
        written: data/ paths written by this call (empty when data/ was already complete).
        downloaded: names of the originals fetched over the network by this call (cache hits are not counted).
        files: how many pinned files data/ holds now.
    """

    data_dir: Path
    written: list[str] = field(default_factory=list)
    downloaded: list[str] = field(default_factory=list)
    files: int = 0

    def summary(self) -> str:
        """One line for the user."""
        if not self.written:
            return (
                f"{self.data_dir} already holds the {self.files} pinned files (datasources/{PINS_FILE}); nothing to do"
            )
        fetched = f"{len(self.downloaded)} downloaded, the rest from the cache" if self.downloaded else "all cached"
        return (
            f"rebuilt {self.data_dir} from its public originals (datasources/{ORIGINALS_CSV}): {len(self.written)} "
            f"of {self.files} files written, each matching datasources/{PINS_FILE} ({fetched})"
        )


def load_originals(sources_dir: Path = SOURCES_DIR) -> list[Original]:
    """Read and check originals.csv.

    Args:
        sources_dir: the folder holding originals.csv.

    Returns:
        Its rows, in file order.

    Raises:
        VtposeError: a missing file or column, a bad sha256 or size, a duplicate or unsafe name or dest.
    """
    path = Path(sources_dir) / ORIGINALS_CSV
    if not path.is_file():
        raise VtposeError(f"{path}: missing; it lists the public originals of data/ (restore it from git).")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != _COLUMNS:
            raise VtposeError(f"{path}: columns {reader.fieldnames}, expected {list(_COLUMNS)}; fix the header.")
        rows = list(reader)
    originals: list[Original] = []
    names: set[str] = set()
    dests: set[str] = set()
    for line, row in enumerate(rows, start=2):
        where = f"{path}, line {line}"
        sha = row["sha256"].strip().lower()
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise VtposeError(f"{where}: sha256 {row['sha256']!r} is not 64 hex digits; fix it.")
        if not row["bytes"].isdigit():
            raise VtposeError(f"{where}: bytes {row['bytes']!r} is not a whole number; fix it.")
        for key, seen in (("name", names), ("dest", dests)):
            if row[key]:
                safe_relative_name(row[key], f"{where}, {key}")
                if row[key] in seen:
                    raise VtposeError(f"{where}: {key} {row[key]!r} appears twice; each must be unique.")
                seen.add(row[key])
        if not row["name"] or not row["url"]:
            raise VtposeError(f"{where}: name and url must not be empty.")
        originals.append(Original(row["name"], row["url"], sha, int(row["bytes"]), row["dest"], row["confirmed"]))
    return originals


def load_pins(sources_dir: Path = SOURCES_DIR) -> dict[str, str]:
    """Read data.sha256: data/ path -> sha256, for every file data/ must hold.

    Raises:
        VtposeError: the file is missing or a line is not `<64 hex>  <relative path>`.
    """
    path = Path(sources_dir) / PINS_FILE
    if not path.is_file():
        raise VtposeError(f"{path}: missing; it pins the sha256 of every file of data/ (restore it from git).")
    pins: dict[str, str] = {}
    for line, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        sha, sep, rel = text.partition("  ")
        if not sep or len(sha) != 64 or not rel:
            raise VtposeError(f"{path}, line {line}: expected '<sha256>  <path>' (sha256sum format), got {text!r}.")
        pins[str(safe_relative_name(rel, f"{path}, line {line}"))] = sha
    return pins


def _load_records(sources_dir: Path) -> dict[str, Any]:
    path = Path(sources_dir) / RECORDS_JSON
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise VtposeError(f"{path}: missing; it names the COCO records data/ keeps (restore it from git).") from None
    except json.JSONDecodeError as e:
        raise VtposeError(f"{path}: not JSON ({e}); restore it from git.") from e
    keys = {"dest", "member", "image_ids", "annotation_ids"}
    outputs = records.get("outputs") if isinstance(records, dict) else None
    well_formed = (
        isinstance(outputs, list)
        and isinstance(records.get("archive"), str)
        and all(isinstance(out, dict) and keys <= out.keys() for out in outputs)
    )
    if not well_formed:
        raise VtposeError(f"{path}: expected {{'archive', 'outputs': [{sorted(keys)}...]}}; restore it from git.")
    return records


def check_data(data_dir: Path, pins: dict[str, str]) -> tuple[list[str], list[str]]:
    """Compare data/ with the pins.

    Args:
        data_dir: the folder to check (may not exist).
        pins: from `load_pins`.

    Returns:
        (missing, differing): pinned paths absent from `data_dir`, and present ones whose sha256 differs.
        Files that are not pinned are ignored.
    """
    missing, differing = [], []
    for rel, sha in pins.items():
        path = Path(data_dir) / rel
        if not path.is_file():
            missing.append(rel)
        elif sha256_file(path) != sha:
            differing.append(rel)
    return missing, differing


def mirror_url(url: str, mirror: str | None) -> str:
    """`https://host/path` -> `{mirror}/host/path`: a mirror keeps each original under its host name.

    Args:
        url: the published URL.
        mirror: base URL of a mirror, or None for the published URL itself.
    """
    if not mirror:
        return url
    _, sep, rest = url.partition("://")
    return f"{mirror.rstrip('/')}/{rest if sep else url}"


def _build_coco_json(archive: Path, member: str, image_ids: Sequence[int], annotation_ids: Sequence[int]) -> bytes:
    """The person_keypoints JSON of the pinned records, serialized as data/ holds it.

    The official file's structure and key order are kept (`info`, `licenses`, `images`, `annotations`,
    `categories`; each record's keys as COCO wrote them), images and annotations in id order, Python's default
    `json.dumps` separators and float repr, ASCII escapes, no trailing newline.
    """
    try:
        with zipfile.ZipFile(archive) as zf:
            raw = zf.read(member)
    except KeyError:
        raise VtposeError(f"{archive}: has no member {member}; is it COCO's annotations_trainval2017.zip?") from None
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise VtposeError(f"{archive}: corrupt zip ({e}); delete it and run again to download it anew.") from e
    try:
        coco = orjson.loads(raw)
        del raw
        keep_images, keep_annotations = set(image_ids), set(annotation_ids)
        images = sorted((im for im in coco["images"] if im["id"] in keep_images), key=lambda im: im["id"])
        annotations = sorted((a for a in coco["annotations"] if a["id"] in keep_annotations), key=lambda a: a["id"])
        out = {
            "info": coco["info"],
            "licenses": coco["licenses"],
            "images": images,
            "annotations": annotations,
            "categories": coco["categories"],
        }
    except (orjson.JSONDecodeError, KeyError, TypeError) as e:
        raise VtposeError(f"{archive}: {member} is not COCO JSON ({type(e).__name__}: {e}).") from e
    lost = sorted(keep_images - {im["id"] for im in images})
    lost_ann = sorted(keep_annotations - {a["id"] for a in annotations})
    if lost or lost_ann:
        raise VtposeError(
            f"{archive}: {member} lacks pinned image ids {lost[:5]} / annotation ids {lost_ann[:5]} "
            f"({len(lost)} + {len(lost_ann)} missing); is it the official 2017 release?"
        )
    return json.dumps(out).encode("ascii")


def rebuild_data(
    data_dir: Path = DATA_DIR,
    cache_dir: Path = DEFAULT_CACHE_DIR,
    sources_dir: Path = SOURCES_DIR,
    mirror: str | None = None,
    retries: int = 3,
    timeout: float = 60.0,
    workers: int = 8,
) -> RebuildReport:
    """Make `data_dir` hold exactly the pinned files, downloading what is missing from the public originals.

    A complete `data_dir` is left alone (no network). Otherwise the missing files are built in a temporary folder
    beside it: originals downloaded into `cache_dir` (resumed and checksum-checked, reused by later calls), copied
    verbatim or, for the COCO JSON, cut from the annotations archive; then every built file is checked against
    data.sha256, and only then moved into place (the whole folder in one rename when `data_dir` did not exist). A
    failure anywhere leaves `data_dir` as it was and no temporary folder behind; completed downloads stay in the
    cache, an interrupted one as a `.part` that the next call resumes.

    Args:
        data_dir: the folder to fill (the project's data/ by default).
        cache_dir: where downloads are kept (~300 MB with the COCO annotations archive).
        sources_dir: the folder with originals.csv, coco-person-mini-records.json, text/ and data.sha256.
        mirror: fetch every original from `{mirror}/{host}/{path}` instead of its published URL.
        retries / timeout: per download, see `vtpose.data.fetch.download`.
        workers: parallel downloads.

    Returns:
        What was written and downloaded.

    Raises:
        VtposeError: a file in `data_dir` differs from its pin (it is named; nothing is overwritten), a download
            failed or did not match its sha256 (the URL and both digests are named), or a built file does not
            match its pin.
    """
    data_dir, cache_dir, sources_dir = Path(data_dir), Path(cache_dir), Path(sources_dir)
    pins = load_pins(sources_dir)
    originals = load_originals(sources_dir)
    records = _load_records(sources_dir)
    missing, differing = check_data(data_dir, pins)
    report = RebuildReport(data_dir, files=len(pins))
    if differing:
        raise VtposeError(
            f"{data_dir / differing[0]}: differs from its pin in {sources_dir / PINS_FILE} ({len(differing)} such "
            "file(s)); move your changed files out of data/ (or version them with `dvc add`) and run again."
        )
    if not missing:
        return report

    by_name = {o.name: o for o in originals}
    by_dest = {o.dest: o for o in originals if o.dest}
    derived = {out["dest"]: out for out in records["outputs"]}
    text_root = sources_dir / TEXT_DIR
    unknown = [rel for rel in missing if rel not in by_dest and rel not in derived and not (text_root / rel).is_file()]
    if unknown:
        raise VtposeError(
            f"{sources_dir / PINS_FILE}: pins {unknown[0]} but no original, record set or text file makes it; "
            f"add it to {sources_dir / ORIGINALS_CSV}."
        )
    needed = [by_dest[rel] for rel in missing if rel in by_dest]
    if any(rel in derived for rel in missing):
        if records["archive"] not in by_name:
            raise VtposeError(f"{sources_dir / RECORDS_JSON}: archive {records['archive']!r} is not in originals.csv.")
        needed.append(by_name[records["archive"]])
    report.downloaded = _download_all(needed, cache_dir, mirror, retries, timeout, workers)

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{data_dir.name}.rebuild-", dir=data_dir.parent))
    try:
        tree = staging / data_dir.name
        for rel in missing:
            out = tree / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            if rel in by_dest:
                shutil.copyfile(cache_dir / by_dest[rel].name, out)
            elif rel in derived:
                spec = derived[rel]
                archive = cache_dir / by_name[records["archive"]].name
                out.write_bytes(_build_coco_json(archive, spec["member"], spec["image_ids"], spec["annotation_ids"]))
            else:
                shutil.copyfile(text_root / rel, out)
            got = sha256_file(out)
            if got != pins[rel]:
                raise VtposeError(
                    f"{rel}: rebuilt with sha256 {got}, pinned {pins[rel]} in {sources_dir / PINS_FILE}; the "
                    "originals or the recipe changed. Nothing was written to data/."
                )
        if not data_dir.exists():
            os.replace(tree, data_dir)
        else:
            for rel in missing:
                (data_dir / rel).parent.mkdir(parents=True, exist_ok=True)
                os.replace(tree / rel, data_dir / rel)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    report.written = sorted(missing)
    return report


def _download_all(
    needed: Sequence[Original], cache_dir: Path, mirror: str | None, retries: int, timeout: float, workers: int
) -> list[str]:
    """Download the originals not yet in the cache; returns the names fetched by this call.

    The first failure stops the downloads not yet started (offline, every one would fail the same way after its
    retries); those already running finish, so the next call resumes with the least left to do.
    """

    def one(original: Original) -> bool:
        target = cache_dir / original.name
        fresh = not target.is_file()
        download(mirror_url(original.url, mirror), target, sha256=original.sha256, retries=retries, timeout=timeout)
        return fresh

    fetched: list[str] = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {pool.submit(one, o): o for o in needed}
        for future in as_completed(futures):
            error = future.exception()
            if error is None:
                if future.result():
                    fetched.append(futures[future].name)
                continue
            pool.shutdown(wait=True, cancel_futures=True)
            left = sum(f.cancelled() for f in futures)
            if isinstance(error, VtposeError):
                more = f" ({left} more not started yet)" if left else ""
                raise VtposeError(f"{futures[future].name}: {error}{more}") from error
            raise error  # a bug, not a transport problem: keep its traceback
    return sorted(fetched)


def register_with_dvc(repo_root: Path = PROJECT_ROOT, dvc_file: str = "data.dvc") -> None:
    """Store the rebuilt data/ in DVC's cache, so `dvc status` reads as after `dvc pull`.

    `dvc commit` without force: it refuses, leaving the .dvc file untouched, if the folder's hash is not the one
    the .dvc file pins (e.g. extra files in data/).

    Raises:
        VtposeError: DVC refused (the message says why).
    """
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo(str(repo_root)) as repo:
            repo.commit(str(Path(repo_root).resolve() / dvc_file))  # DVC resolves a relative target from the cwd
    except DvcException as e:
        raise VtposeError(
            f"{Path(repo_root) / dvc_file}: dvc commit refused ({e}); data/ holds files the .dvc file does not pin. "
            "Move them out (or `dvc add data` to version them) and run again."
        ) from e


def failed_pull_note(repo_root: Path = PROJECT_ROOT) -> str:
    """'dvc pull from remote 'sample' (../../shared/dvc-storage) failed', naming the project's default remote."""
    from dvc.config import Config, ConfigError

    try:
        config = Config(str(repo_root / ".dvc"))
        name = config["core"].get("remote", "")
        url = config["remote"].get(name, {}).get("url", "?") if name else "no default remote"
    except ConfigError as e:
        return f"dvc pull failed (unreadable .dvc/config: {e})"
    return f"dvc pull from DVC remote {name!r} ({url}) failed"
