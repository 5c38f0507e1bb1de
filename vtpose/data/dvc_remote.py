"""Read DVC-tracked data straight from a DVC remote, at the version pinned by the project's `.dvc` files.

This is how a step in a container or a Kubernetes pod gets its data: the code (with `data.dvc` and `.dvc/config`)
arrives through ZenML's code archive, the files come from the remote by content hash. No git checkout, no host
path, no `dvc pull` beforehand. DVC's own filesystem does the work; the remote URL may be any DVC remote that the
image has a plugin for (`http(s)://` and local folders with plain `dvc`; `s3://` needs `dvc-s3`).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from vtpose.errors import VtposeError
from vtpose.paths import PROJECT_ROOT


def fetch_tracked(path: str, remote_url: str, dest: Path, repo_root: Path = PROJECT_ROOT) -> Path:
    """Copy one DVC-tracked file or folder from a remote into `dest`.

    Args:
        path: the path as the configs name it, relative to the project root (`data/coco-person-mini`).
        remote_url: the DVC remote to read from; it replaces the URL of the project's default remote, so the
            layout must be DVC's (`files/md5/..`), as `dvc push` writes it.
        dest: where the file or folder lands (created; must not exist).
        repo_root: the folder holding `.dvc/` and the `.dvc` files.

    Returns:
        `dest`, holding the tracked content.

    Raises:
        VtposeError: the path is absolute or not tracked, the project has no default remote, or the remote lacks
            the content.
    """
    from dvc.api import DVCFileSystem
    from dvc.config import Config
    from dvc.exceptions import DvcException
    from dvc_data.index.index import DataIndexError

    rel = PurePosixPath(path)
    if rel.is_absolute() or ".." in rel.parts:
        raise VtposeError(f"{path}: with data.dvc_remote, paths must be relative to the project root (data/...).")
    # The project's default remote keeps its name and options; only its URL changes to one this container can
    # reach. no_scm: the code archive is not a git checkout.
    remote_name = Config(str(repo_root / ".dvc")).get("core", {}).get("remote")
    if not remote_name:
        config = repo_root / ".dvc" / "config"
        raise VtposeError(f"{config}: no default DVC remote (core.remote) whose URL {remote_url} could replace.")
    fs = DVCFileSystem(str(repo_root), config={"core": {"no_scm": True}, "remote": {remote_name: {"url": remote_url}}})
    # Tracked or not is known from the .dvc files alone; whether the content exists needs the remote, which an
    # unreachable remote would make look like "not there". Hence two checks and two messages.
    tracked = [PurePosixPath(Path(out.fs_path).relative_to(repo_root).as_posix()) for out in fs.repo.index.outs]
    if not any(rel == out or out in rel.parents for out in tracked):
        names = ", ".join(str(out) for out in tracked) or "nothing"
        raise VtposeError(f"{path}: not tracked by DVC in {repo_root} (tracked: {names}); fix it in the config.")
    try:
        fs.get(str(rel), str(dest), recursive=True)
    # An unreachable remote, a version not pushed, or a sub-path the tracked folder lacks.
    except (DvcException, DataIndexError, OSError) as exc:
        raise VtposeError(
            f"{path}: cannot fetch from DVC remote {remote_url}: {exc}. Is the remote reachable from here, does it "
            "hold this version (`dvc push`), and does the path exist in the tracked folder?"
        ) from exc
    return dest
