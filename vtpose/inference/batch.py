"""One shard of an inference run: every file of it turned into poses and avatars, or listed with why not.

Images: the persons as DESIGN.md's inference JSON, the skeleton overlay, the avatar on the chosen background and
over the person (`vtpose avatar` and `--on-original`), and COCO results records at the evaluation's threshold.
Videos: per-frame poses with track ids, tracked and smoothed as `vtpose animate` does, the avatar video and the
side-by-side video, and a strip of frames for the dashboard. Each file's outputs are written to a temporary
folder and renamed into place only when complete, so a file's outputs appear whole or not at all.
"""

from __future__ import annotations

import json
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vtpose.data._fs import atomic_dir
from vtpose.errors import VtposeError
from vtpose.inference.config import InferenceConfig
from vtpose.inference.media import MediaBatch, media_kind
from vtpose.inference.results import (
    AVATAR_FILE,
    AVATAR_VIDEO,
    COCO_RESULTS_FILE,
    IMAGES_DIR,
    ON_ORIGINAL_FILE,
    OVERLAY_FILE,
    POSES_FILE,
    SIDE_BY_SIDE_VIDEO,
    STRIP_FILE,
    VIDEOS_DIR,
    FileRecord,
    InferenceResults,
    output_name,
)
from vtpose.overlay import draw_skeletons, write_image
from vtpose.paths import resolve_project_path
from vtpose.pose import PersonPose, load_image

# Frames shown in a video's strip, evenly spaced, each at most this wide.
STRIP_FRAMES = 6
STRIP_FRAME_WIDTH = 320


def infer_shard(
    batch: MediaBatch,
    files: list[str],
    model_path: Path,
    model_version: str,
    config: InferenceConfig,
    out_dir: Path,
    image_ids: dict[str, int] | None = None,
) -> InferenceResults:
    """Run the model over `files` of `batch` and write every output under `out_dir`.

    Args:
        batch: the inputs.
        files: the shard's files (relative paths in `batch`).
        model_path: the file the backend opens (`.pt`, `.onnx` or an IR's `.xml`).
        model_version: "<version>+<variant>", written into every JSON record.
        config: what to draw and how to treat bad inputs.
        out_dir: a new folder for the shard's outputs.
        image_ids: COCO image ids by file name (the config's annotations); None: numbered by the caller's merge.

    Returns:
        The shard's results: one record per file, in `files`' order.

    Raises:
        VtposeError: with `on_error: fail`, the first bad input (naming the file and the reason).
    """
    from vtpose.backends import open_backend

    out_dir.mkdir(parents=True, exist_ok=False)
    from vtpose.studio.video import INFERENCE_THREADS

    models: dict[str, Any] = {}

    def model(kind: str) -> Any:
        # Opened on first use: a shard of only images never loads the video one. Images are predicted one after
        # the other with every core at the evaluation's threshold; a video's frames as `vtpose animate` predicts
        # them (its threads, its threshold), while other threads decode, draw and encode.
        if kind not in models:
            if kind == "image":
                models[kind] = open_backend(model_path, imgsz=config.imgsz, conf=config.conf)
            else:
                models[kind] = open_backend(
                    model_path, imgsz=config.imgsz, conf=config.display_conf, threads=INFERENCE_THREADS
                )
        return models[kind]

    records: list[FileRecord] = []
    for name in files:
        source = batch.root / name
        kind = media_kind(source)
        started = time.perf_counter()
        try:
            if kind == "image":
                record = _image(source, name, model("image"), model_version, config, out_dir, image_ids)
            elif kind == "video":
                record = _video(source, name, model("video"), model_version, config, out_dir)
            else:
                raise VtposeError(f"{name}: neither an image nor a video (by its suffix); remove it from the inputs.")
        except VtposeError as error:
            if config.on_error == "fail":
                raise VtposeError(
                    f"{error} (inference.on_error is fail: the run stops at the first bad input)"
                ) from error
            record = FileRecord(name=name, kind=kind, ok=False, reason=str(error))
        record.seconds = time.perf_counter() - started
        records.append(record)
    results = InferenceResults(root=out_dir, records=records, model_version=model_version)
    results.write_index()
    return results


def _image(
    source: Path,
    name: str,
    predictor: Any,
    model_version: str,
    config: InferenceConfig,
    out_dir: Path,
    image_ids: dict[str, int] | None,
) -> FileRecord:
    from vtpose.studio.avatar import render_scene, select_persons
    from vtpose.training.evaluate import COCO_KEYPOINT_MAX_DETS, poses_to_coco_results

    try:
        bgr = load_image(source)
    except VtposeError as error:
        raise VtposeError(f"{name}: cannot be read as an image ({_without(error, source)})") from error
    detected: list[PersonPose] = predictor.predict_one(bgr)
    persons = [p for p in detected if p.score >= config.display_conf]
    if not persons:
        raise VtposeError(f"{name}: nobody found (no person scored {config.display_conf} or more)")
    height, width = bgr.shape[:2]
    image_id = (image_ids or {}).get(Path(name).name)
    if image_ids is not None and image_id is None:
        raise VtposeError(f"{name}: not in inference.annotations' images; add it there or remove the file.")
    with atomic_dir(out_dir / IMAGES_DIR / output_name(name)) as folder:
        record = {
            "image": {"width": width, "height": height},
            "persons": [p.to_json() for p in persons],
            "model_version": model_version,
        }
        (folder / POSES_FILE).write_text(json.dumps(record))
        write_image(folder / OVERLAY_FILE, draw_skeletons(bgr, persons))
        chosen = select_persons(persons, config.person)
        avatar, background = _avatar(config), _background(config)
        write_image(folder / AVATAR_FILE, render_scene(bgr, chosen, avatar, background, source_name=name))
        write_image(folder / ON_ORIGINAL_FILE, render_scene(bgr, chosen, avatar, on_original=True, source_name=name))
        # Ids are the annotations' where given, else 0 here and numbered in file order by the merge.
        coco = poses_to_coco_results(image_id or 0, detected[:COCO_KEYPOINT_MAX_DETS])
        (folder / COCO_RESULTS_FILE).write_text(json.dumps(coco))
    return FileRecord(name=name, kind="image", ok=True, persons=len(persons), width=width, height=height)


def _video(
    source: Path, name: str, predictor: Any, model_version: str, config: InferenceConfig, out_dir: Path
) -> FileRecord:
    from vtpose.studio.avatar.scene import FrameRenderer
    from vtpose.studio.motion import PoseSmoother, PoseTracker
    from vtpose.studio.video import INFERENCE_THREADS, open_video, run_video_pipeline, torch_threads, video_writer

    try:
        capture, info = open_video(source)
    except VtposeError as error:
        raise VtposeError(f"{name}: cannot be read as a video ({_without(error, source)})") from error
    if info.frame_count is None:
        capture.release()
        raise VtposeError(f"{name}: not a video file (no frame count)")
    frames: list[dict[str, Any]] = []
    tracks: set[int] = set()
    strip_at = set(np.linspace(0, max(info.frame_count - 1, 0), STRIP_FRAMES).round().astype(int).tolist())
    strip: list[np.ndarray] = []
    try:
        tracker, smoother = PoseTracker(), PoseSmoother(info.fps)
        renderer = FrameRenderer((info.width, info.height), _avatar(config), _background(config), side_by_side=True)

        def analyse(frame: np.ndarray) -> list[PersonPose]:
            persons: list[PersonPose] = smoother.update(tracker.update(predictor.predict_one(frame)))
            frames.append({"frame": len(frames), "persons": [p.to_json() for p in persons]})
            tracks.update(p.track_id for p in persons if p.track_id is not None)
            return persons

        with atomic_dir(out_dir / VIDEOS_DIR / output_name(name)) as folder:
            size = (info.width, info.height)
            with (
                video_writer(folder / SIDE_BY_SIDE_VIDEO, info.fps, renderer.output_size) as both,
                video_writer(folder / AVATAR_VIDEO, info.fps, size) as avatar_only,
            ):
                written = [0]

                def write(side_by_side: np.ndarray) -> None:
                    both.write(side_by_side)
                    avatar_only.write(np.ascontiguousarray(side_by_side[:, info.width :]))
                    if written[0] in strip_at:
                        strip.append(_thumbnail(side_by_side))
                    written[0] += 1

                # The first call sizes the runtime's buffers; done before the clock, as `vtpose animate` does.
                predictor.predict_one(np.zeros((info.height, info.width, 3), np.uint8))
                threads = torch_threads(INFERENCE_THREADS) if predictor.name == "pytorch" else nullcontext()
                with threads:
                    stats = run_video_pipeline(capture, analyse, renderer.render, write)
            if stats.frames == 0:
                raise VtposeError(f"{name}: no frame could be decoded")
            poses = {
                "video": {"width": info.width, "height": info.height, "fps": info.fps, "frames": stats.frames},
                "model_version": model_version,
                "frames": frames,
            }
            (folder / POSES_FILE).write_text(json.dumps(poses))
            write_image(folder / STRIP_FILE, np.concatenate(strip, axis=1) if strip else np.zeros((8, 8, 3), np.uint8))
    finally:
        capture.release()
    return FileRecord(
        name=name, kind="video", ok=True, persons=max((len(f["persons"]) for f in frames), default=0),
        frames=stats.frames, fps=info.fps, tracks=len(tracks), width=info.width, height=info.height,
        busy_fps=stats.fps,
    )  # fmt: skip


def _without(error: Exception, source: Path) -> str:
    """The error's message without the input's temporary path (the record names the file already)."""
    return str(error).replace(f"{source}: ", "").replace(str(source), source.name)


def _thumbnail(frame: np.ndarray) -> np.ndarray:
    height, width = frame.shape[:2]
    scale = STRIP_FRAME_WIDTH * 2 / width  # a side-by-side frame: two frames wide
    return cv2.resize(frame, (int(width * scale), int(height * scale)), interpolation=cv2.INTER_AREA)


def _avatar(config: InferenceConfig) -> str | None:
    """A prepared name stays a name; a YAML path is read from the project root when relative."""
    if config.avatar is None or not config.avatar.lower().endswith((".yaml", ".yml")):
        return config.avatar
    return str(resolve_project_path(config.avatar))


def _background(config: InferenceConfig) -> str | None:
    if config.background is None or "." not in Path(config.background).name:
        return config.background
    return str(resolve_project_path(config.background))
