"""Materializers for vtpose's artifacts: each stores exactly the object it is given and shows it in the dashboard."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, ClassVar

import cv2
from zenml.enums import ArtifactType, VisualizationType
from zenml.io import fileio
from zenml.materializers.base_materializer import BaseMaterializer
from zenml.metadata.metadata_types import MetadataType, StorageSize

from materializers.storage import download_file, download_folder, hash_folder, upload_file, upload_folder
from vtpose.artifacts import ExportedModel, PoseDataset, PoseWeights, YoloPoseDataset, sha256_file
from vtpose.data.reports import conversion_markdown, dataset_markdown, dataset_previews, dataset_statistics
from vtpose.overlay import contact_sheet
from vtpose.training.bootstrap import CANDIDATE, PRETRAINED, PRODUCTION
from vtpose.training.reports import EvaluationReport, TrainingCurves, plot_intervals, plot_training_curves
from vtpose.training.variants import VariantReport

META_FILE = "meta.json"


def _write_text(uri: str, name: str, text: str) -> str:
    path = os.path.join(uri, name)
    with fileio.open(path, "w") as f:
        f.write(text)
    return path


def _write_bytes(uri: str, name: str, data: bytes) -> str:
    path = os.path.join(uri, name)
    with fileio.open(path, "wb") as f:
        f.write(data)
    return path


def _read_json(uri: str, name: str) -> Any:
    with fileio.open(os.path.join(uri, name), "r") as f:
        return json.loads(f.read())


def _png(image: Any) -> bytes:
    ok, buffer = cv2.imencode(".png", image)
    if not ok:
        raise ValueError("could not encode a preview image as PNG")
    return buffer.tobytes()


def _local_copy_dir(materializer: BaseMaterializer) -> Path:
    # Lives as long as the step (or the notebook) that loaded it; ZenML cleans temporary folders it hands out.
    with materializer.get_temporary_directory(delete_at_exit=False) as local:
        return Path(local)


class PoseDatasetMaterializer(BaseMaterializer):
    """A COCO-format dataset folder: the whole folder, its previews with skeletons and its statistics."""

    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = (PoseDataset,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.DATA

    def load(self, data_type: type[Any]) -> PoseDataset:
        """Extract the folder locally and open it."""
        return PoseDataset.open(download_folder(self.uri, _local_copy_dir(self) / "dataset"))

    def save(self, data: PoseDataset) -> None:
        """Store the folder the dataset lives in."""
        data.write_manifest()
        upload_folder(data.root, self.uri)

    def compute_content_hash(self, data: PoseDataset) -> str:
        """Same files, same hash: a re-ingested but unchanged dataset keeps downstream steps cached."""
        data.write_manifest()
        return hash_folder(data.root)

    def save_visualizations(self, data: PoseDataset) -> dict[str, VisualizationType]:
        """Ground-truth skeletons on sample images, and the dataset statistics."""
        stats = dataset_statistics(data)
        visualizations = {
            _write_bytes(
                self.uri, "previews.png", _png(contact_sheet(dataset_previews(data)))
            ): VisualizationType.IMAGE,
            _write_text(self.uri, "statistics.md", dataset_markdown(stats)): VisualizationType.MARKDOWN,
        }
        for name in stats.get("sources", {}):  # a merged dataset: each source's own samples
            previews = dataset_previews(data, source=name)
            if previews:
                path = _write_bytes(self.uri, f"previews_{name}.png", _png(contact_sheet(previews)))
                visualizations[path] = VisualizationType.IMAGE
        return visualizations

    def extract_metadata(self, data: PoseDataset) -> dict[str, MetadataType]:
        """Counts per split, and how many records validation skipped."""
        stats = dataset_statistics(data)
        metadata: dict[str, MetadataType] = {"name": data.name, "source": data.source}
        for split, values in stats["splits"].items():
            metadata[f"{split}_images"] = values["images"]
            metadata[f"{split}_persons_with_keypoints"] = values["persons_with_keypoints"]
        for name, source in stats.get("sources", {}).items():
            for split, values in source["splits"].items():
                metadata[f"{name}_{split}_images"] = values["images"]
                metadata[f"{name}_{split}_persons_with_keypoints"] = values["persons_with_keypoints"]
        skipped = data.info.get("skipped")
        if isinstance(skipped, dict):
            metadata["skipped_records"] = int(sum(skipped.values()))
        return metadata


class YoloPoseDatasetMaterializer(BaseMaterializer):
    """A YOLO-pose dataset folder and its conversion summary."""

    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = (YoloPoseDataset,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.DATA

    def load(self, data_type: type[Any]) -> YoloPoseDataset:
        """Extract the folder locally."""
        root = download_folder(self.uri, _local_copy_dir(self) / "yolo")
        summary_path = root / "summary.json"
        summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
        return YoloPoseDataset(root=root, summary=summary)

    def save(self, data: YoloPoseDataset) -> None:
        """Store the folder (data.yaml, images, labels, summary.json)."""
        upload_folder(data.root, self.uri)

    def compute_content_hash(self, data: YoloPoseDataset) -> str:
        """Hash of every file, so identical conversions are recognised."""
        return hash_folder(data.root)

    def save_visualizations(self, data: YoloPoseDataset) -> dict[str, VisualizationType]:
        """The conversion summary: for a merged dataset the merge as a table, then the whole summary."""
        return {_write_text(self.uri, "summary.md", conversion_markdown(data.summary)): VisualizationType.MARKDOWN}

    def extract_metadata(self, data: YoloPoseDataset) -> dict[str, MetadataType]:
        """Top-level numbers of the summary."""
        return {k: v for k, v in data.summary.items() if isinstance(v, int | float | str)}


class PoseWeightsMaterializer(BaseMaterializer):
    """One weights file, stored as given, with its sha256."""

    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = (PoseWeights,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.MODEL

    def load(self, data_type: type[Any]) -> PoseWeights:
        """Copy the file locally."""
        meta = _read_json(self.uri, META_FILE)
        local = download_file(self.uri, meta["file_name"], _local_copy_dir(self) / meta["file_name"])
        return PoseWeights(path=local, architecture=meta["architecture"], imgsz=meta["imgsz"], origin=meta["origin"])

    def save(self, data: PoseWeights) -> None:
        """Store the file the object points at, and what it is."""
        meta = {
            "file_name": data.path.name,
            "architecture": data.architecture,
            "imgsz": data.imgsz,
            "origin": data.origin,
            "sha256": sha256_file(data.path),
        }
        upload_file(data.path, self.uri, data.path.name)
        _write_text(self.uri, META_FILE, json.dumps(meta, indent=2))

    def compute_content_hash(self, data: PoseWeights) -> str:
        """The file's sha256 and how it is described."""
        return f"{sha256_file(data.path)}:{data.architecture}:{data.imgsz}:{data.origin}"

    def save_visualizations(self, data: PoseWeights) -> dict[str, VisualizationType]:
        """A card: file, size, sha256, architecture."""
        text = (
            f"# Weights `{data.path.name}`\n\n| | |\n|---|---|\n| architecture | {data.architecture} |\n"
            f"| image size | {data.imgsz} |\n| origin | {data.origin} |\n"
            f"| size | {data.path.stat().st_size / 1e6:.2f} MB |\n| sha256 | `{sha256_file(data.path)}` |\n"
        )
        return {_write_text(self.uri, "weights.md", text): VisualizationType.MARKDOWN}

    def extract_metadata(self, data: PoseWeights) -> dict[str, MetadataType]:
        """sha256, size and architecture."""
        return {
            "sha256": sha256_file(data.path),
            "size": StorageSize(data.path.stat().st_size),
            "architecture": data.architecture,
            "imgsz": data.imgsz,
        }


class TrainingCurvesMaterializer(BaseMaterializer):
    """Per-epoch losses and metrics: a plot and the table."""

    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = (TrainingCurves,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.STATISTICS

    def load(self, data_type: type[Any]) -> TrainingCurves:
        """Read the JSON back."""
        return TrainingCurves(**_read_json(self.uri, "curves.json"))

    def save(self, data: TrainingCurves) -> None:
        """Store as JSON."""
        _write_text(self.uri, "curves.json", json.dumps(data.to_dict(), indent=2))

    def save_visualizations(self, data: TrainingCurves) -> dict[str, VisualizationType]:
        """The curves as a PNG plot and a CSV table."""
        columns = sorted({k for row in data.rows for k in row}, key=lambda k: (k != "epoch", k))
        table = "\n".join([",".join(columns), *(",".join(f"{row.get(c, '')}" for c in columns) for row in data.rows)])
        return {
            _write_bytes(self.uri, "curves.png", plot_training_curves(data)): VisualizationType.IMAGE,
            _write_text(self.uri, "curves.csv", table + "\n"): VisualizationType.CSV,
        }

    def extract_metadata(self, data: TrainingCurves) -> dict[str, MetadataType]:
        """Epochs and wall-clock time."""
        return {"epochs": len(data.rows), "train_seconds": round(data.train_seconds, 1)}


class EvaluationReportMaterializer(BaseMaterializer):
    """The evaluation report: stats beside the baseline's, per-keypoint errors, predicted skeletons."""

    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = (EvaluationReport,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.DATA_ANALYSIS

    def load(self, data_type: type[Any]) -> EvaluationReport:
        """Read the summary, the COCO results and the preview PNGs back."""
        summary = _read_json(self.uri, "report.json")
        results = _read_json(self.uri, "coco_results.json")
        previews = []
        for i in range(summary.pop("num_previews")):
            with fileio.open(os.path.join(self.uri, f"preview_{i}.png"), "rb") as f:
                previews.append(f.read())
        return EvaluationReport(**summary, results_json=results, previews=previews)

    def save(self, data: EvaluationReport) -> None:
        """Summary JSON, the COCO results JSON that was scored, and the preview PNGs."""
        _write_text(self.uri, "report.json", json.dumps({**data.summary(), "num_previews": len(data.previews)}))
        _write_text(self.uri, "coco_results.json", json.dumps(data.results_json))
        for i, png in enumerate(data.previews):
            _write_bytes(self.uri, f"preview_{i}.png", png)

    def save_visualizations(self, data: EvaluationReport) -> dict[str, VisualizationType]:
        """The report table (stats with their intervals, paired differences), a plot of the AP intervals, and a
        sheet of predicted (red) and ground-truth (green) skeletons."""
        # PNGs the report was built with (prediction_previews): each decodes; the filter only tells the types so.
        decoded = (cv2.imdecode(_as_array(png), cv2.IMREAD_COLOR) for png in data.previews)
        images = [image for image in decoded if image is not None]
        visualizations = {_write_text(self.uri, "report.md", data.markdown()): VisualizationType.MARKDOWN}
        intervals = plot_intervals(data)
        if intervals is not None:
            visualizations[_write_bytes(self.uri, "intervals.png", intervals)] = VisualizationType.IMAGE
        if images:
            visualizations[_write_bytes(self.uri, "predictions.png", _png(contact_sheet(images)))] = (
                VisualizationType.IMAGE
            )
        return visualizations

    def extract_metadata(self, data: EvaluationReport) -> dict[str, MetadataType]:
        """The 10 stats, the references' AP, and the AP intervals of the paired bootstrap."""
        metadata: dict[str, MetadataType] = {name: round(value, 4) for name, value in data.stats.items()}
        if "AP" in data.baseline_stats:
            metadata["baseline_AP"] = round(data.baseline_stats["AP"], 4)
        if "AP" in data.production_stats:
            metadata["production_AP"] = round(data.production_stats["AP"], 4)
        for name, part in data.per_source.items():  # a merged val split: each source's own
            metadata[f"{name}_AP"] = round(part["stats"]["AP"], 4)
            for role, score in (part.get("pckh") or {}).items():
                if score["PCKh"] is not None:
                    metadata[f"{name}_{role}_PCKh"] = score["PCKh"]
        bootstrap = data.bootstrap_result()
        if bootstrap is not None:
            if "AP" in bootstrap.intervals.get(CANDIDATE, {}):
                metadata["AP_interval"] = bootstrap.intervals[CANDIDATE]["AP"].format()
            for role in (PRODUCTION, PRETRAINED):
                difference = bootstrap.difference(CANDIDATE, role, "AP")
                if difference is not None:
                    metadata[f"AP_minus_{role}"] = difference.format(signed=True)
        return metadata


class ExportedModelMaterializer(BaseMaterializer):
    """An exported variant (an ONNX file or an OpenVINO IR folder), stored as it is, with its sizes and sha256."""

    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = (ExportedModel,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.MODEL

    def load(self, data_type: type[Any]) -> ExportedModel:
        """Copy the file or folder locally; refuse files whose sha256 is not the one recorded at save time."""
        meta = _read_json(self.uri, META_FILE)
        local = _local_copy_dir(self) / meta["name"]
        if meta["kind"] == "folder":
            download_folder(self.uri, local)
        else:
            download_file(self.uri, meta["name"], local)
        model = ExportedModel(
            path=local,
            variant=meta["variant"],
            imgsz=meta["imgsz"],
            source_sha256=meta["source_sha256"],
            settings=meta["settings"],
        )
        if model.sha256() != meta["sha256"]:
            raise ValueError(f"{self.uri}: the stored {meta['variant']} files do not match their recorded sha256")
        return model

    def save(self, data: ExportedModel) -> None:
        """Store the file or the folder, and what it is (with each file's sha256)."""
        meta = {
            "name": data.path.name,
            "kind": "folder" if data.path.is_dir() else "file",
            "variant": data.variant,
            "imgsz": data.imgsz,
            "source_sha256": data.source_sha256,
            "settings": data.settings,
            "sha256": data.sha256(),
            "size_bytes": data.size_bytes,
        }
        if data.path.is_dir():
            upload_folder(data.path, self.uri)
        else:
            upload_file(data.path, self.uri, data.path.name)
        _write_text(self.uri, META_FILE, json.dumps(meta, indent=2))

    def compute_content_hash(self, data: ExportedModel) -> str:
        """sha256 over the files' sha256 and how the variant is described (ZenML keeps 255 characters)."""
        described = json.dumps([data.sha256(), data.variant, data.imgsz, data.settings], sort_keys=True)
        return hashlib.sha256(described.encode()).hexdigest()

    def save_visualizations(self, data: ExportedModel) -> dict[str, VisualizationType]:
        """A card: variant, size, where it came from, each file's sha256."""
        lines = [
            f"# Exported model `{data.variant}`",
            "",
            "| | |",
            "|---|---|",
            f"| image size | {data.imgsz} |",
            f"| size | {data.size_bytes / 1e6:.2f} MB |",
            f"| from .pt (sha256) | `{data.source_sha256}` |",
            *(f"| {key} | `{json.dumps(value)}` |" for key, value in sorted(data.settings.items())),
            "",
            "| file | bytes | sha256 |",
            "|---|---|---|",
        ]
        base = data.path if data.path.is_dir() else data.path.parent
        for path in data.files():
            lines.append(f"| {path.relative_to(base).as_posix()} | {path.stat().st_size} | `{sha256_file(path)}` |")
        return {_write_text(self.uri, "exported.md", "\n".join(lines) + "\n"): VisualizationType.MARKDOWN}

    def extract_metadata(self, data: ExportedModel) -> dict[str, MetadataType]:
        """Variant, size and the sha256 of each file."""
        return {
            "variant": data.variant,
            "size": StorageSize(data.size_bytes),
            "sha256": data.sha256(),
            "imgsz": data.imgsz,
            "source_sha256": data.source_sha256,
        }


class VariantReportMaterializer(BaseMaterializer):
    """Every exported variant's AP and latency and the serving choice: a table and an AP-against-latency plot."""

    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = (VariantReport,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.DATA_ANALYSIS

    def load(self, data_type: type[Any]) -> VariantReport:
        """Read the JSON back."""
        return VariantReport.from_dict(_read_json(self.uri, "variants.json"))

    def save(self, data: VariantReport) -> None:
        """Store as JSON."""
        _write_text(self.uri, "variants.json", json.dumps(data.to_dict(), indent=2))

    def save_visualizations(self, data: VariantReport) -> dict[str, VisualizationType]:
        """The decision and the table as Markdown, and AP against latency as a PNG."""
        return {
            _write_text(self.uri, "variants.md", data.markdown()): VisualizationType.MARKDOWN,
            _write_bytes(self.uri, "variants.png", data.plot()): VisualizationType.IMAGE,
        }

    def extract_metadata(self, data: VariantReport) -> dict[str, MetadataType]:
        """The chosen variant, and each variant's AP and median latency."""
        metadata: dict[str, MetadataType] = {"chosen": data.choice.chosen, "forced": data.choice.forced}
        for variant in data.variants:
            metadata[f"{variant.name}_AP"] = round(variant.stats["AP"], 4)
            metadata[f"{variant.name}_latency_ms"] = round(variant.latency.median_ms, 2)
        return metadata


def _as_array(png: bytes) -> Any:
    import numpy as np

    return np.frombuffer(png, dtype=np.uint8)
