"""Ingestion: bring the configured data source and the pretrained checkpoint into the artifact store.

These are the only steps that read outside the artifact store: the project's data folder, or, with
`data.dvc_remote`, the DVC remote itself (what a step container or a pod uses), or a URL (coco2017); everything
downstream sees artifacts, so a step in a Kubernetes pod needs no host path.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated

from zenml import step

from materializers import PoseDatasetMaterializer, PoseWeightsMaterializer
from vtpose.artifacts import PoseDataset, PoseWeights
from vtpose.data import fetch_coco2017, ingest_coco_folder, ingest_mpii, ingest_mpii_mat
from vtpose.data.dvc_remote import fetch_tracked
from vtpose.errors import VtposeError
from vtpose.paths import resolve_project_path
from vtpose.training.config import DataConfig


def _source(path: str, data: DataConfig, prefix: str) -> Path:
    """The local path to read `path` from: the project folder, or a copy fetched from `data.dvc_remote`."""
    if data.dvc_remote is None:
        return resolve_project_path(path)
    # A fixed local path, not a fresh temp name: ingestion records where it read from, and a path that changed
    # every run would change the dataset's content hash and defeat the caching of every later step.
    dest = Path(tempfile.gettempdir()) / prefix.rstrip("-") / Path(path).name
    if dest.is_dir():
        shutil.rmtree(dest)
    dest.unlink(missing_ok=True)
    return fetch_tracked(path, data.dvc_remote, dest)


# Never cached: the source may have changed under the same path. The dataset materializer hashes the
# content, so an unchanged dataset still lets every later step be a cache hit.
@step(enable_cache=False, output_materializers=PoseDatasetMaterializer)
def ingest_dataset(data: DataConfig) -> Annotated[PoseDataset, "raw_dataset"]:
    """Copy the configured source into a dataset folder in vtpose's layout."""
    dest = Path(tempfile.mkdtemp(prefix="vtpose-ingest-")) / "dataset"
    if data.source == "coco_folder":
        source = _source(data.path, data, "vtpose-source-")
        return ingest_coco_folder(source, dest, train_split=data.train_split, val_split=data.val_split)
    if data.source == "mpii":
        return ingest_mpii(_source(data.path, data, "vtpose-source-"), dest, val_fraction=data.val_fraction)
    if data.source == "mpii_mat":
        return ingest_mpii_mat(_source(data.path, data, "vtpose-source-"), dest, val_fraction=data.val_fraction)
    # coco2017 downloads by URL already; data.path is its download cache, never a DVC-tracked folder.
    return fetch_coco2017(
        dest,
        cache_dir=resolve_project_path(data.path),
        base_url=data.base_url,
        splits=(data.train_split, data.val_split),
        checksums=data.checksums or None,
    )


@step(enable_cache=False, output_materializers=PoseWeightsMaterializer)
def ingest_pretrained(data: DataConfig) -> Annotated[PoseWeights, "pretrained_weights"]:
    """The COCO-pretrained checkpoint: the fine-tuning start and the evaluation baseline."""
    source = _source(data.pretrained, data, "vtpose-pretrained-src-")
    if not source.is_file():
        raise VtposeError(f"{source}: pretrained checkpoint not found; run `dvc pull` or fix data.pretrained.")
    local = Path(tempfile.mkdtemp(prefix="vtpose-pretrained-")) / source.name
    shutil.copy2(source, local)
    return PoseWeights(path=local, architecture=source.stem, imgsz=640, origin="pretrained")
