"""`vtpose infer` (DESIGN.md's JSON, -o), and which weights inference takes without --weights.

Without `--weights`, `vtpose infer`, `vtpose avatar` and `vtpose animate` must use what `vtpose.serving.what_runs`
names: the production version of the registered model where there is one, else the pretrained checkpoint (on
its serving variant), and say so in one stderr line. The production weights here are the
pretrained checkpoint with its keypoint head shifted (every keypoint's x offset raised), so they find the same
people but put their keypoints elsewhere: an output made with them cannot be mistaken for the pretrained one's.

Every command runs as a user runs it (the `vtpose` executable, in a subprocess) against a ZenML store of its own:
one with that production version, registered through ZenML's own artifact and model APIs, and one with nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from vtpose.keypoints import NUM_KEYPOINTS
from vtpose.paths import MEDIA_DIR, PRETRAINED_WEIGHTS, PROJECT_ROOT
from vtpose.serving.what_runs import PRETRAINED_VARIANT, PRETRAINED_VERSION, describe
from vtpose.training.registry import EXPORT_CACHE, MODEL_NAME, WEIGHTS_ARTIFACT

STREAMER = MEDIA_DIR / "game-streamer-tips.jpg"
DANCE = MEDIA_DIR / "dance.avi"
VTPOSE = Path(sys.executable).with_name("vtpose")
# Raw keypoint x offsets are decoded as (2 * raw + anchor) * stride: +0.25 moves every keypoint 4-16 px right.
KEYPOINT_SHIFT = 0.25

REGISTER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from zenml import Model, link_artifact_to_model, save_artifact
    from zenml.client import Client
    from materializers import PoseWeightsMaterializer
    from vtpose.artifacts import PoseWeights

    name, artifact_name, weights = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    client = Client()
    client.create_model(name=name)
    version = client.create_model_version(model_name_or_id=name)
    artifact = save_artifact(
        PoseWeights(path=weights, architecture="yolo11n-pose", imgsz=640, origin="trained"),
        name=artifact_name,
        materializer=PoseWeightsMaterializer,
    )
    link_artifact_to_model(artifact, model=Model(name=name, version=version.number))
    Model(name=name, version=version.number).set_stage("production", force=True)
    print(version.id)
    """
)


def _store_env(root: Path) -> dict[str, str]:
    """An environment whose ZenML store and repository are fresh folders under `root`."""
    (root / "repo" / ".zen").mkdir(parents=True)
    env = {**os.environ, "ZENML_CONFIG_PATH": str(root / "config"), "ZENML_REPOSITORY_PATH": str(root / "repo")}
    env["ZENML_CUSTOM_SOURCE_ROOT"] = str(PROJECT_ROOT)
    env.pop("ZENML_STORE_URL", None)
    return env


def _shifted_weights(path: Path) -> Path:
    import torch

    checkpoint = torch.load(PRETRAINED_WEIGHTS, map_location="cpu", weights_only=False)
    head = checkpoint["model"].model[-1]
    with torch.no_grad():
        for branch in head.cv4:
            branch[-1].bias[0::3] += KEYPOINT_SHIFT  # x of each of the 17 keypoints (x, y, visibility)
    torch.save(checkpoint, path)
    return path


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """(production store env, empty store env, the production weights file, the production version id)."""
    root = tmp_path_factory.mktemp("infer-stores")
    production_weights = _shifted_weights(root / "production.pt")
    production = _store_env(root / "production")
    result = subprocess.run(
        [sys.executable, "-c", REGISTER, MODEL_NAME, WEIGHTS_ARTIFACT, str(production_weights)],
        env=production,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    version_id = result.stdout.strip().splitlines()[-1]
    yield production, _store_env(root / "empty"), production_weights, version_id
    shutil.rmtree(EXPORT_CACHE / version_id, ignore_errors=True)  # the local copy what_runs() made


def _vtpose(env: dict[str, str], *args: str | Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(VTPOSE), *map(str, args)], env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def _model_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one stderr line naming the model that ran."""
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("model: ")]
    return line


def what_runs_pretrained() -> str:
    """What the resolver says with nothing in production."""
    return describe("pretrained", MODEL_NAME, PRETRAINED_VERSION, PRETRAINED_VARIANT)


def _keypoints(record: dict[str, Any]) -> np.ndarray:
    return np.array([p["keypoints"] for p in record["persons"]], dtype=np.float64)


def _frames(video: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(video))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


def test_infer_prints_the_design_json_and_writes_the_overlay(tmp_path: Path) -> None:
    overlay = tmp_path / "overlay.png"
    result = _vtpose(dict(os.environ), "infer", STREAMER, "--weights", PRETRAINED_WEIGHTS, "--json", "-o", overlay)
    assert _model_line(result) == f"model: {PRETRAINED_WEIGHTS} (--weights), pytorch"
    record = json.loads(result.stdout)
    photo = cv2.imread(str(STREAMER))
    height, width = photo.shape[:2]
    assert set(record) == {"image", "persons", "model_version"}
    assert record["image"] == {"width": width, "height": height}
    assert record["model_version"] == f"{PRETRAINED_WEIGHTS.name}+pytorch"  # --weights: the file stands for a version
    assert record["persons"], "the streamer is in the photo"
    for person in record["persons"]:
        assert set(person) == {"bbox", "score", "keypoints"}
        x, y, w, h = person["bbox"]
        assert x >= 0 and y >= 0 and w > 0 and h > 0 and x + w <= width + 1 and y + h <= height + 1
        assert 0.25 <= person["score"] <= 1.0  # --conf default
        keypoints = np.array(person["keypoints"])
        assert keypoints.shape == (NUM_KEYPOINTS, 3)
        assert ((keypoints[:, 2] >= 0) & (keypoints[:, 2] <= 1)).all()
        assert (keypoints[:, 0] >= 0).all() and (keypoints[:, 0] <= width).all()
        assert (keypoints[:, 1] >= 0).all() and (keypoints[:, 1] <= height).all()
    # The same numbers as the library's predictor on the same image and weights (pixels, COCO order).
    from vtpose.backends import open_backend

    persons = open_backend(PRETRAINED_WEIGHTS).predict_one(photo)
    assert len(persons) == len(record["persons"])
    np.testing.assert_allclose(_keypoints(record), np.array([p.keypoints for p in persons]), atol=0.05)
    # The overlay: the photo with skeletons drawn on it, at the photo's size.
    drawn = cv2.imread(str(overlay))
    assert drawn is not None and drawn.shape == photo.shape
    assert np.abs(drawn.astype(int) - photo.astype(int)).max() > 100 and (drawn != photo).any(axis=2).mean() < 0.2
    text = _vtpose(dict(os.environ), "infer", STREAMER, "--weights", PRETRAINED_WEIGHTS).stdout
    assert text.startswith(f"{STREAMER}: {width}x{height}, {len(persons)} person(s)")


@pytest.mark.slow  # a model registered in a real ZenML store, then the CLI run in several processes
def test_infer_without_weights_uses_the_production_version(stores: Any) -> None:
    production, empty, production_weights, version_id = stores
    chosen = _vtpose(production, "infer", STREAMER, "--json")
    # Registered by hand, without a serving variant: its .pt as it is. One line says which model runs.
    assert (EXPORT_CACHE / version_id / "weights.pt").is_file()
    assert _model_line(chosen) == f"model: {MODEL_NAME} version 1 (production), pytorch"
    by_file = _vtpose(production, "infer", STREAMER, "--json", "--weights", production_weights)
    pretrained = _vtpose(production, "infer", STREAMER, "--json", "--weights", PRETRAINED_WEIGHTS)
    answer, by_file_answer = json.loads(chosen.stdout), json.loads(by_file.stdout)
    assert answer["model_version"] == "1+pytorch" and by_file_answer["model_version"] == "production.pt+pytorch"
    assert answer["persons"] == by_file_answer["persons"]
    shifted, original = _keypoints(json.loads(chosen.stdout)), _keypoints(json.loads(pretrained.stdout))
    assert shifted.shape == original.shape
    assert (shifted[..., 0] - original[..., 0]).mean() > 3  # the production head's shift, not the pretrained model

    # A store with nothing in production: the pretrained checkpoint on the variant `make serve` packages it as.
    fallback = _vtpose(empty, "infer", STREAMER, "--json")
    assert _model_line(fallback) == f"model: {what_runs_pretrained()}"
    int8 = _vtpose(empty, "infer", STREAMER, "--json", "--weights", PRETRAINED_WEIGHTS, "--backend", PRETRAINED_VARIANT)
    assert _model_line(int8) == f"model: {PRETRAINED_WEIGHTS} (--weights), {PRETRAINED_VARIANT}"
    fallback_answer, int8_answer = json.loads(fallback.stdout), json.loads(int8.stdout)
    assert fallback_answer["model_version"] == f"{PRETRAINED_VERSION}+{PRETRAINED_VARIANT}"
    assert fallback_answer["persons"] == int8_answer["persons"]


@pytest.mark.slow  # a model registered in a real ZenML store, then the CLI run in several processes
def test_the_studio_without_weights_uses_the_production_version(stores: Any, tmp_path: Path) -> None:
    production, _, production_weights, version_id = stores
    cached = EXPORT_CACHE / version_id / "weights.pt"
    outputs = {}
    for label, weights in [("default", None), ("production", production_weights), ("pretrained", PRETRAINED_WEIGHTS)]:
        extra = [] if weights is None else ["--weights", weights]
        picture, video = tmp_path / f"{label}.png", tmp_path / f"{label}.avi"
        avatar = _vtpose(production, "avatar", STREAMER, "-o", picture, *extra)
        animate = _vtpose(production, "animate", DANCE, "-o", video, "--max-frames", "3", *extra)
        if weights is None:
            line = f"model: {MODEL_NAME} version 1 (production), pytorch"
            assert _model_line(avatar) == _model_line(animate) == line and cached.is_file()
        outputs[label] = (cv2.imread(str(picture)), _frames(video))
    (default_picture, default_frames), (picture, frames) = outputs["default"], outputs["production"]
    assert np.array_equal(default_picture, picture)
    assert len(default_frames) == len(frames) == 3
    assert all(np.array_equal(a, b) for a, b in zip(default_frames, frames, strict=True))
    pretrained_picture, pretrained_frames = outputs["pretrained"]
    assert not np.array_equal(default_picture, pretrained_picture)
    assert any(not np.array_equal(a, b) for a, b in zip(default_frames, pretrained_frames, strict=True))
