"""The values pipeline steps hand each other: plain objects over a local folder or file.

Each has a materializer in `materializers/` that copies exactly the folder or file it is given into the
artifact store and back, so a step on another machine (a Kubernetes pod) sees the same thing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vtpose.errors import VtposeError

DATASET_MANIFEST = "dataset.json"


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class PoseDataset:
    """A COCO-format person-keypoints dataset in one folder.

    Layout under `root`:
        dataset.json                            manifest: name, source, splits, extra facts
        annotations/person_keypoints_{split}.json   COCO JSON, one per split
        images/{split}/{file_name}              the images the JSON names

    Attributes:
        root: the folder.
        name: a short name ("coco-person-mini").
        splits: split names in order ("train2017", "val2017").
        train_split / val_split: which split trains and which evaluates.
        source: where the data came from (a path or URL), for the record.
        info: free-form facts (counts, skipped records...) shown in the dashboard.
    """

    root: Path
    name: str
    splits: list[str]
    train_split: str
    val_split: str
    source: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    def annotation_file(self, split: str) -> Path:
        """The COCO JSON of a split."""
        return self.root / "annotations" / f"person_keypoints_{split}.json"

    def image_dir(self, split: str) -> Path:
        """The folder of a split's images."""
        return self.root / "images" / split

    def write_manifest(self) -> None:
        """Write dataset.json so `PoseDataset.open(root)` restores this object."""
        manifest = {
            "name": self.name,
            "splits": self.splits,
            "train_split": self.train_split,
            "val_split": self.val_split,
            "source": self.source,
            "info": self.info,
        }
        (self.root / DATASET_MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))

    @classmethod
    def open(cls, root: str | Path) -> PoseDataset:
        """Read a dataset folder written by `write_manifest`."""
        root = Path(root)
        manifest_path = root / DATASET_MANIFEST
        if not manifest_path.is_file():
            raise VtposeError(f"{manifest_path}: missing; {root} is not a vtpose dataset folder.")
        manifest = json.loads(manifest_path.read_text())
        return cls(root=root, **manifest)


@dataclass
class YoloPoseDataset:
    """A dataset in Ultralytics' YOLO-pose layout, ready for `model.train(data=...)`.

    Layout under `root`: `data.yaml` (paths relative to root, `kpt_shape`, `flip_idx`, `names`),
    `images/{split}/`, `labels/{split}/*.txt`, `summary.json` (the conversion summary).
    """

    root: Path
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def data_yaml(self) -> Path:
        """The dataset YAML Ultralytics trains on."""
        return self.root / "data.yaml"


@dataclass
class PoseWeights:
    """One weights file (`.pt` or `.onnx`) and what it is.

    Attributes:
        path: the file.
        architecture: e.g. "yolo11n-pose".
        imgsz: the image size it was trained or exported for.
        origin: "pretrained", "trained" or "exported", for the record.
    """

    path: Path
    architecture: str = ""
    imgsz: int = 640
    origin: str = "trained"

    @property
    def sha256(self) -> str:
        """Hex sha256 of the file, to prove which weights were loaded."""
        return sha256_file(self.path)


@dataclass
class ExportedModel:
    """One exported variant of trained weights: an `.onnx` file or an OpenVINO IR folder.

    Attributes:
        path: the `.onnx` file, or the folder holding the IR (`model.xml`, `model.bin`, metadata).
        variant: which variant it is ("onnx", "openvino", "openvino-int8"; see `vtpose.training.variants`).
        imgsz: the inference size it was exported for, pixels.
        source_sha256: hex sha256 of the `.pt` it was exported from.
        settings: how it was made (for INT8: calibration images, preset, ignored scope), for the record.
    """

    path: Path
    variant: str
    imgsz: int = 640
    source_sha256: str = ""
    settings: dict[str, Any] = field(default_factory=dict)

    def files(self) -> list[Path]:
        """The files it consists of, sorted (the file itself, or every file in the folder)."""
        if self.path.is_file():
            return [self.path]
        return sorted(p for p in self.path.rglob("*") if p.is_file())

    def sha256(self) -> dict[str, str]:
        """Hex sha256 of each file, by name relative to the folder (the file name for a single file)."""
        base = self.path if self.path.is_dir() else self.path.parent
        return {p.relative_to(base).as_posix(): sha256_file(p) for p in self.files()}

    @property
    def size_bytes(self) -> int:
        """Bytes on disk, all files together."""
        return sum(p.stat().st_size for p in self.files())
