"""The pose-to-bones solver where the truth is known, against the naive alternative, and its cost.

    .venv/bin/python benchmarks/bench_avatar3d_solver.py [--poses 1000] [--seed 0] [--max-lean 10]

Synthetic people (`vtpose.studio.avatar3d.synthetic`: 3D poses within human joint limits, the torso turned up to
35 degrees and leaning up to --max-lean degrees toward or away from the camera and sideways, projected by weak
perspective to COCO-17 keypoints) are solved back one after another by one `BodySolver` (its calibration learning
over the run, as on a live track). For each limb bone group, and the spine (the chest's up against pelvis to neck):
the median and 90th percentile angle between the solved bone direction and the true one, in degrees, for the solver
and for the naive alternative (in-plane angles only: every bone in the image plane, zero depth). The first
CALIBRATION_POSES poses are left out of the figures (the calibration's warm-up). Cost: `BodySolver.update` per
person per frame (smoothing included, the rig given), microseconds, median of the run.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from vtpose.studio.avatar.rig import complete_pose
from vtpose.studio.avatar3d.solver import LIMBS, REST_DIRECTIONS, Body3D, BodySolver, _qrot
from vtpose.studio.avatar3d.synthetic import random_pose

CALIBRATION_POSES = 50
SPINE = "spine"  # the chest's up, against the true pelvis-to-neck direction
GROUPS = {
    "upper arms": ("leftUpperArm", "rightUpperArm"),
    "forearms": ("leftLowerArm", "rightLowerArm"),
    "thighs": ("leftUpperLeg", "rightUpperLeg"),
    "shins": ("leftLowerLeg", "rightLowerLeg"),
    "spine": (SPINE,),
}


def _degrees(u: np.ndarray, v: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip(u @ v / np.linalg.norm(u) / np.linalg.norm(v), -1.0, 1.0))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--poses", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--max-lean", type=float, default=10.0, help="the torso's lean, degrees (a seated streamer: 30)"
    )
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    solver, timer = BodySolver(), BodySolver()
    solved: dict[str, list[float]] = {b: [] for b in (*LIMBS, SPINE)}
    naive: dict[str, list[float]] = {b: [] for b in (*LIMBS, SPINE)}
    costs = []
    for i in range(args.poses):
        pose = random_pose(rng, max_lean_deg=args.max_lean)
        rig = complete_pose(pose.person.keypoints, track_id=1)
        assert rig is not None
        start = time.perf_counter()
        timer.update(pose.person, rig, 1 / 30)
        costs.append((time.perf_counter() - start) * 1e6)
        local, confidence, width, hips = solver.solve(pose.person, rig)
        if i < CALIBRATION_POSES:
            continue
        world = Body3D(local, hips, width, confidence).world()
        for bone, (a, b, _, _) in LIMBS.items():
            truth = pose.joints[b] - pose.joints[a]
            solved[bone].append(_degrees(np.array(_qrot(world[bone], REST_DIRECTIONS[bone])), truth))
            naive[bone].append(_degrees(truth * [1.0, 1.0, 0.0], truth))
        spine = pose.joints["neck"] - pose.joints["pelvis"]
        solved[SPINE].append(_degrees(np.array(_qrot(world["chest"], (0.0, 1.0, 0.0))), spine))
        naive[SPINE].append(_degrees(spine * [1.0, 1.0, 0.0], spine))
    print(f"{args.poses} synthetic poses (first {CALIBRATION_POSES} left out), seed {args.seed}, lean up to "
          f"{args.max_lean:g} degrees")  # fmt: skip
    print("| bone group | solver median | solver p90 | in-plane only median | in-plane only p90 |")
    print("|---|---|---|---|---|")
    for group, bones in GROUPS.items():
        ours = np.concatenate([solved[b] for b in bones])
        flat = np.concatenate([naive[b] for b in bones])
        print(
            f"| {group} | {np.median(ours):.1f} | {np.percentile(ours, 90):.1f} | {np.median(flat):.1f} | "
            f"{np.percentile(flat, 90):.1f} |"
        )
    print(f"solver cost: {np.median(costs):.0f} us per person per frame (median; p90 {np.percentile(costs, 90):.0f})")


if __name__ == "__main__":
    main()
