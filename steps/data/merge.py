"""Merging: the validated datasets of `data.sources` into one, each source in its own folder (vtpose.data.merge)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

from zenml import log_metadata, step

from materializers import PoseDatasetMaterializer
from vtpose.artifacts import PoseDataset
from vtpose.data import SourceSpec, merge_datasets
from vtpose.training.config import SourceConfig


@step(output_materializers=PoseDatasetMaterializer)
def merge_sources(datasets: list[PoseDataset], sources: list[SourceConfig]) -> Annotated[PoseDataset, "dataset"]:
    """One dataset of every source's validated data, in the config's order; deterministic, so cacheable."""
    specs = [SourceSpec(name=s.label, kind=s.source, path=s.path, weight=s.weight) for s in sources]
    dest = Path(tempfile.mkdtemp(prefix="vtpose-merged-")) / "dataset"
    merged = merge_datasets(list(zip(specs, datasets, strict=True)), dest)
    log_metadata({"merge": {s["name"]: {"weight": s["weight"], **s["splits"]} for s in merged.info["sources"]}})
    return merged
