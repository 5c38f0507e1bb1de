"""What an inference run produced: one folder per shard, merged into one, with its COCO results and summary.

Layout under a results folder:
    index.json                      one record per input file (`FileRecord`), the model version
    images/<name>/poses.json        DESIGN.md's inference JSON for the image
    images/<name>/overlay.jpg, avatar.jpg, avatar_on_original.jpg, coco_results.json
    videos/<name>/poses.json        {"video": {...}, "frames": [{"frame": i, "persons": [... with track_id]}]}
    videos/<name>/avatar.mp4, side_by_side.mp4, strip.jpg
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vtpose.errors import VtposeError

INDEX_FILE = "index.json"
POSES_FILE = "poses.json"
COCO_RESULTS_FILE = "coco_results.json"
IMAGES_DIR = "images"
VIDEOS_DIR = "videos"
OVERLAY_FILE = "overlay.jpg"
AVATAR_FILE = "avatar.jpg"
ON_ORIGINAL_FILE = "avatar_on_original.jpg"
AVATAR_VIDEO = "avatar.mp4"
SIDE_BY_SIDE_VIDEO = "side_by_side.mp4"
STRIP_FILE = "strip.jpg"


def output_name(name: str) -> str:
    """A file's output folder name: its relative path with "/" as "__" (one level, no collisions between a.jpg
    and a.png, which keep their suffix)."""
    return name.replace("/", "__")


@dataclass
class FileRecord:
    """One input file's outcome.

    Attributes:
        name: its path in the inputs.
        kind: "image", "video" or "other".
        ok: whether its outputs were written.
        reason: why not (ok False).
        persons: persons drawn (a video: the most in one frame).
        frames, fps, tracks: a video's frame count, frame rate and number of track ids.
        width, height: its size, pixels.
        seconds: wall time spent on it.
        busy_fps: a video's frames per second through the decode-infer-render-encode pipeline.
        image_id: an image's id in the COCO results JSON (set by the merge).
    """

    name: str
    kind: str
    ok: bool
    reason: str = ""
    persons: int = 0
    frames: int = 0
    fps: float = 0.0
    tracks: int = 0
    width: int = 0
    height: int = 0
    seconds: float = 0.0
    busy_fps: float = 0.0
    image_id: int | None = None


@dataclass
class InferenceResults:
    """A results folder (see the module docstring) and its index.

    Attributes:
        root: the folder.
        records: one per input file, by name.
        model_version: "<version>+<variant>" of the model that ran.
        info: facts for the record (the model's description, the inputs' source, shards).
    """

    root: Path
    records: list[FileRecord]
    model_version: str
    info: dict[str, Any] = field(default_factory=dict)

    def write_index(self) -> None:
        """Write index.json (atomically)."""
        from vtpose.paths import atomic_path

        index = {"model_version": self.model_version, "info": self.info, "files": [asdict(r) for r in self.records]}
        with atomic_path(self.root / INDEX_FILE) as tmp:
            tmp.write_text(json.dumps(index, indent=2))

    @classmethod
    def open(cls, root: Path) -> InferenceResults:
        """Read a results folder's index.

        Raises:
            VtposeError: the folder has no readable index.json.
        """
        try:
            index = json.loads((root / INDEX_FILE).read_text())
        except (OSError, ValueError) as error:
            raise VtposeError(f"{root}: not an inference results folder ({INDEX_FILE}: {error})") from error
        records = [FileRecord(**record) for record in index["files"]]
        return cls(root=root, records=records, model_version=index["model_version"], info=index.get("info", {}))

    def output_dir(self, record: FileRecord) -> Path:
        """The folder holding a file's outputs."""
        return self.root / (IMAGES_DIR if record.kind == "image" else VIDEOS_DIR) / output_name(record.name)

    def coco_results(self) -> list[dict[str, Any]]:
        """Every image's COCO results records (keypoints task), at the run's `conf`, with its `image_id`."""
        detections: list[dict[str, Any]] = []
        for record in self.records:
            if record.kind == "image" and record.ok:
                for detection in json.loads((self.output_dir(record) / COCO_RESULTS_FILE).read_text()):
                    detections.append({**detection, "image_id": record.image_id})
        return detections

    def summary(self) -> dict[str, Any]:
        """Counts, throughput and the model, and every bad input with its reason."""
        ok = [r for r in self.records if r.ok]
        images = [r for r in ok if r.kind == "image"]
        videos = [r for r in ok if r.kind == "video"]
        image_s = sum(r.seconds for r in images)
        video_s = sum(r.seconds for r in videos)
        frames = sum(r.frames for r in videos)
        return {
            "model_version": self.model_version,
            "model": self.info.get("description", ""),
            "inputs": len(self.records),
            "images": len(images),
            "videos": len(videos),
            "persons_in_images": sum(r.persons for r in images),
            "frames": frames,
            "tracks": sum(r.tracks for r in videos),
            "images_per_second": round(len(images) / image_s, 3) if image_s else 0.0,
            "video_frames_per_second": round(frames / video_s, 3) if video_s else 0.0,
            "bad_inputs": [{"file": r.name, "reason": r.reason} for r in self.records if not r.ok],
            "shards": self.info.get("shards", 1),
        }

    def summary_markdown(self) -> str:
        """The summary as the dashboard shows it: the totals, one row per file, the bad inputs."""
        summary = self.summary()
        lines = [
            f"# Inference: {summary['model'] or self.model_version}",
            "",
            f"{summary['images']} images ({summary['persons_in_images']} persons), {summary['videos']} videos "
            f"({summary['frames']} frames, {summary['tracks']} tracks); {summary['images_per_second']} images/s, "
            f"{summary['video_frames_per_second']} video frames/s; model_version `{self.model_version}`",
            "",
            "| file | kind | outcome | persons | frames | tracks | seconds |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in self.records:
            outcome = "ok" if r.ok else f"**bad**: {r.reason}"
            lines.append(
                f"| {r.name} | {r.kind} | {outcome} | {r.persons} | {r.frames or ''} | {r.tracks or ''} | "
                f"{r.seconds:.2f} |"
            )
        return "\n".join(lines) + "\n"

    def preview_images(self) -> dict[str, np.ndarray]:
        """Images for the dashboard: each image's overlay beside its avatar, and each video's strip of frames."""
        previews: dict[str, np.ndarray] = {}
        for record in self.records:
            if not record.ok:
                continue
            folder = self.output_dir(record)
            if record.kind == "image":
                tiles = [cv2.imread(str(folder / name)) for name in (OVERLAY_FILE, AVATAR_FILE)]
                previews[f"image {record.name}"] = _side_by_side([t for t in tiles if t is not None])
            else:
                strip = cv2.imread(str(folder / STRIP_FILE))
                if strip is not None:
                    previews[f"video {record.name}"] = strip
        return previews


def merge_results(
    shards: list[InferenceResults], out_dir: Path, image_ids: dict[str, int] | None, info: dict[str, Any]
) -> InferenceResults:
    """One results folder from the shards' (copies, in file-name order), each image numbered for the COCO results
    JSON: its id in the annotations where given, else 1, 2, ... in file-name order.

    Raises:
        VtposeError: the shards ran different model versions, or two shards hold the same file.
    """
    versions = {shard.model_version for shard in shards}
    if len(versions) != 1:
        raise VtposeError(f"the shards ran different model versions ({', '.join(sorted(versions))}); run again.")
    records: list[tuple[FileRecord, InferenceResults]] = sorted(
        ((record, shard) for shard in shards for record in shard.records), key=lambda pair: pair[0].name
    )
    names = [record.name for record, _ in records]
    if len(set(names)) != len(names):
        raise VtposeError("two shards processed the same input file; the shards overlap.")
    out_dir.mkdir(parents=True, exist_ok=False)
    merged = InferenceResults(root=out_dir, records=[], model_version=versions.pop(), info=info)
    next_id = 1
    for record, shard in records:
        if record.ok:
            source = shard.output_dir(record)
            shutil.copytree(source, merged.output_dir(record))
        if record.kind == "image" and record.ok:
            if image_ids is not None:
                record.image_id = image_ids[Path(record.name).name]
            else:
                record.image_id = next_id
                next_id += 1
        merged.records.append(record)
    merged.write_index()
    return merged


def image_ids_from(annotations: Path) -> dict[str, int]:
    """COCO image ids by file name, from an annotations JSON.

    Raises:
        VtposeError: unreadable, or not COCO (no "images" with file_name and id).
    """
    try:
        images = json.loads(annotations.read_text())["images"]
        return {Path(str(image["file_name"])).name: int(image["id"]) for image in images}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise VtposeError(
            f"inference.annotations {annotations}: not a COCO annotations JSON with images[].file_name and id "
            f"({type(error).__name__}: {error})"
        ) from error


def _side_by_side(tiles: list[np.ndarray], height: int = 360) -> np.ndarray:
    if not tiles:
        return np.zeros((8, 8, 3), np.uint8)
    scaled = [cv2.resize(t, (int(t.shape[1] * height / t.shape[0]), height)) for t in tiles]
    return np.concatenate(scaled, axis=1)
