"""Tests of harmonic_seg.metrics: matching, Dice / DiC, scorers, validation."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import BaseEstimator
from sklearn.model_selection import cross_val_score

from harmonic_seg.metrics import (
    SCORERS,
    Matching,
    abs_difference_in_count,
    ap_score,
    ap_scorer,
    best_dice,
    difference_in_count,
    iou_matrix,
    make_ap_scorer,
    matching,
    matching_dataset,
    mean_abs_difference_in_count,
    mean_symmetric_best_dice,
    sbd_score,
    sbd_scorer,
    symmetric_best_dice,
)
from harmonic_seg.metrics.matching import _match_counts

# Case A (4x4). True instances 1 and 2 (4 px each); predicted 5 (3 px, inside
# 1), 7 (2 px, inside 2) and 9 (1 px on background).
#   IoU(1, 5) = 3 / 4 = 0.75, IoU(2, 7) = 2 / 4 = 0.5, all others 0.
#   Dice(1, 5) = 6 / 7, Dice(2, 7) = 4 / 6 = 2 / 3.
#   BD(true, pred) = (6/7 + 2/3) / 2 = 16/21; BD(pred, true) = (6/7 + 2/3 + 0) / 3 = 32/63.
#   SBD = 32/63; DiC = 3 - 2 = 1.
A_TRUE = np.array(
    [[1, 1, 0, 0],
     [1, 1, 0, 0],
     [0, 0, 2, 2],
     [0, 0, 2, 2]]
)
A_PRED = np.array(
    [[5, 5, 0, 0],
     [5, 0, 0, 0],
     [0, 0, 7, 7],
     [9, 0, 0, 0]]
)

# Case B (4x4), overlapping ground truth: mask P = rows 0-1 (8 px), mask Q =
# cols 0-1 (8 px), overlap 4 px. Prediction: 1 = rows 0-1 (= P), 2 = rows 2-3,
# cols 0-1 (4 px, inside Q).
#   IoU(P, 1) = 1, IoU(Q, 1) = 4 / 12 = 1/3, IoU(Q, 2) = 4 / 8 = 0.5, IoU(P, 2) = 0.
#   Dice(Q, 1) = 8 / 16 = 0.5, Dice(Q, 2) = 8 / 12 = 2/3.
#   BD(true, pred) = (1 + 2/3) / 2 = 5/6; BD(pred, true) = (1 + 2/3) / 2 = 5/6.
B_P = np.zeros((4, 4), bool)
B_P[:2] = True
B_Q = np.zeros((4, 4), bool)
B_Q[:, :2] = True
B_TRUE = np.stack([B_P, B_Q])
B_PRED = np.array(
    [[1, 1, 1, 1],
     [1, 1, 1, 1],
     [2, 2, 0, 0],
     [2, 2, 0, 0]]
)


def _stack(labels):
    return np.stack([labels == i for i in np.unique(labels) if i != 0])


def _random_labels(rng, shape=(24, 30), n=9):
    lab = np.zeros(shape, dtype=np.int64)
    for k in range(1, n + 1):
        r, c = rng.integers(0, shape[0] - 6), rng.integers(0, shape[1] - 6)
        h, w = rng.integers(2, 7, size=2)
        lab[r:r + h, c:c + w] = 3 * k + 10  # non-consecutive ids, later ones overwrite
    return lab


# ---------------------------------------------------------------- IoU matrix


def test_iou_matrix_hand_computed():
    iou, tids, pids = iou_matrix(A_TRUE, A_PRED)
    assert_array_equal(tids, [1, 2])
    assert_array_equal(pids, [5, 7, 9])
    assert_allclose(iou, [[0.75, 0, 0], [0, 0.5, 0]])


def test_iou_matrix_overlapping_masks():
    iou, tids, pids = iou_matrix(B_TRUE, B_PRED)
    assert_array_equal(tids, [1, 2])
    assert_array_equal(pids, [1, 2])
    assert_allclose(iou, [[1.0, 0.0], [1 / 3, 0.5]])
    # a list of 2-D bool masks is the same as the stacked array
    iou_list, _, _ = iou_matrix([B_P, B_Q], B_PRED)
    assert_allclose(iou_list, iou)


def test_iou_matrix_label_map_equals_mask_stack_and_brute_force(rng):
    yt, yp = _random_labels(rng), _random_labels(rng)
    iou, tids, pids = iou_matrix(yt, yp)
    iou_s, _, _ = iou_matrix(_stack(yt), yp)
    assert_allclose(iou_s, iou)
    for i, a in enumerate(tids):
        for j, b in enumerate(pids):
            inter = np.sum((yt == a) & (yp == b))
            union = np.sum((yt == a) | (yp == b))
            assert iou[i, j] == pytest.approx(inter / union)


def test_iou_matrix_empty_masks_dropped():
    stack = np.concatenate([np.zeros((1, 4, 4), bool), B_TRUE])
    iou, tids, _ = iou_matrix(stack, B_PRED)
    assert_array_equal(tids, [2, 3])  # 1-based positions of the non-empty masks
    assert_allclose(iou, [[1.0, 0.0], [1 / 3, 0.5]])


# ------------------------------------------------------------------ matching


def test_matching_hand_computed():
    m = matching(A_TRUE, A_PRED, thresh=0.5)
    assert isinstance(m, Matching)
    assert (m.tp, m.fp, m.fn, m.n_true, m.n_pred) == (2, 1, 0, 2, 3)
    assert m.precision == pytest.approx(2 / 3)
    assert m.recall == pytest.approx(1.0)
    assert m.accuracy == pytest.approx(2 / 3)
    assert m.f1 == pytest.approx(0.8)
    assert m.mean_matched_score == pytest.approx(0.625)
    assert m.mean_true_score == pytest.approx(0.625)
    assert m.panoptic_quality == pytest.approx(1.25 / 2.5)

    m = matching(A_TRUE, A_PRED, thresh=0.6)  # only (1, 5) survives
    assert (m.tp, m.fp, m.fn) == (1, 2, 1)
    assert m.precision == pytest.approx(1 / 3)
    assert m.recall == pytest.approx(0.5)
    assert m.accuracy == pytest.approx(0.25)
    assert m.f1 == pytest.approx(0.4)
    assert m.mean_matched_score == pytest.approx(0.75)
    assert m.mean_true_score == pytest.approx(0.375)
    assert m.panoptic_quality == pytest.approx(0.75 / 2.5)


def test_matching_is_frozen():
    m = matching(A_TRUE, A_PRED)
    with pytest.raises(AttributeError):
        m.tp = 5


def test_matching_threshold_sequence_equals_separate_calls():
    threshs = [0.3, 0.5, 0.6, 0.8]
    many = matching(A_TRUE, A_PRED, thresh=threshs)
    assert isinstance(many, list) and len(many) == 4
    assert many == [matching(A_TRUE, A_PRED, thresh=t) for t in threshs]
    assert [m.tp for m in many] == [2, 2, 1, 0]
    assert matching(A_TRUE, A_PRED, thresh=np.array([0.5]))[0] == matching(A_TRUE, A_PRED, 0.5)


def test_matching_mask_stack_and_non_consecutive_ids(rng):
    yt, yp = _random_labels(rng), _random_labels(rng)
    a = matching(yt, yp, thresh=[0.3, 0.5])
    b = matching(_stack(yt), yp, thresh=[0.3, 0.5])
    c = matching(yt * 7, yp + (yp > 0) * 1000, thresh=[0.3, 0.5])
    d = matching(yt * 10**12, yp.astype(np.uint64) * 10**15, thresh=[0.3, 0.5])  # huge ids
    e = matching(yt.astype(np.uint64), yp.astype(np.uint16), thresh=[0.3, 0.5])
    assert a == b == c == d == e
    assert_array_equal(iou_matrix(yt * 10**12, yp)[1], np.unique(yt)[1:] * 10**12)
    assert matching(yt, yt).accuracy == 1.0


def test_matching_overlapping_ground_truth():
    m = matching(B_TRUE, B_PRED, thresh=0.5)
    assert (m.tp, m.fp, m.fn) == (2, 0, 0)
    assert m.mean_matched_score == pytest.approx(0.75)
    m = matching(B_TRUE, B_PRED, thresh=0.6)
    assert (m.tp, m.fp, m.fn) == (1, 1, 1)


def test_hungarian_beats_greedy():
    # greedy on IoU would take (0, 0) and leave true 1 unmatched
    iou = np.array([[0.6, 0.55], [0.52, 0.0]])
    assert _match_counts(iou, [0.5])[0] == (2, pytest.approx(1.07))


def test_matching_empty_cases():
    z = np.zeros((4, 4), int)
    m = matching(z, z)  # StarDist convention: 0 / 0 -> 0.0
    assert (m.tp, m.fp, m.fn, m.n_true, m.n_pred) == (0, 0, 0, 0, 0)
    assert (m.precision, m.recall, m.accuracy, m.f1, m.panoptic_quality) == (0, 0, 0, 0, 0)
    m = matching(A_TRUE, z)
    assert (m.tp, m.fp, m.fn, m.accuracy, m.precision) == (0, 0, 2, 0.0, 0.0)
    m = matching(z, A_PRED)
    assert (m.tp, m.fp, m.fn, m.recall) == (0, 3, 0, 0.0)
    m = matching(np.zeros((0, 4, 4), bool), A_PRED)
    assert (m.n_true, m.fp) == (0, 3)
    m = matching([], A_PRED)  # empty list of masks: shape taken from the prediction
    assert (m.n_true, m.fp) == (0, 3)


# ---------------------------------------------------------- matching_dataset


def test_matching_dataset_pooled_vs_by_image():
    # image 1 = case A (tp 2, fp 1, fn 0, accuracy 2/3); image 2: one true
    # instance, nothing predicted (tp 0, fp 0, fn 1, accuracy 0).
    yt2 = np.zeros((3, 5), int)
    yt2[1, 1:3] = 4
    ys_true, ys_pred = [A_TRUE, yt2], [A_PRED, np.zeros((3, 5), int)]
    pooled = matching_dataset(ys_true, ys_pred, thresh=0.5)
    assert (pooled.tp, pooled.fp, pooled.fn, pooled.n_true, pooled.n_pred) == (2, 1, 1, 3, 3)
    assert pooled.by_image is False
    assert pooled.accuracy == pytest.approx(2 / 4)
    assert pooled.precision == pytest.approx(2 / 3)
    assert pooled.recall == pytest.approx(2 / 3)
    assert pooled.mean_true_score == pytest.approx(1.25 / 3)
    assert pooled.mean_matched_score == pytest.approx(0.625)

    per = matching_dataset(ys_true, ys_pred, thresh=0.5, by_image=True)
    assert (per.tp, per.fp, per.fn) == (2, 1, 1)
    assert per.by_image is True
    assert per.accuracy == pytest.approx((2 / 3 + 0) / 2)
    assert per.precision == pytest.approx((2 / 3 + 0) / 2)
    assert per.recall == pytest.approx((1 + 0) / 2)
    assert per.mean_matched_score == pytest.approx(0.625 / 2)


def test_matching_dataset_threshold_sequence_and_stacks():
    ys_true, ys_pred = [A_TRUE, B_TRUE], [A_PRED, B_PRED]
    many = matching_dataset(ys_true, ys_pred, thresh=(0.5, 0.6))
    assert many == [matching_dataset(ys_true, ys_pred, thresh=t) for t in (0.5, 0.6)]
    assert [m.tp for m in many] == [4, 2]
    single = matching_dataset([A_TRUE], [A_PRED], thresh=0.6)
    assert (single.tp, single.fp, single.fn, single.accuracy) == (1, 2, 1, 0.25)


# ---------------------------------------------------------------------- Dice


def test_dice_hand_computed():
    assert best_dice(A_TRUE, A_PRED) == pytest.approx(16 / 21)
    assert best_dice(A_PRED, A_TRUE) == pytest.approx(32 / 63)
    assert symmetric_best_dice(A_TRUE, A_PRED) == pytest.approx(32 / 63)
    assert difference_in_count(A_TRUE, A_PRED) == 1
    assert difference_in_count(A_PRED, A_TRUE) == -1
    assert abs_difference_in_count(A_PRED, A_TRUE) == 1


def test_dice_overlapping_masks_and_equivalence(rng):
    assert best_dice(B_TRUE, B_PRED) == pytest.approx(5 / 6)
    assert best_dice(B_PRED, B_TRUE) == pytest.approx(5 / 6)
    assert symmetric_best_dice(B_TRUE, B_PRED) == pytest.approx(5 / 6)
    assert difference_in_count(B_TRUE, B_PRED) == 0
    yt, yp = _random_labels(rng), _random_labels(rng)
    sbd = symmetric_best_dice(yt, yp)
    assert 0 < sbd < 1
    assert symmetric_best_dice(_stack(yt), yp) == pytest.approx(sbd)
    assert symmetric_best_dice(yt * 5 + 3 * (yt > 0), yp) == pytest.approx(sbd)
    assert difference_in_count(_stack(yt), yp) == difference_in_count(yt, yp)
    assert difference_in_count(yt, yp) == len(np.unique(yp)) - len(np.unique(yt))


def test_dice_empty_cases():
    z = np.zeros((4, 4), int)
    assert symmetric_best_dice(z, z) == 1.0
    assert symmetric_best_dice(A_TRUE, z) == 0.0
    assert symmetric_best_dice(z, A_PRED) == 0.0
    assert best_dice(z, A_PRED) == 0.0
    assert best_dice(A_PRED, z) == 0.0
    assert difference_in_count(z, A_PRED) == 3
    assert symmetric_best_dice(np.zeros((2, 4, 4), bool), z) == 1.0


def test_dataset_dice_helpers():
    ys_true, ys_pred = [A_TRUE, B_TRUE], [A_PRED, B_PRED]
    assert mean_symmetric_best_dice(ys_true, ys_pred) == pytest.approx((32 / 63 + 5 / 6) / 2)
    assert mean_abs_difference_in_count(ys_true, ys_pred) == pytest.approx(0.5)


# ------------------------------------------------------------------- scorers


class _LabelEstimator(BaseEstimator):
    """Dummy estimator: X are label maps; predict drops the largest id."""

    def __init__(self, drop_last=False):
        self.drop_last = drop_last

    def fit(self, X, y=None):
        return self

    def predict(self, X):
        out = []
        for x in X:
            x = np.asarray(x).copy()
            if self.drop_last and x.max() > 0:
                x[x == x.max()] = 0
            out.append(x)
        return out


def test_score_functions():
    assert sbd_score([A_TRUE, B_TRUE], [A_PRED, B_PRED]) == pytest.approx((32 / 63 + 5 / 6) / 2)
    assert ap_score([A_TRUE, B_TRUE], [A_PRED, B_PRED]) == pytest.approx(4 / 5)  # tp 4, fp 1
    assert ap_score([A_TRUE, B_TRUE], [A_PRED, B_PRED], thresh=0.6) == pytest.approx(2 / 7)


def test_scorers_with_dummy_estimator(rng):
    y = [_random_labels(rng, shape=(20 + i, 25), n=5) for i in range(4)]
    perfect, lossy = _LabelEstimator(), _LabelEstimator(drop_last=True)
    assert sbd_scorer(perfect, y, y) == 1.0
    assert ap_scorer(perfect, y, y) == 1.0
    assert SCORERS["ap75"](perfect, y, y) == 1.0
    expected = sbd_score(y, lossy.predict(y))
    assert expected < 1.0
    assert sbd_scorer(lossy, y, y) == pytest.approx(expected)
    assert SCORERS["sbd"] is sbd_scorer
    assert SCORERS["ap50"](lossy, y, y) == pytest.approx(ap_score(y, lossy.predict(y)))
    assert make_ap_scorer(0.75)(lossy, y, y) == pytest.approx(ap_score(y, lossy.predict(y), thresh=0.75))


def test_scorers_in_cross_val_score(rng):
    y = [_random_labels(rng, shape=(18, 22 + i), n=4) for i in range(4)]
    scores = cross_val_score(_LabelEstimator(drop_last=True), y, y, cv=2, scoring=sbd_scorer)
    pred = _LabelEstimator(drop_last=True).predict(y)
    assert_allclose(scores, [sbd_score(y[:2], pred[:2]), sbd_score(y[2:], pred[2:])])
    scores = cross_val_score(_LabelEstimator(), y, y, cv=2, scoring=SCORERS["ap50"])
    assert_allclose(scores, [1.0, 1.0])


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "y_true, y_pred, exc, words",
    [
        (A_TRUE, np.zeros((2, 4, 4), int), ValueError, ["y_pred", "(2, 4, 4)"]),
        (A_TRUE, A_PRED.astype(float), TypeError, ["y_pred", "float64"]),
        (A_TRUE, A_PRED - 6, ValueError, ["y_pred", "non-negative"]),
        (A_TRUE.astype(np.float32), A_PRED, TypeError, ["y_true", "float32"]),
        (A_TRUE, np.zeros((4, 5), int), ValueError, ["y_true", "y_pred", "(4, 5)"]),
        (np.zeros((2, 4, 5), bool), A_PRED, ValueError, ["y_true", "y_pred", "(4, 5)"]),
        (np.stack([A_TRUE, A_TRUE]), A_PRED, ValueError, ["y_true", "binary"]),
        (np.zeros((1, 1, 4, 4), bool), A_PRED, ValueError, ["y_true", "(1, 1, 4, 4)"]),
        ([B_P, np.zeros((3, 3), bool)], B_PRED, ValueError, ["y_true", "ragged"]),
        ("labels", A_PRED, TypeError, ["y_true"]),
    ],
)
def test_bad_single_inputs(y_true, y_pred, exc, words):
    for func in (matching, iou_matrix, symmetric_best_dice, difference_in_count):
        with pytest.raises(exc) as info:
            func(y_true, y_pred)
        for w in words:
            assert w in str(info.value)


def test_bad_dataset_inputs():
    with pytest.raises(ValueError, match="ys_true and ys_pred must have the same length.*2 and 1"):
        matching_dataset([A_TRUE, A_TRUE], [A_PRED])
    with pytest.raises(ValueError, match="same length"):
        mean_symmetric_best_dice([A_TRUE], [A_PRED, A_PRED])
    with pytest.raises(TypeError, match="ys_true.*single 2-D array"):
        matching_dataset(A_TRUE, [A_PRED])
    with pytest.raises(ValueError, match="at least one image"):
        matching_dataset([], [])
    with pytest.raises(TypeError, match=r"ys_pred\[1\].*float"):
        matching_dataset([A_TRUE, A_TRUE], [A_PRED, A_PRED * 1.0])
    with pytest.raises(ValueError, match=r"ys_true\[0\] and ys_pred\[0\]"):
        mean_symmetric_best_dice([A_TRUE], [np.zeros((5, 5), int)])
    with pytest.raises(TypeError, match="by_image"):
        matching_dataset([A_TRUE], [A_PRED], by_image="yes")


@pytest.mark.parametrize("thresh, exc", [(0.0, ValueError), (1.5, ValueError), (-0.1, ValueError),
                                         ("0.5", TypeError), ([], TypeError), (None, TypeError),
                                         ([0.5, 2], ValueError), (True, TypeError)])
def test_bad_thresh(thresh, exc):
    with pytest.raises(exc, match="thresh"):
        matching(A_TRUE, A_PRED, thresh=thresh)
    with pytest.raises(exc, match="thresh"):
        matching_dataset([A_TRUE], [A_PRED], thresh=thresh)


def test_make_ap_scorer_rejects_bad_thresh():
    with pytest.raises(ValueError, match="thresh"):
        make_ap_scorer(0)
    with pytest.raises(TypeError, match="thresh"):
        make_ap_scorer([0.5, 0.75])


def test_metrics_import_without_torch():
    code = "import harmonic_seg.metrics, sys; assert 'torch' not in sys.modules, 'torch imported'"
    res = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr


def test_sbd_scorer_equals_symmetric_best_dice():
    """The tuning's prepared scorer gives exactly the public metric's value, for label maps and mask
    stacks, with empty truths and predictions, and refuses a float or mis-shaped prediction."""
    from harmonic_seg.metrics import symmetric_best_dice
    from harmonic_seg.metrics.dice import _SBDScorer

    rng = np.random.default_rng(0)
    truths = [rng.integers(0, 6, (20, 24)) * 7, np.zeros((20, 24), int),
              rng.random((4, 20, 24)) > 0.6, np.zeros((0, 20, 24), bool)]
    preds = [rng.integers(0, 5, (20, 24)).astype(np.int32), np.zeros((20, 24), np.int32),
             (rng.integers(0, 3, (20, 24)) * 1000).astype(np.int64)]
    for truth in truths:
        scorer = _SBDScorer(truth)
        for pred in preds:
            assert scorer(pred) == symmetric_best_dice(truth, pred)
    with pytest.raises(ValueError, match="integer label map of shape"):
        _SBDScorer(truths[0])(preds[0].astype(float))
    with pytest.raises(ValueError, match="integer label map of shape"):
        _SBDScorer(truths[0])(preds[0][:5])
