"""Where the project's files live, resolved from the package, never from the working directory."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("VTPOSE_DATA_DIR", PROJECT_ROOT / "data"))
PRETRAINED_WEIGHTS = DATA_DIR / "pretrained" / "yolo11n-pose.pt"
COCO_MINI_DIR = DATA_DIR / "coco-person-mini"
MPII_SAMPLE_DIR = DATA_DIR / "mpii-sample"
MEDIA_DIR = DATA_DIR / "media"
CONFIGS_DIR = PROJECT_ROOT / "configs"
# The run config of `make run` and of `zenml pipeline run training_pipeline` without -c.
DEFAULT_CONFIG = CONFIGS_DIR / "training.yaml"
# ...and of `zenml pipeline run deployment_pipeline` without -c.
DEPLOYMENT_CONFIG = CONFIGS_DIR / "deployment.yaml"
# ...and of `zenml pipeline run inference_pipeline` without -c.
INFERENCE_CONFIG = CONFIGS_DIR / "inference.yaml"
# `.pt` weights exported for the ONNX and OpenVINO backends (`--backend`, `vtpose animate`), keyed by content and
# imgsz (git-ignored, safe to delete).
EXPORT_CACHE_DIR = PROJECT_ROOT / ".runtime" / "exports"


def resolve_project_path(path: str | Path) -> Path:
    """Resolve a relative path against the project root (configs name `data/...`), keep absolute ones."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


@contextmanager
def atomic_path(target: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it onto `target` only if the block succeeds.

    A crash or an error inside the block leaves `target` untouched and no partial file behind.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix or target.suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates 0600; give the file the permissions a plain open() would have.
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o666 & ~umask)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
