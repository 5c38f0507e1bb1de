"""Motion over video frames: track ids across frames and temporal smoothing of keypoints.

`PoseTracker` gives each person a `track_id` that survives across frames (Hungarian matching on box overlap and
keypoint distance); `PoseSmoother` runs a One Euro filter per track and per keypoint so avatars do not jitter.
`jitter` and `lag_frames` measure what the smoothing buys and costs (see benchmarks/bench_smoothing.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from scipy.optimize import linear_sum_assignment

from vtpose.keypoints import NUM_KEYPOINTS
from vtpose.pose import PersonPose

# A detection joins an existing track only when the match cost is below this (cost in [0, 1], 0 = identical).
MAX_MATCH_COST = 0.8
# Weight of box overlap against keypoint closeness in the match cost; boxes are stabler, keypoints separate
# people whose boxes overlap (two dancers side by side).
IOU_WEIGHT = 0.5
# A track not seen for this many frames is forgotten (0.6 s at 50 fps): long enough to bridge a missed
# detection or a short occlusion, short enough that a new person does not inherit a stale id.
MAX_TRACK_AGE = 30
# New tracks start only from confident detections, so a flickering false positive does not burn ids.
MIN_NEW_TRACK_SCORE = 0.4
# Detections at least this confident are matched to the tracks first, the rest only to the tracks left over
# (ByteTrack's two rounds). A person half hidden behind another often comes with a faint second box that NMS keeps;
# in one round it could win the person's track on a slightly lower cost and the person's own box open a new track:
# on dance.avi's five dancers that churned a new id every few frames.
MIN_FIRST_ROUND_SCORE = 0.5
# Keypoints below this confidence are not trusted for matching or smoothing input.
MIN_KEYPOINT_CONFIDENCE = 0.3

# One Euro filter defaults, in body heights (box heights) per second so the same values suit a dancer far
# away and a streamer close up. Tuned on data/media/dance.avi by benchmarks/bench_smoothing.py.
ONE_EURO_MIN_CUTOFF_HZ = 1.0
ONE_EURO_BETA = 3.0
ONE_EURO_D_CUTOFF_HZ = 1.0
# Confidence is smoothed with this per-frame weight of the new value, so a joint fades instead of blinking.
CONFIDENCE_ALPHA = 0.5


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise intersection over union of boxes.

    Args:
        a: (N, 4) boxes, x, y, w, h in pixels.
        b: (M, 4) boxes, x, y, w, h in pixels.

    Returns:
        (N, M) IoU in [0, 1].
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ax2, ay2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx2, by2 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax2[:, None], bx2[None]) - np.maximum(a[:, 0, None], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(ay2[:, None], by2[None]) - np.maximum(a[:, 1, None], b[None, :, 1]), 0, None)
    inter = iw * ih
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


def keypoint_similarity(a: np.ndarray, b: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Pairwise keypoint closeness of two sets of poses, in [0, 1] (1 = same place).

    Args:
        a: (N, 17, 3) keypoints, pixels and confidence.
        b: (M, 17, 3) keypoints, pixels and confidence.
        scale: (N,) a size per pose of `a` in pixels (box height); distances are measured in it.

    Returns:
        (N, M): mean over joints confident in both of exp(-d² / (2 (0.1 scale)²)); 0 when none are shared.
    """
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    shared = (a[:, None, :, 2] >= MIN_KEYPOINT_CONFIDENCE) & (b[None, :, :, 2] >= MIN_KEYPOINT_CONFIDENCE)
    d2 = ((a[:, None, :, :2] - b[None, :, :, :2]) ** 2).sum(-1)
    sigma2 = (0.1 * np.maximum(scale, 1.0))[:, None, None] ** 2
    closeness = np.exp(-d2 / (2 * sigma2)) * shared
    count = shared.sum(-1)
    return np.where(count > 0, closeness.sum(-1) / np.maximum(count, 1), 0.0)


@dataclass
class _Track:
    track_id: int
    bbox: np.ndarray  # (4,) x, y, w, h pixels, last seen
    keypoints: np.ndarray  # (17, 3) last seen
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))  # box centre, pixels per frame
    age: int = 0  # frames since last matched

    def predicted_bbox(self) -> np.ndarray:
        shift = self.velocity * (self.age + 1)
        return self.bbox + np.array([shift[0], shift[1], 0.0, 0.0])

    def predicted_keypoints(self) -> np.ndarray:
        shifted = self.keypoints.copy()
        shifted[:, :2] += self.velocity * (self.age + 1)
        return shifted


class PoseTracker:
    """Gives each person a track id that stays with them across frames.

    Each frame, detections are matched to live tracks by the Hungarian algorithm on a cost mixing box IoU and
    keypoint closeness (both measured against where the track is predicted to be, at constant velocity): the
    confident detections first, then the faint ones to the tracks still free.

    Args:
        max_age: frames a track survives unmatched.
        max_cost: matches costing more than this (in [0, 1]) are refused.
        min_new_score: a detection must be at least this confident to open a new track.
    """

    def __init__(
        self, max_age: int = MAX_TRACK_AGE, max_cost: float = MAX_MATCH_COST, min_new_score: float = MIN_NEW_TRACK_SCORE
    ) -> None:
        if max_age < 0:
            raise ValueError(f"max_age={max_age} must be >= 0")
        if not 0 < max_cost <= 1:
            raise ValueError(f"max_cost={max_cost} must be in (0, 1]")
        self.max_age = max_age
        self.max_cost = max_cost
        self.min_new_score = min_new_score
        self._tracks: list[_Track] = []
        self._next_id = 1

    @property
    def live_ids(self) -> set[int]:
        """The ids of the tracks still held: matched this frame, or unmatched for at most `max_age` frames."""
        return {t.track_id for t in self._tracks}

    def update(self, persons: Sequence[PersonPose]) -> list[PersonPose]:
        """Assign track ids to one frame's persons.

        Args:
            persons: the frame's detections.

        Returns:
            The persons that belong to a track, as copies with `track_id` set; unmatched low-score detections
            are dropped.
        """
        boxes = np.array([p.bbox for p in persons], dtype=np.float64).reshape(-1, 4)
        kpts = np.array([p.keypoints for p in persons], dtype=np.float64).reshape(-1, NUM_KEYPOINTS, 3)
        assignment: dict[int, _Track] = {}
        if self._tracks and len(persons):
            track_boxes = np.array([t.predicted_bbox() for t in self._tracks])
            track_kpts = np.array([t.predicted_keypoints() for t in self._tracks])
            cost = 1.0 - (
                IOU_WEIGHT * box_iou(track_boxes, boxes)
                + (1 - IOU_WEIGHT) * keypoint_similarity(track_kpts, kpts, track_boxes[:, 3])
            )
            scores = np.array([p.score for p in persons])
            confident = scores >= MIN_FIRST_ROUND_SCORE
            for round_detections in (np.flatnonzero(confident), np.flatnonzero(~confident)):
                taken = {id(t) for t in assignment.values()}
                free_tracks = [r for r, t in enumerate(self._tracks) if id(t) not in taken]
                if not free_tracks or not len(round_detections):
                    continue
                sub = cost[np.ix_(np.array(free_tracks, dtype=np.intp), round_detections)]
                for r, c in zip(*linear_sum_assignment(sub), strict=True):
                    if sub[r, c] <= self.max_cost:
                        assignment[int(round_detections[c])] = self._tracks[free_tracks[r]]
        matched = {id(t) for t in assignment.values()}
        for track in self._tracks:
            if id(track) not in matched:
                track.age += 1
        self._tracks = [t for t in self._tracks if t.age <= self.max_age]

        out: list[PersonPose] = []
        for i, person in enumerate(persons):
            matched_track = assignment.get(i)
            if matched_track is None:
                if person.score < self.min_new_score:
                    continue
                track = _Track(self._next_id, boxes[i], kpts[i])
                self._next_id += 1
                self._tracks.append(track)
            else:
                track = matched_track
                old_centre = track.bbox[:2] + track.bbox[2:] / 2
                new_centre = boxes[i, :2] + boxes[i, 2:] / 2
                # Velocity per frame, averaged over the gap and damped, so one jumpy box does not fling it.
                track.velocity = 0.5 * track.velocity + 0.5 * (new_centre - old_centre) / (track.age + 1)
                track.bbox, track.keypoints, track.age = boxes[i], kpts[i], 0
            out.append(replace(person, track_id=track.track_id))
        return out


class OneEuroFilter:
    """The One Euro filter (Casiez, Roussel, Vogel, CHI 2012) over arrays: a low-pass whose cutoff rises with speed.

    Slow movements are smoothed hard (no jitter); fast ones get a high cutoff (little lag).

    Args:
        min_cutoff: cutoff frequency at rest, Hz.
        beta: how fast the cutoff rises with speed, Hz per (unit per second) of the filtered value.
        d_cutoff: cutoff for the speed estimate, Hz.
    """

    def __init__(
        self,
        min_cutoff: float = ONE_EURO_MIN_CUTOFF_HZ,
        beta: float = ONE_EURO_BETA,
        d_cutoff: float = ONE_EURO_D_CUTOFF_HZ,
    ) -> None:
        if min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
            raise ValueError(f"min_cutoff={min_cutoff}, d_cutoff={d_cutoff} must be > 0 and beta={beta} >= 0")
        self.min_cutoff = min_cutoff
        self.beta = beta
        self.d_cutoff = d_cutoff
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None

    @staticmethod
    def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, x: np.ndarray, dt: float, scale: float = 1.0, update: np.ndarray | None = None) -> np.ndarray:
        """Filter one sample.

        Args:
            x: the new sample, any shape (the same every call), e.g. (17, 2) pixels.
            dt: seconds since the previous sample.
            scale: the unit speeds are measured in (e.g. the body height in pixels), so `beta` is scale-free.
            update: optional boolean mask, broadcastable to `x`: where False, the sample is ignored and the
                previous estimate held (an unreliable joint must not drag the avatar).

        Returns:
            The filtered value, the shape of `x`.
        """
        x = np.asarray(x, dtype=np.float64)
        if self._x is None or self._dx is None:
            self._x, self._dx = x.copy(), np.zeros_like(x)
            return self._x.copy()
        dx = (x - self._x) / dt / max(scale, 1e-9)
        self._dx = self._dx + self._alpha(self.d_cutoff, dt) * (dx - self._dx)
        cutoff = self.min_cutoff + self.beta * np.abs(self._dx)
        filtered = self._x + self._alpha(cutoff, dt) * (x - self._x)
        if update is not None:
            filtered = np.where(update, filtered, self._x)
        self._x = filtered
        return filtered.copy()

    def reset_where(self, mask: np.ndarray, x: np.ndarray) -> None:
        """Restart the filter at `x` where `mask` is True (a joint that reappears after being lost)."""
        if self._x is None or self._dx is None:
            return
        self._x = np.where(mask, x, self._x)
        self._dx = np.where(mask, 0.0, self._dx)


@dataclass
class _SmoothState:
    filter: OneEuroFilter
    confidence: np.ndarray  # (17,) smoothed
    seen: np.ndarray  # (17,) bool: the joint has had a trusted position
    last_frame: int


class PoseSmoother:
    """One Euro filter per track and per keypoint, for the persons `PoseTracker` returns.

    Positions of joints whose confidence drops are held rather than followed, and confidences are smoothed, so a
    flickering joint fades instead of snapping the limb to a bad guess.

    Args:
        fps: frame rate of the video, frames per second.
        min_cutoff: One Euro cutoff at rest, Hz.
        beta: One Euro speed coefficient, Hz per (body heights per second).
        d_cutoff: One Euro speed cutoff, Hz.
    """

    def __init__(
        self,
        fps: float,
        min_cutoff: float = ONE_EURO_MIN_CUTOFF_HZ,
        beta: float = ONE_EURO_BETA,
        d_cutoff: float = ONE_EURO_D_CUTOFF_HZ,
    ) -> None:
        if fps <= 0:
            raise ValueError(f"fps={fps} must be > 0")
        self.dt = 1.0 / fps
        self.params = (min_cutoff, beta, d_cutoff)
        self._states: dict[int, _SmoothState] = {}
        self._frame = 0

    def update(self, persons: Sequence[PersonPose]) -> list[PersonPose]:
        """Smooth one frame's tracked persons (each must have a `track_id`); returns smoothed copies."""
        self._frame += 1
        out: list[PersonPose] = []
        for person in persons:
            if person.track_id is None:
                raise ValueError("PoseSmoother needs tracked persons; run PoseTracker.update first")
            kpts = person.keypoints.astype(np.float64)
            trusted = kpts[:, 2] >= MIN_KEYPOINT_CONFIDENCE
            state = self._states.get(person.track_id)
            if state is None or self._frame - state.last_frame > 1:
                # A new track, or one back after a gap: start from the detection rather than glide from the past.
                state = _SmoothState(OneEuroFilter(*self.params), kpts[:, 2].copy(), trusted.copy(), self._frame)
                self._states[person.track_id] = state
            else:
                state.confidence += CONFIDENCE_ALPHA * (kpts[:, 2] - state.confidence)
            # A joint trusted for the first time (or again) starts where it is, not where it was last guessed.
            state.filter.reset_where((trusted & ~state.seen)[:, None], kpts[:, :2])
            state.seen |= trusted
            xy = state.filter(kpts[:, :2], self.dt, scale=max(person.bbox[3], 1.0), update=trusted[:, None])
            state.last_frame = self._frame
            smoothed = np.concatenate([xy, state.confidence[:, None]], axis=1).astype(np.float32)
            out.append(replace(person, keypoints=smoothed))
        self._states = {k: s for k, s in self._states.items() if self._frame - s.last_frame <= MAX_TRACK_AGE}
        return out


def jitter(trajectory: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Mean absolute second difference of a trajectory: frame-to-frame shake, pixels.

    Args:
        trajectory: (T, ...) positions in pixels, one row per frame (e.g. (T, 17, 2)).
        valid: optional (T, ...) boolean mask broadcastable to `trajectory`; a second difference counts only
            where all three frames are valid.

    Returns:
        The mean of |x[t+1] - 2 x[t] + x[t-1]| over valid entries, pixels; NaN if there are none.
    """
    x = np.asarray(trajectory, dtype=np.float64)
    second = np.abs(x[2:] - 2 * x[1:-1] + x[:-2])
    if valid is not None:
        v = np.broadcast_to(np.asarray(valid, dtype=bool), x.shape)
        mask = v[2:] & v[1:-1] & v[:-2]
        return float(second[mask].mean()) if mask.any() else float("nan")
    return float(second.mean()) if second.size else float("nan")


def lag_frames(reference: np.ndarray, delayed: np.ndarray, valid: np.ndarray | None = None, max_lag: int = 10) -> float:
    """How many frames `delayed` trails `reference`, to a tenth of a frame.

    Finds the shift k minimising the mean absolute difference between delayed[t] and reference[t - k], with
    reference linearly interpolated between frames.

    Args:
        reference: (T, ...) positions, pixels (e.g. a zero-phase smoothed version of the raw track).
        delayed: (T, ...) positions, pixels (e.g. the causal filter's output).
        valid: optional (T, ...) boolean mask of entries to compare.
        max_lag: the largest shift tried, frames.

    Returns:
        The best shift in frames (0 = no lag).
    """
    ref = np.asarray(reference, dtype=np.float64)
    out = np.asarray(delayed, dtype=np.float64)
    mask = (
        np.ones(ref.shape, dtype=bool) if valid is None else np.broadcast_to(np.asarray(valid, dtype=bool), ref.shape)
    )
    best_k, best_err = 0.0, math.inf
    for k in np.arange(0.0, max_lag + 1e-9, 0.1):
        whole, frac = int(k), k - int(k)
        n = len(ref) - whole - 1  # frames t = whole + 1 .. T - 1 have both neighbours of t - k
        if n <= 0:
            break
        # reference at t - k, linearly between frames t - whole and t - whole - 1
        shifted = (1 - frac) * ref[1 : 1 + n] + frac * ref[:n]
        target = out[whole + 1 :]
        m = mask[whole + 1 :] & mask[1 : 1 + n] & mask[:n]
        if not m.any():
            continue
        err = float(np.abs(target - shifted)[m].mean())
        if err < best_err:
            best_k, best_err = float(k), err
    return round(best_k, 1)
