"""The studio's pieces without a model: rig completion, avatar files, scene placement, matching, motion, video."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from vtpose.errors import VtposeError
from vtpose.keypoints import KEYPOINT_INDEX, NUM_KEYPOINTS
from vtpose.pose import PersonPose
from vtpose.studio.avatar import (
    complete_pose,
    draw_avatar,
    fit_to_scene,
    load_avatar,
    load_avatar_file,
    render_scene,
    select_persons,
)
from vtpose.studio.avatar.scene import BACKGROUNDS_DIR, FLOOR_FRACTION, background_files
from vtpose.studio.avatar.spec import AVATARS_DIR, avatar_files
from vtpose.studio.match import mirror_pose, pose_similarity
from vtpose.studio.motion import OneEuroFilter, PoseSmoother, PoseTracker, box_iou, jitter, lag_frames
from vtpose.studio.video import open_video, run_video_pipeline, video_writer

# A person standing with arms out, 1280x720 photo coordinates (x, y), COCO order.
STANDING = np.array(
    [
        [640, 150], [650, 140], [630, 140], [662, 148], [618, 148],  # face
        [700, 220], [580, 220], [760, 280], [520, 280], [820, 300], [460, 300],  # arms
        [680, 380], [600, 380], [685, 500], [595, 500], [690, 620], [590, 620],  # legs
    ],
    dtype=np.float32,
)  # fmt: skip


def pose(conf: float = 0.9, hidden: tuple[str, ...] = ()) -> np.ndarray:
    """STANDING as (17, 3) with `conf`; hidden joints get confidence 0 and coordinates (0, 0)."""
    kp = np.concatenate([STANDING, np.full((NUM_KEYPOINTS, 1), conf, np.float32)], axis=1)
    for name in hidden:
        kp[KEYPOINT_INDEX[name]] = 0.0
    return kp


def person(kp: np.ndarray) -> PersonPose:
    x0, y0 = kp[kp[:, 2] > 0, :2].min(0)
    x1, y1 = kp[kp[:, 2] > 0, :2].max(0)
    return PersonPose(bbox=(float(x0), float(y0), float(x1 - x0), float(y1 - y0)), score=0.9, keypoints=kp)


ANALYSE_S = 0.005  # the pipeline test's analysis time per frame, seconds (at least: a sleep)
LEGS = ("left_knee", "right_knee", "left_ankle", "right_ankle")
ARMS = ("left_elbow", "right_elbow", "left_wrist", "right_wrist")


def test_missing_joints_are_inferred_near_the_body_not_at_the_origin() -> None:
    rig = complete_pose(pose(hidden=LEGS + ARMS + ("left_hip", "right_hip")))
    assert rig is not None
    neck = rig.points["neck"]
    for name, point in rig.points.items():
        assert np.hypot(*point) > 100, name  # nothing at (0, 0)
        assert np.hypot(*(point - neck)) < 4 * rig.unit, name
    # A lost arm hangs: the wrist below its shoulder; hips below the shoulders.
    assert rig.points["left_wrist"][1] > rig.points["left_shoulder"][1]
    assert rig.points["pelvis"][1] > neck[1] + rig.unit
    assert not rig.full_body


def test_drawing_a_partly_hidden_person_leaves_the_corner_alone() -> None:
    canvas = np.zeros((720, 1280, 3), np.uint8)
    rig = complete_pose(pose(hidden=(*LEGS, "left_wrist", "right_elbow")))
    assert rig is not None
    draw_avatar(canvas, rig, load_avatar("kitty"))
    assert canvas.any()
    assert not canvas[:100, :100].any()


def test_a_pose_without_shoulders_is_skipped() -> None:
    assert complete_pose(pose(hidden=("left_shoulder", "right_shoulder"))) is None


def test_one_missing_shoulder_is_mirrored() -> None:
    rig = complete_pose(pose(hidden=("left_shoulder",)))
    assert rig is not None
    assert np.allclose(rig.points["left_shoulder"], STANDING[KEYPOINT_INDEX["left_shoulder"]], atol=25)


def test_whole_body_stands_on_the_floor_and_upper_body_is_cut_at_the_hips() -> None:
    full = complete_pose(pose())
    upper = complete_pose(pose(hidden=LEGS))
    assert full is not None and upper is not None and full.full_body and not upper.full_body
    (placed,) = fit_to_scene([full], [0.5], 1280, 720)
    feet = max(placed.points["left_ankle"][1], placed.points["right_ankle"][1]) + 0.18 * placed.unit
    assert feet == pytest.approx(FLOOR_FRACTION * 720, abs=1)
    assert placed.extent(0.5)[1] >= 0  # head inside the scene
    (placed,) = fit_to_scene([upper], [0.5], 1280, 720)
    assert 700 < placed.points["pelvis"][1] < 760
    assert placed.unit > full.unit  # closer framing than a whole body


def test_on_original_keeps_the_photo_size() -> None:
    photo = np.full((720, 1280, 3), 128, np.uint8)
    out = render_scene(photo, [person(pose())], "sketch", on_original=True)
    assert out.shape == photo.shape and (out != photo).any()


def test_prepared_assets_exist_and_are_small() -> None:
    assert len(avatar_files()) >= 3 and len(background_files()) >= 3
    for path in [*AVATARS_DIR.iterdir(), *BACKGROUNDS_DIR.iterdir()]:
        assert path.stat().st_size < 300_000, path
    for name in avatar_files():
        assert load_avatar(name).head is not None  # every prepared avatar has a face


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("parts: []", "non-empty `parts:`"),
        ("parts: [{name: arm, shape: limb, joints: [left_shoulder, left_elbw]}]", "left_elbw"),
        ("parts: [{name: arm, shape: limb, joints: [left_shoulder]}]", "takes 2 joint"),
        ("parts: [{name: arm, joints: [left_shoulder, left_elbow], fill: red}]", "'red'"),
        ("parts: [{name: arm, shape: blob, joints: [left_shoulder]}]", "blob"),
        ("parts: [oops", "not valid YAML"),
    ],
)
def test_bad_avatar_files_say_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    with pytest.raises(VtposeError, match=None) as info:
        load_avatar_file(path)
    assert message in str(info.value) and str(path) in str(info.value)


def test_a_user_avatar_file_loads_by_path(tmp_path: Path) -> None:
    path = tmp_path / "blob.yaml"
    path.write_text(
        "name: blob\nparts:\n  - {shape: polygon, joints: [left_shoulder, right_shoulder, pelvis], fill: '#00ff00'}\n"
        "  - {shape: head, width: 0.4, fill: '#ffffff', face: {style: sketch}}\n"
    )
    spec = load_avatar(path)
    assert spec.name == "blob" and len(spec.parts) == 2


def test_match_is_invariant_to_position_and_scale() -> None:
    a = pose()
    b = a.copy()
    b[:, :2] = b[:, :2] * 0.4 + np.array([100.0, 37.0])
    assert pose_similarity(a, b).score == pytest.approx(100.0)


def test_match_drops_for_a_different_pose_and_mirror_helps_a_mirrored_one() -> None:
    a = pose()
    raised = a.copy()
    raised[KEYPOINT_INDEX["right_elbow"], :2] = (560, 120)
    raised[KEYPOINT_INDEX["right_wrist"], :2] = (540, 20)
    assert pose_similarity(a, raised).score < 85
    mirrored = mirror_pose(raised)
    assert pose_similarity(raised, mirrored).score < pose_similarity(raised, mirrored, mirror=True).score
    assert pose_similarity(raised, mirrored, mirror=True).score == pytest.approx(100.0)


def test_match_needs_shared_joints() -> None:
    a = pose(hidden=LEGS + ARMS + ("left_hip", "right_hip", "left_shoulder", "right_shoulder", "nose", "left_eye"))
    with pytest.raises(VtposeError, match="share only"):
        pose_similarity(a, pose())


def test_box_iou() -> None:
    iou = box_iou(np.array([[0, 0, 10, 10]]), np.array([[0, 0, 10, 10], [5, 0, 10, 10], [20, 20, 5, 5]]))
    assert np.allclose(iou, [[1.0, 50 / 150, 0.0]])


def test_tracker_keeps_ids_through_motion_and_a_missed_frame() -> None:
    tracker = PoseTracker()
    a, b = pose(), pose()
    b[:, 0] += 400
    ids = None
    for step in range(20):
        frame = [
            person(a + np.array([3.0 * step, 0, 0], np.float32)),
            person(b - np.array([3.0 * step, 0, 0], np.float32)),
        ]
        if step == 10:
            frame = frame[:1]  # the second person is missed once
        tracked = tracker.update(frame)
        if ids is None:
            ids = [p.track_id for p in tracked]
        assert [p.track_id for p in tracked] == ids[: len(tracked)]
    assert len(set(ids)) == 2


def test_a_faint_second_box_on_a_person_does_not_take_their_track() -> None:
    # A person half hidden behind another comes with a faint box beside their own (NMS keeps both). The faint one
    # sits a little nearer where the track is predicted; the person's confident box keeps the track all the same.
    tracker = PoseTracker()
    (first,) = tracker.update([person(pose())])
    confident, faint = person(pose() + np.array([12.0, 0, 0], np.float32)), person(pose())
    faint = replace(faint, score=0.3)
    tracked = tracker.update([faint, confident])
    assert [(p.score, p.track_id) for p in tracked] == [(confident.score, first.track_id)]


def test_one_euro_holds_still_input_and_follows_a_step() -> None:
    f = OneEuroFilter()
    for _ in range(5):
        out = f(np.array([10.0, 20.0]), dt=0.02)
    assert np.allclose(out, [10.0, 20.0])
    for _ in range(100):
        out = f(np.array([110.0, 20.0]), dt=0.02, scale=100.0)
    assert np.allclose(out, [110.0, 20.0], atol=0.5)


def test_smoother_reduces_noise_with_little_lag() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(200)
    truth = np.stack([300 + 60 * np.sin(t / 25), 200 + 40 * np.cos(t / 30)], axis=1)
    smoother = PoseSmoother(fps=50.0)
    raw, smooth = [], []
    for i in t:
        kp = pose()
        kp[:, :2] = truth[i] + rng.normal(0, 3, (NUM_KEYPOINTS, 2))
        (out,) = smoother.update([PersonPose((250, 150, 100, 300), 0.9, kp, track_id=1)])
        raw.append(kp[:, :2])
        smooth.append(out.keypoints[:, :2])
    assert jitter(np.array(smooth)) < jitter(np.array(raw)) / 3
    assert lag_frames(np.repeat(truth[:, None], NUM_KEYPOINTS, 1), np.array(smooth)) <= 3


def test_a_failed_pipeline_leaves_no_video(tmp_path: Path) -> None:
    source = tmp_path / "in.avi"
    with video_writer(source, 25.0, (64, 48)) as writer:
        for i in range(30):
            writer.write(np.full((48, 64, 3), i * 8, np.uint8))
    capture, info = open_video(source)
    assert info.frame_count == 30
    out = tmp_path / "out.mp4"

    def render(frame: np.ndarray, _: object) -> np.ndarray:
        if frame[0, 0, 0] > 100:
            raise VtposeError("render failed on purpose")
        return frame

    with pytest.raises(VtposeError, match="on purpose"), video_writer(out, 25.0, (64, 48)) as writer:
        run_video_pipeline(capture, lambda f: None, render, writer.write)
    capture.release()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.avi"]


def test_pipeline_keeps_frame_order(tmp_path: Path) -> None:
    source = tmp_path / "in.avi"
    with video_writer(source, 25.0, (64, 48)) as writer:
        for i in range(40):
            writer.write(np.full((48, 64, 3), i * 6, np.uint8))
    capture, _ = open_video(source)
    seen: list[float] = []

    def analyse(frame: np.ndarray) -> float:
        time.sleep(ANALYSE_S)  # at least this long per frame: a lower bound on the analyse stage's busy time
        return float(frame.mean())

    started = time.perf_counter()
    stats = run_video_pipeline(capture, analyse, lambda f, m: f, lambda f: seen.append(f.mean()))
    elapsed = time.perf_counter() - started
    capture.release()
    assert stats.frames == len(seen) == 40 and seen == sorted(seen)
    assert set(stats.busy_s) == {"decode", "analyse", "render", "encode"}
    # Times that are the pipeline's own: the analyse stage slept 40 x ANALYSE_S within the run's wall time, which
    # lies within the call's; the frame rate is the frames written over that wall time.
    assert 40 * ANALYSE_S <= stats.busy_s["analyse"] <= stats.wall_s <= elapsed
    assert stats.fps == pytest.approx(40 / stats.wall_s, rel=1e-12)


def test_video_writer_rejects_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(VtposeError, match=r"\.gif"), video_writer(tmp_path / "x.gif", 25.0, (64, 48)):
        pass
    assert not (tmp_path / "x.gif").exists()  # refused before anything was written


def test_the_documented_avatar_example_loads(tmp_path: Path) -> None:
    readme = Path(__file__).resolve().parent.parent / "docs" / "studio.md"
    blocks = [block.split("```")[0] for block in readme.read_text().split("```yaml")[1:]]
    example = next(block for block in blocks if "name: frog" in block)
    path = tmp_path / "frog.yaml"
    path.write_text(example)
    spec = load_avatar(path)
    assert spec.name == "frog" and spec.head is not None


def test_select_persons_largest() -> None:
    small, big = person(pose()), person(pose())
    big.bbox = (0.0, 0.0, 500.0, 700.0)
    assert select_persons([small, big], "largest") == [big]
    assert select_persons([small, big], "all") == [small, big]
    with pytest.raises(ValueError, match="largest"):
        select_persons([small], "tallest")
