"""Pose similarity: how alike two poses are, 0 to 100, whatever their position and size (and optionally mirror).

Each pose is centred on its joints' mean and scaled to unit RMS radius over the joints both poses show; the
joints are then compared the way COCO's OKS does (a Gaussian of the distance, wider for joints that are harder to
place, with pycocotools' per-joint sigmas). Joints that one pose shows and the other does not count as misses.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vtpose.errors import VtposeError
from vtpose.keypoints import FLIP_IDX, NUM_KEYPOINTS, OKS_SIGMAS
from vtpose.overlay import draw_keypoints

# Joints below this confidence are treated as not shown.
MATCH_MIN_CONFIDENCE = 0.3
# Fewer shared joints than this cannot define a pose's shape (two points always match after scaling).
MIN_SHARED_JOINTS = 4
# OKS measures distance in units of the person's size (sqrt of the area); a whole body's area side is about
# twice the RMS radius of its joints, the unit used here.
OKS_SCALE = 2.0
OVERLAY_SIZE = 640
OVERLAY_BACKGROUND = (250, 248, 245)
COLOR_A = (200, 110, 30)  # BGR blue
COLOR_B = (40, 120, 250)  # BGR orange


@dataclass(frozen=True)
class MatchResult:
    """The outcome of comparing two poses.

    Attributes:
        score: similarity in [0, 100]; 100 = the same pose.
        mirrored: the best score came from mirroring pose B.
        a, b: (17, 2) the poses in the shared normalised frame (unit RMS radius, centred), NaN where not shown.
    """

    score: float
    mirrored: bool
    a: np.ndarray
    b: np.ndarray


def mirror_pose(keypoints: np.ndarray) -> np.ndarray:
    """The pose seen in a mirror: x negated and left/right joints swapped (FLIP_IDX); (17, 3) in, (17, 3) out."""
    flipped = np.asarray(keypoints, dtype=np.float64)[list(FLIP_IDX)].copy()
    flipped[:, 0] = -flipped[:, 0]
    return flipped


def _normalise(xy: np.ndarray, shared: np.ndarray) -> np.ndarray:
    centre = xy[shared].mean(0)
    centred = xy - centre
    radius = float(np.sqrt((centred[shared] ** 2).sum(1).mean()))
    if radius < 1e-9:
        raise VtposeError("the pose's joints all lie on one point; use a photo where the person is clearly visible.")
    return centred / radius


def _compare(a: np.ndarray, b: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    shown_a = a[:, 2] >= MATCH_MIN_CONFIDENCE
    shown_b = b[:, 2] >= MATCH_MIN_CONFIDENCE
    shared = shown_a & shown_b
    if shared.sum() < MIN_SHARED_JOINTS:
        raise VtposeError(
            f"the two poses share only {int(shared.sum())} visible joints (need {MIN_SHARED_JOINTS}); "
            "use photos where more of both bodies is visible."
        )
    na, nb = _normalise(a[:, :2], shared), _normalise(b[:, :2], shared)
    d2 = ((na - nb) ** 2).sum(1)
    kappa = 2 * np.asarray(OKS_SIGMAS) * OKS_SCALE
    per_joint = np.where(shared, np.exp(-d2 / (2 * kappa**2)), 0.0)
    shown_any = shown_a | shown_b
    score = 100.0 * float(per_joint[shown_any].sum() / shown_any.sum())
    na[~shown_a], nb[~shown_b] = np.nan, np.nan
    return score, na, nb


def pose_similarity(a: np.ndarray, b: np.ndarray, mirror: bool = False) -> MatchResult:
    """Similarity of two poses, invariant to position and scale.

    Args:
        a: (17, 3) keypoints, x and y pixels and confidence, COCO order.
        b: (17, 3) likewise (any image, any size).
        mirror: also try B mirrored (a left arm raised matches a right arm raised) and keep the better score.

    Returns:
        The score in [0, 100] and the normalised poses.

    Raises:
        VtposeError: fewer than MIN_SHARED_JOINTS joints visible in both poses.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != (NUM_KEYPOINTS, 3) or b.shape != (NUM_KEYPOINTS, 3):
        raise ValueError(f"poses must be ({NUM_KEYPOINTS}, 3), got {a.shape} and {b.shape}")
    score, na, nb = _compare(a, b)
    result = MatchResult(score, False, na, nb)
    if mirror:
        m_score, ma, mb = _compare(a, mirror_pose(b))
        if m_score > score:
            result = MatchResult(m_score, True, ma, mb)
    return result


def draw_match(result: MatchResult, size: int = OVERLAY_SIZE) -> np.ndarray:
    """A picture of both normalised poses overlaid (A blue, B orange) with the score, BGR (size, size, 3) uint8."""
    canvas = np.full((size, size, 3), OVERLAY_BACKGROUND, np.uint8)
    both = np.concatenate([result.a, result.b])
    finite = both[np.isfinite(both).all(1)]
    lo, hi = finite.min(0), finite.max(0)
    margin = 0.12 * size
    scale = (size - 2 * margin) / max(float((hi - lo).max()), 1e-9)
    offset = np.array([size / 2, size / 2 + 0.03 * size]) - scale * (lo + hi) / 2
    for pose, color in ((result.a, COLOR_A), (result.b, COLOR_B)):
        shown = np.isfinite(pose).all(1)
        kpts = np.zeros((NUM_KEYPOINTS, 3))
        kpts[shown, :2] = pose[shown] * scale + offset
        kpts[shown, 2] = 1.0
        draw_keypoints(canvas, kpts, color=color, thickness=max(3, size // 160))
    font, line = cv2.FONT_HERSHEY_SIMPLEX, cv2.LINE_AA
    title = f"score: {result.score:.1f}" + (" (mirrored)" if result.mirrored else "")
    cv2.putText(canvas, title, (16, 36), font, 0.9, (40, 40, 40), 2, line)
    cv2.putText(canvas, "A", (size - 90, 34), font, 0.8, COLOR_A, 2, line)
    cv2.putText(canvas, "B", (size - 50, 34), font, 0.8, COLOR_B, 2, line)
    return canvas
