"""`vtpose avatar`, `vtpose match` and `vtpose animate` with `--backend`, on the pretrained checkpoint.

The commands run as a user runs them (the `vtpose` script, a process each). Checked per backend: the `.pt` is
exported once into the export cache and every later command reuses that file; what each command prints or writes
is what the cached file's own answers give; those answers are the `.pt`'s persons within the tolerances of
`vtpose.testing.tolerances` (tests/test_backends.py's); a backend the weights cannot run on is a one-line error.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from vtpose.artifacts import sha256_file
from vtpose.backends import DEFAULT_IMGSZ, open_backend
from vtpose.backends.packaged import MODEL_FILES
from vtpose.paths import COCO_MINI_DIR, EXPORT_CACHE_DIR, MEDIA_DIR, PRETRAINED_WEIGHTS
from vtpose.pose import PersonPose, load_image
from vtpose.studio.avatar import render_scene, select_persons
from vtpose.studio.match import pose_similarity
from vtpose.testing.tolerances import check_median, joint_errors

pytestmark = pytest.mark.slow

STREAMER = MEDIA_DIR / "game-streamer-tips.jpg"
DANCE = MEDIA_DIR / "dance.avi"
VAL_IMAGES = sorted((COCO_MINI_DIR / "images" / "val2017").glob("*.jpg"))[:6]
ANIMATE_FRAMES = 8
COMMAND_TIMEOUT_S = 600
# The file each backend opens, inside a weights file's cache folder.
CACHED_FILES = {"onnx": "model.onnx", "openvino-int8": MODEL_FILES["openvino-int8"]}


def _vtpose(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """`vtpose ARGS` from this interpreter's environment, as a user runs it."""
    command = [str(Path(sys.executable).with_name("vtpose")), *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False)


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The pretrained checkpoint under a name of this test run's own: the export cache keys folders by the
    weights' name and hash, so this run's exports start from nothing (and are removed after)."""
    if not PRETRAINED_WEIGHTS.is_file():
        pytest.skip(f"{PRETRAINED_WEIGHTS} missing; run `make data`")
    copy = tmp_path_factory.mktemp("weights") / f"backend-test-{os.getpid()}.pt"
    shutil.copyfile(PRETRAINED_WEIGHTS, copy)
    folder = EXPORT_CACHE_DIR / f"{copy.stem}-{sha256_file(copy)[:16]}-{DEFAULT_IMGSZ}"
    assert not folder.exists()
    yield copy
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def cache_folder(weights: Path) -> Path:
    return EXPORT_CACHE_DIR / f"{weights.stem}-{sha256_file(weights)[:16]}-{DEFAULT_IMGSZ}"


def _stamps(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under `folder`: (inode, mtime in ns), which change if the file is written again."""
    files = [p for p in folder.rglob("*") if p.is_file()]
    return {str(p.relative_to(folder)): (p.stat().st_ino, p.stat().st_mtime_ns) for p in files}


def _largest(persons: list[PersonPose]) -> PersonPose:
    return max(persons, key=lambda p: p.area)


@pytest.mark.parametrize("backend", ["onnx", "openvino-int8"])  # in this order: INT8 starts from the cached ONNX
def test_avatar_match_and_animate_on_a_backend(backend: str, weights: Path, cache_folder: Path, tmp_path: Path) -> None:
    cached = cache_folder / CACHED_FILES[backend]
    before = _stamps(cache_folder) if cache_folder.is_dir() else {}
    assert str(cached.relative_to(cache_folder)) not in before

    # `vtpose avatar`: the first command exports, into the cache.
    picture = tmp_path / "avatar.png"
    done = _vtpose("avatar", STREAMER, "-o", picture, "--backend", backend, "--weights", weights)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(picture)
    after_export = _stamps(cache_folder)
    assert set(before) < set(after_export) and str(cached.relative_to(cache_folder)) in after_export
    assert all(after_export[name] == stamp for name, stamp in before.items()), "an earlier export was redone"
    photo = load_image(STREAMER)
    model = open_backend(cached, imgsz=DEFAULT_IMGSZ)
    persons = model.predict_one(photo)
    expected = render_scene(photo, select_persons(persons, "all"), None, None, False, source_name=str(STREAMER))
    np.testing.assert_array_equal(cv2.imread(str(picture)), expected)  # drawn from the cached file's answer

    # Its answers are the .pt's persons, within the backend's tolerances (the streamer and a few val photos).
    reference = open_backend(PRETRAINED_WEIGHTS, imgsz=DEFAULT_IMGSZ, device="cpu")
    arithmetic = getattr(model, "inference_precision", "f32")
    errors: list[float] = []
    for path in [STREAMER, *VAL_IMAGES]:
        image = load_image(path)
        errors += joint_errors(reference.predict_one(image), model.predict_one(image), backend, arithmetic, path.name)
    assert len(errors) > 30
    check_median(errors, backend, arithmetic)

    # `vtpose match`: the cached file again, not a new export.
    other = next(p for p in VAL_IMAGES if model.predict_one(load_image(p)))
    done = _vtpose("match", STREAMER, other, "--backend", backend, "--weights", weights)
    assert done.returncode == 0, done.stderr
    score = pose_similarity(_largest(persons).keypoints, _largest(model.predict_one(load_image(other))).keypoints)
    assert done.stdout.splitlines()[-1] == f"score: {score.score:.1f}"

    # `vtpose animate`: every frame written, from the same cached file.
    video = tmp_path / "dance.mp4"
    done = _vtpose(
        "animate", DANCE, "-o", video, "--max-frames", ANIMATE_FRAMES, "--backend", backend, "--weights", weights
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == f"{video}: {ANIMATE_FRAMES} frames"
    capture = cv2.VideoCapture(str(video))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == ANIMATE_FRAMES
    capture.release()
    assert _stamps(cache_folder) == after_export, "a later command exported again"


def test_a_backend_the_weights_cannot_run_on_is_a_one_line_error(tmp_path: Path) -> None:
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"")  # refused by its kind before it is opened: exports only go .pt -> .onnx -> OpenVINO
    for command in (
        ("avatar", STREAMER, "-o", tmp_path / "avatar.png"),
        ("match", STREAMER, STREAMER),
        ("animate", DANCE, "-o", tmp_path / "dance.mp4", "--max-frames", "1"),
    ):
        done = _vtpose(*command, "--backend", "pytorch", "--weights", onnx)
        assert done.returncode == 2, (command[0], done.stderr)
        assert done.stderr.splitlines() == [
            f"model: {onnx} (--weights), pytorch",
            f"vtpose: error: {onnx}: onnx weights cannot run on pytorch; pass the .pt "
            "(exports go .pt -> .onnx -> OpenVINO).",
        ], command[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]  # nothing written
