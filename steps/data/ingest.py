"""Ingestion: bring the configured data source and the pretrained checkpoint into the artifact store.

These are the only steps that read outside the artifact store (a project folder or a URL); everything
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
from vtpose.config import DataConfig
from vtpose.datasets import fetch_coco2017, ingest_coco_folder, ingest_mpii
from vtpose.errors import VtposeError
from vtpose.paths import resolve_project_path


# Never cached: the source may have changed under the same path. The dataset materializer hashes the
# content, so an unchanged dataset still lets every later step be a cache hit.
@step(enable_cache=False, output_materializers=PoseDatasetMaterializer)
def ingest_dataset(data: DataConfig) -> Annotated[PoseDataset, "raw_dataset"]:
    """Copy the configured source into a dataset folder in vtpose's layout."""
    dest = Path(tempfile.mkdtemp(prefix="vtpose-ingest-")) / "dataset"
    source = resolve_project_path(data.path)
    if data.source == "coco_folder":
        return ingest_coco_folder(source, dest, train_split=data.train_split, val_split=data.val_split)
    if data.source == "mpii":
        return ingest_mpii(source, dest)
    return fetch_coco2017(
        dest,
        cache_dir=source,
        base_url=data.base_url,
        splits=(data.train_split, data.val_split),
        checksums=data.checksums or None,
    )


@step(enable_cache=False, output_materializers=PoseWeightsMaterializer)
def ingest_pretrained(data: DataConfig) -> Annotated[PoseWeights, "pretrained_weights"]:
    """The COCO-pretrained checkpoint: the fine-tuning start and the evaluation baseline."""
    source = resolve_project_path(data.pretrained)
    if not source.is_file():
        raise VtposeError(f"{source}: pretrained checkpoint not found; run `dvc pull` or fix data.pretrained.")
    local = Path(tempfile.mkdtemp(prefix="vtpose-pretrained-")) / source.name
    shutil.copy2(source, local)
    return PoseWeights(path=local, architecture=source.stem, imgsz=640, origin="pretrained")
