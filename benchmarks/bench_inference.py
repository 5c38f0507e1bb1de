"""The inference pipeline against what a user would run instead, side by side in one run.

Video: the pipeline's shard step (`infer_shard_0`, ZenML's own start-to-end record) on data/media/dance.avi against
`vtpose animate --side-by-side` (`animate_video`) on the same video, model, variant and size; the step writes the
side-by-side video and the avatar-only one, and the per-frame poses. The library call behind the step
(`vtpose.inference.infer_shard`, no ZenML) is timed too, so the difference splits into ZenML's artifact handling and
the step's own extra work. Images: the pipeline's step on a folder of the val images, images per second, beside the
same library call. Each pipeline run is in a fresh, isolated ZenML store (cache off).

    .venv/bin/python benchmarks/bench_inference.py [--variant openvino-int8] [--imgsz 640] [--images 40] [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VIDEO = PROJECT_ROOT / "data" / "media" / "dance.avi"
VAL_IMAGES = PROJECT_ROOT / "data" / "coco-person-mini" / "images" / "val2017"
WEIGHTS = PROJECT_ROOT / "data" / "pretrained" / "yolo11n-pose.pt"
GOAL_RATIO = 1.1


def model_file(variant: str, imgsz: int) -> Path:
    """The file the variant opens, exported once into the CLI's cache (what `vtpose animate --backend` uses)."""
    from vtpose.backends.export import cached_export
    from vtpose.paths import EXPORT_CACHE_DIR

    return cached_export(WEIGHTS, variant, imgsz, EXPORT_CACHE_DIR)


def animate_seconds(model: Path, imgsz: int, out: Path) -> tuple[float, int]:
    """Wall seconds and frames of `vtpose animate --side-by-side` on the video (model loading included, as a user
    waits for it)."""
    from vtpose.studio.video import animate_video

    started = time.perf_counter()
    stats = animate_video(VIDEO, out / "animate.mp4", model, imgsz, side_by_side=True, progress=False)
    return time.perf_counter() - started, stats.frames


def library_seconds(inputs: Path, model: Path, imgsz: int, out: Path) -> float:
    """Wall seconds of the shard step's library call on `inputs` (no ZenML)."""
    from vtpose.inference import InferenceConfig, MediaBatch, infer_shard

    batch = MediaBatch(root=inputs)
    config = InferenceConfig(imgsz=imgsz)
    started = time.perf_counter()
    infer_shard(batch, batch.files(config.exclude), model, "bench", config, out)
    return time.perf_counter() - started


def pipeline_step_seconds(inputs: Path, variant: str, imgsz: int, home: Path) -> tuple[float, float]:
    """(the shard step's seconds as ZenML recorded them, the whole run's wall seconds), in a fresh store."""
    config = yaml.safe_load((PROJECT_ROOT / "configs" / "inference.yaml").read_text())
    config["parameters"]["inference"].update(inputs=str(inputs), variant=variant, imgsz=imgsz)
    config.pop("steps", None)  # no MLflow tracker in the bench store
    home.mkdir(parents=True, exist_ok=True)
    config_path = home / "inference.yaml"
    config_path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "ZENML_CONFIG_PATH": str(home / "config"), "ZENML_ANALYTICS_OPT_IN": "false",
           "ZENML_REPOSITORY_PATH": str(home / "repo")}  # fmt: skip
    (home / "repo" / ".zen").mkdir(parents=True, exist_ok=True)
    script = f"""
import time
from zenml.client import Client
from zenml.utils import source_utils
source_utils.set_custom_source_root({str(PROJECT_ROOT)!r})
from pipelines import inference_pipeline
started = time.perf_counter()
run = inference_pipeline.with_options(config_path={str(config_path)!r}, enable_cache=False)()
wall = time.perf_counter() - started
step = Client().get_pipeline_run(run.id).steps["infer_shard_0"]
print("SECONDS", (step.end_time - step.start_time).total_seconds(), wall)
"""
    result = subprocess.run([sys.executable, "-c", script], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True)
    if result.returncode:
        sys.exit(result.stdout[-3000:] + result.stderr[-3000:])
    line = next(x for x in result.stdout.splitlines() if x.startswith("SECONDS"))
    step_s, wall_s = line.split()[1:]
    return float(step_s), float(wall_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="openvino-int8")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--images", type=int, default=40, help="val images in the image folder")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each video measurement (the best is kept)")
    args = parser.parse_args()
    model = model_file(args.variant, args.imgsz)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="vtpose-bench-inference-") as tmp:
        root = Path(tmp)
        videos, images = root / "videos", root / "images"
        videos.mkdir()
        shutil.copy2(VIDEO, videos / VIDEO.name)
        images.mkdir()
        for path in sorted(VAL_IMAGES.glob("*.jpg"))[: args.images]:
            shutil.copy2(path, images / path.name)
        # Alternated, best of --repeat each: the user's alternative, the library, the pipeline.
        animate_runs, library_runs, step_runs = [], [], []
        for i in range(args.repeat):
            animate_runs.append(animate_seconds(model, args.imgsz, root))
            library_runs.append(library_seconds(videos, model, args.imgsz, root / f"library-video-{i}"))
            step_runs.append(pipeline_step_seconds(videos, args.variant, args.imgsz, root / f"zenml-video-{i}"))
        animate_s, frames = min(animate_runs)
        video_library_s = min(library_runs)
        video_step_s, video_wall_s = min(step_runs)
        image_library_s = library_seconds(images, model, args.imgsz, root / "library-images")
        image_step_s, image_wall_s = pipeline_step_seconds(images, args.variant, args.imgsz, root / "zenml-images")
    ratio = video_step_s / animate_s
    print(f"machine: load average {load:.1f} at the start (2 cores); {args.variant}, imgsz {args.imgsz}")
    print(f"video {VIDEO.name}, {frames} frames:")
    print(f"  vtpose animate --side-by-side   {animate_s:7.1f} s   {frames / animate_s:6.1f} frames/s")
    print(f"  infer_shard (library, no ZenML) {video_library_s:7.1f} s   {frames / video_library_s:6.1f} frames/s")
    print(f"  pipeline step infer_shard_0     {video_step_s:7.1f} s   {frames / video_step_s:6.1f} frames/s"
          f"   (whole run {video_wall_s:.1f} s)")  # fmt: skip
    verdict = "met" if ratio <= GOAL_RATIO else "NOT met"
    print(f"  step / animate: {ratio:.2f}x (goal <= {GOAL_RATIO}x: {verdict})")
    print(f"images: {args.images} val images")
    print(f"  infer_shard (library, no ZenML) {image_library_s:7.1f} s   {args.images / image_library_s:6.2f} images/s")
    print(f"  pipeline step infer_shard_0     {image_step_s:7.1f} s   {args.images / image_step_s:6.2f} images/s"
          f"   (whole run {image_wall_s:.1f} s)")  # fmt: skip


if __name__ == "__main__":
    main()
