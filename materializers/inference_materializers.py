"""Materializers for the inference pipeline's artifacts: the input batch and the results folders."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, ClassVar

from zenml.enums import ArtifactType, VisualizationType
from zenml.io import fileio
from zenml.materializers.base_materializer import BaseMaterializer
from zenml.metadata.metadata_types import MetadataType

from materializers.pose_materializers import _local_copy_dir, _png, _write_bytes, _write_text
from materializers.storage import download_folder, hash_folder, upload_folder
from vtpose.inference.media import MediaBatch, media_kind
from vtpose.inference.results import InferenceResults

_SOURCE_FILE = "source.json"
# The dashboard shows at most this many preview images per results artifact.
MAX_PREVIEWS = 12


class MediaBatchMaterializer(BaseMaterializer):
    """The input folder, whole; hashed by content, so unchanged inputs keep the later steps cached."""

    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = (MediaBatch,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.DATA

    def load(self, data_type: type[Any]) -> MediaBatch:
        """Extract the folder locally."""
        root = download_folder(self.uri, _local_copy_dir(self) / "media")
        with fileio.open(os.path.join(self.uri, _SOURCE_FILE), "r") as f:
            source = json.loads(f.read())["source"]
        return MediaBatch(root=root, source=source)

    def save(self, data: MediaBatch) -> None:
        """Store the folder and where it was read from."""
        upload_folder(data.root, self.uri)
        _write_text(self.uri, _SOURCE_FILE, json.dumps({"source": data.source}))

    def compute_content_hash(self, data: MediaBatch) -> str:
        """The files' paths and bytes (not where they were read from)."""
        return hash_folder(data.root)

    def save_visualizations(self, data: MediaBatch) -> dict[str, VisualizationType]:
        """The files and what each is taken for."""
        rows = [f"| {name} | {media_kind(data.root / name)} |" for name in data.files()]
        text = f"# Inputs ({data.source})\n\n| file | kind |\n|---|---|\n" + "\n".join(rows) + "\n"
        return {_write_text(self.uri, "inputs.md", text): VisualizationType.MARKDOWN}

    def extract_metadata(self, data: MediaBatch) -> dict[str, MetadataType]:
        """How many images, videos and other files."""
        kinds = [media_kind(data.root / name) for name in data.files()]
        return {"files": len(kinds), **{f"{kind}s": kinds.count(kind) for kind in ("image", "video", "other")}}


class InferenceResultsMaterializer(BaseMaterializer):
    """A results folder, whole; shown as its summary table and its overlays, avatars and video strips."""

    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = (InferenceResults,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.DATA

    def load(self, data_type: type[Any]) -> InferenceResults:
        """Extract the folder locally and read its index."""
        return InferenceResults.open(download_folder(self.uri, _local_copy_dir(self) / "results"))

    def save(self, data: InferenceResults) -> None:
        """Store the folder (its index written first)."""
        data.write_index()
        upload_folder(data.root, self.uri)

    # No content hash: the index records each file's timing, so two runs' results never hash alike, and reading
    # every video again to find that out would only slow the step (benchmarks/bench_inference.py).

    def save_visualizations(self, data: InferenceResults) -> dict[str, VisualizationType]:
        """The summary table, then one image per input: overlay beside avatar, or a video's strip of frames."""
        visuals = {_write_text(self.uri, "summary.md", data.summary_markdown()): VisualizationType.MARKDOWN}
        for i, (title, image) in enumerate(list(data.preview_images().items())[:MAX_PREVIEWS]):
            name = f"preview_{i:02d}_{Path(title.split(' ', 1)[1]).stem}.png"
            visuals[_write_bytes(self.uri, name, _png(image))] = VisualizationType.IMAGE
        return visuals

    def extract_metadata(self, data: InferenceResults) -> dict[str, MetadataType]:
        """The summary's numbers and the model version."""
        summary = data.summary()
        metadata: dict[str, MetadataType] = {k: v for k, v in summary.items() if isinstance(v, int | float | str)}
        metadata["bad_inputs"] = len(summary["bad_inputs"])
        return metadata
