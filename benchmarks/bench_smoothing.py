"""Keypoint jitter on data/media/dance.avi, raw against One Euro smoothed, and the lag the smoothing adds.

    .venv/bin/python benchmarks/bench_smoothing.py [--imgsz 320] [--sweep]

Jitter is the mean absolute second difference of each joint's position (pixels), over joints seen with
confidence >= 0.5 in three consecutive frames, for every track seen in at least MIN_TRACK_FRAMES frames. Lag is
the shift (frames, to 0.1) that best aligns the smoothed track with a zero-phase (forward-backward Gaussian)
smoothing of the raw track, the best available stand-in for the true motion; raw against that reference gives
the measuring floor (about 0).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from scipy.ndimage import gaussian_filter1d

from vtpose.backends import open_backend
from vtpose.paths import MEDIA_DIR, PRETRAINED_WEIGHTS
from vtpose.pose import PersonPose
from vtpose.studio.motion import (
    ONE_EURO_BETA,
    ONE_EURO_D_CUTOFF_HZ,
    ONE_EURO_MIN_CUTOFF_HZ,
    PoseSmoother,
    PoseTracker,
    jitter,
    lag_frames,
)
from vtpose.studio.video import open_video, read_frames

VIDEO = MEDIA_DIR / "dance.avi"
MIN_TRACK_FRAMES = 50
VALID_CONFIDENCE = 0.5
REFERENCE_SIGMA_FRAMES = 2.0


def detect(imgsz: int) -> tuple[list[list[PersonPose]], float]:
    """Tracked raw poses of every frame, and the video's fps."""
    capture, info = open_video(VIDEO)
    capture.release()
    predictor = open_backend(PRETRAINED_WEIGHTS, imgsz=imgsz)
    tracker = PoseTracker()
    return [tracker.update(predictor.predict_one(f)) for f in read_frames(VIDEO)], info.fps


def trajectories(frames: list[list[PersonPose]]) -> dict[int, np.ndarray]:
    """track id -> (T, 17, 3) keypoints, NaN where the track is absent."""
    ids = {p.track_id for f in frames for p in f}
    out = {}
    for tid in ids:
        arr = np.full((len(frames), 17, 3), np.nan)
        for t, f in enumerate(frames):
            for p in f:
                if p.track_id == tid:
                    arr[t] = p.keypoints
        if np.isfinite(arr[:, 0, 0]).sum() >= MIN_TRACK_FRAMES:
            out[tid] = arr
    return out


def fill_gaps(xy: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(T, 17, 2) positions with each joint's invalid frames linearly interpolated from its valid ones.

    The zero-phase reference must not blur unreliable detections (or absent frames) into the good ones.
    """
    out = xy.copy()
    t = np.arange(len(xy))
    for j in range(xy.shape[1]):
        ok = valid[:, j]
        if ok.sum() >= 2:
            for c in range(2):
                out[:, j, c] = np.interp(t, t[ok], xy[ok, j, c])
    return out


def measure(raw_frames: list[list[PersonPose]], fps: float, min_cutoff: float, beta: float, d_cutoff: float) -> dict:
    """Jitter raw/smoothed and lag for one filter setting."""
    smoother = PoseSmoother(fps, min_cutoff=min_cutoff, beta=beta, d_cutoff=d_cutoff)
    smooth_frames = [smoother.update(f) for f in raw_frames]
    raw_t, smooth_t = trajectories(raw_frames), trajectories(smooth_frames)
    raw_j, smooth_j, lags, raw_lags, weights = [], [], [], [], []
    for tid, raw in raw_t.items():
        valid = (raw[..., 2] >= VALID_CONFIDENCE)[..., None] & np.isfinite(raw[..., :2])
        if valid.sum() < 3 * MIN_TRACK_FRAMES:
            continue
        xy, sm = np.nan_to_num(raw[..., :2]), np.nan_to_num(smooth_t[tid][..., :2])
        reference = gaussian_filter1d(fill_gaps(xy, valid[..., 0]), REFERENCE_SIGMA_FRAMES, axis=0, mode="nearest")
        raw_j.append(jitter(xy, valid))
        smooth_j.append(jitter(sm, valid))
        lags.append(lag_frames(reference, sm, valid, max_lag=8))
        raw_lags.append(lag_frames(reference, xy, valid, max_lag=8))
        weights.append(int(valid.sum()))
    w = np.array(weights, dtype=float)
    raw_jit, smooth_jit = float(np.average(raw_j, weights=w)), float(np.average(smooth_j, weights=w))
    return {
        "tracks": len(weights),
        "raw_jitter_px": raw_jit,
        "smooth_jitter_px": smooth_jit,
        "ratio": raw_jit / smooth_jit,
        "lag_frames": float(np.average(lags, weights=w)),
        "raw_lag_frames": float(np.average(raw_lags, weights=w)),
    }


def main() -> None:
    """Print jitter and lag for the default setting (and a sweep of settings with --sweep)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--sweep", action="store_true", help="Also try other One Euro settings.")
    args = parser.parse_args()
    start = time.perf_counter()
    raw, fps = detect(args.imgsz)
    print(
        f"detected and tracked {len(raw)} frames at imgsz {args.imgsz} in {time.perf_counter() - start:.1f} s "
        f"(load average {os.getloadavg()[0]:.1f})"
    )
    settings = [(ONE_EURO_MIN_CUTOFF_HZ, ONE_EURO_BETA, ONE_EURO_D_CUTOFF_HZ)]
    if args.sweep:
        settings += [(m, b, ONE_EURO_D_CUTOFF_HZ) for m in (0.5, 1.0, 2.0) for b in (0.5, 1.5, 3.0, 6.0)]
    print("min_cutoff_hz beta  tracks raw_jitter_px smooth_jitter_px ratio lag_frames (raw vs reference)")
    for i, (m, b, d) in enumerate(settings):
        r = measure(raw, fps, m, b, d)
        tag = "  <- default" if i == 0 else ""
        print(
            f"{m:13.1f} {b:5.1f} {r['tracks']:6d} {r['raw_jitter_px']:13.2f} {r['smooth_jitter_px']:16.2f} "
            f"{r['ratio']:5.1f} {r['lag_frames']:10.1f} ({r['raw_lag_frames']:.1f}){tag}"
        )


if __name__ == "__main__":
    main()
