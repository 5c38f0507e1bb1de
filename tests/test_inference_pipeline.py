"""The inference pipeline for real, in the isolated test store: a few val images, a short clip of dance.avi and bad
inputs of every kind through what runs (on PyTorch, so `vtpose evaluate` can score the same weights), then the same
inputs again (cached), in two shards (the same results), and with `on_error: fail` (stops at the first bad one)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import mlflow
import pytest
import yaml
from zenml.client import Client

from vtpose.keypoints import COCO_STAT_NAMES
from vtpose.paths import COCO_MINI_DIR, INFERENCE_CONFIG, MEDIA_DIR
from vtpose.studio.avatar import background_files

pytestmark = pytest.mark.slow

# The first val images (by name) with a person big enough to pose: each must give an avatar.
VAL_IMAGE_COUNT = 3
MIN_AREA = 96 * 96
CLIP_FRAMES, CLIP_FPS, CLIP_SIZE = 16, 25.0, (640, 360)
IMGSZ = 320
BAD = {
    "broken.jpg": "cannot be read as an image",
    "broken.mp4": "cannot be read as a video",
    "notes.csv": "neither an image nor a video",
    "empty_room.jpg": "nobody found",
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The input folder and an annotations JSON holding only its val images."""
    root = tmp_path_factory.mktemp("inference")
    media = root / "media"
    (media / "photos").mkdir(parents=True)
    ground_truth = json.loads((COCO_MINI_DIR / "annotations" / "person_keypoints_val2017.json").read_text())
    posed = {a["image_id"] for a in ground_truth["annotations"] if a["num_keypoints"] >= 10 and a["area"] > MIN_AREA}
    chosen = sorted((i for i in ground_truth["images"] if i["id"] in posed), key=lambda i: i["file_name"])
    names = [image["file_name"] for image in chosen[:VAL_IMAGE_COUNT]]
    for name in names:
        (media / "photos" / name).write_bytes((COCO_MINI_DIR / "images" / "val2017" / name).read_bytes())
    capture = cv2.VideoCapture(str(MEDIA_DIR / "dance.avi"))
    writer = cv2.VideoWriter(str(media / "clip.avi"), cv2.VideoWriter.fourcc(*"MJPG"), CLIP_FPS, CLIP_SIZE)
    for _ in range(CLIP_FRAMES):
        ok, frame = capture.read()
        assert ok
        writer.write(cv2.resize(frame, CLIP_SIZE))
    writer.release()
    capture.release()
    (media / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (media / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 and then nothing")
    (media / "notes.csv").write_text("a,b\n1,2\n")
    (media / "README.md").write_text("excluded by the default patterns\n")
    (media / "empty_room.jpg").write_bytes(next(iter(background_files().values())).read_bytes())
    ids = {image["id"] for image in ground_truth["images"] if image["file_name"] in names}
    subset = {
        **ground_truth,
        "images": [image for image in ground_truth["images"] if image["id"] in ids],
        "annotations": [a for a in ground_truth["annotations"] if a["image_id"] in ids],
    }
    annotations = root / "person_keypoints_subset.json"
    annotations.write_text(json.dumps(subset))
    return {"media": media, "annotations": annotations, "root": root}


def _run(inputs: dict[str, Path], **overrides: Any) -> Any:
    from pipelines import inference_pipeline

    config = yaml.safe_load(INFERENCE_CONFIG.read_text())
    config["parameters"]["inference"].update(inputs=str(inputs["media"]), imgsz=IMGSZ, variant="pytorch", **overrides)
    path = inputs["root"] / f"inference-{len(list(inputs['root'].glob('inference-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(config))
    return Client().get_pipeline_run(inference_pipeline.with_options(config_path=str(path))().id)


def _output(run: Any, step: str, name: str) -> Any:
    return run.steps[step].outputs[name][0].load()


@pytest.fixture(scope="module")
def first(zenml_stack: str, inputs: dict[str, Path]) -> Any:
    return _run(inputs, annotations=str(inputs["annotations"]))


def test_every_output_has_the_right_shape(first: Any) -> None:
    assert first.status.value == "completed"
    results = _output(first, "merge_inference", "inference_results")
    summary = _output(first, "merge_inference", "inference_summary")
    assert (summary["images"], summary["videos"], summary["frames"]) == (3, 1, CLIP_FRAMES)
    assert summary["inputs"] == 3 + 1 + len(BAD)  # README.md is left out by `exclude`
    assert {bad["file"]: bad["reason"] for bad in summary["bad_inputs"]}.keys() == BAD.keys()
    for bad in summary["bad_inputs"]:
        assert bad["reason"].startswith(bad["file"]) and BAD[bad["file"]] in bad["reason"]
    choice = _output(first, "choose_inference_model", "model_choice")
    assert summary["model_version"] == choice["model_version"] == results.model_version
    assert choice["variant"] == "pytorch"
    for record in results.records:
        folder = results.output_dir(record)
        if not record.ok:
            assert not folder.exists()  # nothing half-written for a bad input
            continue
        poses = json.loads((folder / "poses.json").read_text())
        assert poses["model_version"] == choice["model_version"]
        if record.kind == "image":
            assert poses["persons"] and all(len(p["keypoints"]) == 17 for p in poses["persons"])
            for name in ("overlay.jpg", "avatar.jpg", "avatar_on_original.jpg"):
                assert cv2.imread(str(folder / name)) is not None, name
        else:
            assert len(poses["frames"]) == CLIP_FRAMES and poses["video"]["fps"] == pytest.approx(CLIP_FPS)
            persons = [p for frame in poses["frames"] for p in frame["persons"]]
            assert persons and all(len(p["keypoints"]) == 17 and "track_id" in p for p in persons)
            assert record.tracks >= 1
            for name, width in (("avatar.mp4", CLIP_SIZE[0]), ("side_by_side.mp4", 2 * CLIP_SIZE[0])):
                video = cv2.VideoCapture(str(folder / name))
                assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == CLIP_FRAMES, name
                assert video.get(cv2.CAP_PROP_FPS) == pytest.approx(CLIP_FPS), name
                assert int(video.get(cv2.CAP_PROP_FRAME_WIDTH)) == width, name
                video.release()
    # The dashboard's views: the summary table and one picture per good input.
    artifact = first.steps["merge_inference"].outputs["inference_results"][0]
    kinds = [v.type.value for v in artifact.visualizations]
    assert kinds.count("markdown") == 1 and kinds.count("image") == 4


def test_the_coco_results_score_as_vtpose_evaluate_does(first: Any, inputs: dict[str, Path]) -> None:
    from vtpose.training.evaluate import load_ground_truth, score_keypoints

    detections = _output(first, "merge_inference", "coco_results")
    ids = {image["id"] for image in json.loads(inputs["annotations"].read_text())["images"]}
    assert {d["image_id"] for d in detections} == ids
    stats, _ = score_keypoints(load_ground_truth(inputs["annotations"]), detections)
    weights = _output(first, "choose_inference_model", "serving_model").path
    # The images `vtpose evaluate` reads: the val folder (the annotations name only the three).
    command = [sys.executable, "-m", "vtpose.cli", "evaluate", str(weights), "--annotations",
               str(inputs["annotations"]), "--images", str(COCO_MINI_DIR / "images" / "val2017"),
               "--imgsz", str(IMGSZ), "--json"]  # fmt: skip
    evaluated = json.loads(subprocess.run(command, capture_output=True, text=True, check=True, timeout=600).stdout)
    assert {name: stats[name] for name in COCO_STAT_NAMES} == pytest.approx(evaluated, abs=1e-9)


def test_one_mlflow_run_with_throughput_and_model_version(first: Any) -> None:
    tracker = Client().active_stack.experiment_tracker
    mlflow.set_tracking_uri(tracker.get_tracking_uri())
    runs = mlflow.search_runs(experiment_names=["inference_pipeline"], output_format="list")
    [run] = [r for r in runs if r.info.run_name == first.name]
    summary = _output(first, "merge_inference", "inference_summary")
    assert run.data.params["model_version"] == summary["model_version"]
    assert run.data.metrics["video_frames_per_second"] == pytest.approx(summary["video_frames_per_second"])
    assert run.data.metrics["bad_inputs"] == len(BAD)


def test_the_same_inputs_again_are_cached(first: Any, inputs: dict[str, Path]) -> None:
    again = _run(inputs, annotations=str(inputs["annotations"]))
    assert again.steps["infer_shard_0"].status.value == "cached"
    assert again.steps["merge_inference"].status.value == "cached"


def test_two_shards_give_the_results_of_one(first: Any, inputs: dict[str, Path]) -> None:
    sharded = _run(inputs, annotations=str(inputs["annotations"]), shards=2)
    assert {"infer_shard_0", "infer_shard_1"} <= set(sharded.steps)
    shard_files = [{r.name for r in _output(sharded, f"infer_shard_{i}", "shard_results").records} for i in range(2)]
    assert shard_files[0] and shard_files[1] and not shard_files[0] & shard_files[1]
    one, two = (_output(run, "merge_inference", "coco_results") for run in (first, sharded))
    assert two == one

    def comparable(run: Any) -> list[tuple[Any, ...]]:
        records = _output(run, "merge_inference", "inference_results").records
        return [(r.name, r.kind, r.ok, r.reason, r.persons, r.frames, r.tracks, r.image_id) for r in records]

    assert comparable(sharded) == comparable(first)


def test_on_error_fail_stops_at_the_first_bad_input(zenml_stack: str, inputs: dict[str, Path]) -> None:
    with pytest.raises(RuntimeError, match=r"failure in step.*infer_shard_0"):
        _run(inputs, on_error="fail")
    [latest] = Client().list_pipeline_runs(pipeline_name="inference_pipeline", sort_by="desc:created", size=1).items
    reason = Client().get_pipeline_run(latest.id).steps["infer_shard_0"].exception_info.message
    # broken.jpg comes first in file-name order.
    assert reason.startswith("broken.jpg: cannot be read as an image") and "on_error is fail" in reason


def test_a_bad_config_is_refused_before_anything_runs() -> None:
    from pydantic import ValidationError

    from vtpose.inference import InferenceConfig

    with pytest.raises(ValidationError, match="shards"):
        InferenceConfig(shards=0)
    with pytest.raises(ValidationError, match="imgsz"):
        InferenceConfig(imgsz=100)
    assert InferenceConfig().exclude == ["*.md", "*.txt"]
