"""PCKh@0.5 against values computed by hand on two persons."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vtpose.keypoints import MPII_JOINT_NAMES
from vtpose.training.pckh import PCKH_MEAN_EXCLUDES, SC_BIAS, head_sizes, pckh

J = {name: i for i, name in enumerate(MPII_JOINT_NAMES)}
# Both head boxes are 30 x 40 px: diagonal 50, head size 0.6 * 50 = 30 px, so PCKh@0.5 allows 15 px.
HEAD_BOXES = np.array([[0.0, 0.0, 30.0, 40.0], [100.0, 50.0, 130.0, 90.0]])


def _ground_truth() -> np.ndarray:
    gt = np.zeros((2, 16, 3))
    gt[:, :, 0] = np.arange(16) * 10.0 + 100.0
    gt[:, :, 1] = 200.0
    gt[:, :, 2] = 2
    gt[1, J["l_wrist"]] = (0.0, 0.0, 0)  # unlabelled in person 1
    return gt


def test_head_size_is_sc_bias_times_the_head_box_diagonal() -> None:
    assert SC_BIAS == 0.6
    assert head_sizes(HEAD_BOXES).tolist() == [30.0, 30.0]


def test_ground_truth_in_scores_one() -> None:
    gt = _ground_truth()
    result = pckh(gt, gt[:, :, :2].copy(), HEAD_BOXES)
    assert result.mean == 1.0 and all(v == 1.0 for v in result.per_joint.values())
    assert result.labelled["l_wrist"] == 1 and result.labelled["r_ankle"] == 2 and result.threshold == 0.5


def test_hand_computed_values() -> None:
    gt = _ground_truth()
    pred = gt[:, :, :2].copy()
    pred[0, J["r_ankle"]] += (9.0, 12.0)  # exactly 15 px = 0.5 head sizes: correct (MPII's rule is <=)
    pred[0, J["r_knee"]] += (9.0, 12.001)  # just over: wrong
    pred[1, J["r_knee"]] += (9.0, 11.99)  # just under: correct
    pred[0, J["pelvis"]] += (100.0, 0.0)  # wrong, but pelvis is not in the mean
    pred[1, J["l_wrist"]] = (5000.0, -5000.0)  # unlabelled in the ground truth: ignored
    pred[1, J["r_elbow"]] = (np.nan, np.nan)  # not predicted: wrong
    result = pckh(gt, pred, HEAD_BOXES)
    assert result.per_joint["r_ankle"] == 1.0
    assert result.per_joint["r_knee"] == 0.5
    assert result.per_joint["pelvis"] == 0.5
    assert result.per_joint["l_wrist"] == 1.0 and result.labelled["l_wrist"] == 1
    assert result.per_joint["r_elbow"] == 0.5
    # The mean: 14 joints x 2 persons less person 1's l_wrist = 27 labelled; r_knee and r_elbow wrong once each.
    assert PCKH_MEAN_EXCLUDES == ("pelvis", "thorax")
    assert result.mean == pytest.approx(25 / 27, abs=1e-12)


def test_a_joint_nobody_labelled_is_nan_and_out_of_the_mean() -> None:
    gt = _ground_truth()
    gt[:, J["head_top"], 2] = 0
    pred = gt[:, :, :2].copy()
    pred[:, J["head_top"]] = -1000.0
    result = pckh(gt, pred, HEAD_BOXES)
    assert math.isnan(result.per_joint["head_top"]) and result.labelled["head_top"] == 0
    assert result.mean == 1.0


def test_bad_input_names_the_problem() -> None:
    gt = _ground_truth()
    with pytest.raises(ValueError, match=r"person 1: head box \[5.0, 5.0, 5.0, 9.0\] has no area"):
        pckh(gt, gt[:, :, :2], np.array([[0.0, 0.0, 30.0, 40.0], [5.0, 5.0, 5.0, 9.0]]))
    with pytest.raises(ValueError, match=r"predictions have shape \(2, 17, 2\)"):
        pckh(gt, np.zeros((2, 17, 2)), HEAD_BOXES)
    with pytest.raises(ValueError, match=r"expected \(N, 16, 3\)"):
        pckh(gt[:, :, :2], gt[:, :, :2], HEAD_BOXES)
    with pytest.raises(ValueError, match="head_boxes give 1 boxes for 2 persons"):
        pckh(gt, gt[:, :, :2], HEAD_BOXES[:1])
