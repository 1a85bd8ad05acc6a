"""IoU-based one-to-one matching of instances (StarDist's ``matching``).

The statistics follow ``stardist.matching`` (Schmidt et al. 2018, Weigert et
al. 2020): predicted and true instances are paired one-to-one by the Hungarian
algorithm on their IoU, and a pair is a true positive when its IoU is at least
``thresh``. ``accuracy`` = TP / (TP + FP + FN) is the "average precision at
IoU threshold tau" of the Data Science Bowl 2018.

Empty cases follow StarDist exactly: every ratio whose denominator is 0 is
0.0. Hence an image with no true and no predicted instance gets precision,
recall, accuracy, f1 and the three scores all equal to 0.0 (with tp = fp = fn
= 0); use the counts to tell this case apart.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, replace

import numpy as np
from scipy.optimize import linear_sum_assignment

from .._validation import _describe
from ._instances import as_pair, check_pairs, intersections

__all__ = ["Matching", "iou_matrix", "matching", "matching_dataset"]


@dataclass(frozen=True)
class Matching:
    """Matching statistics at one IoU threshold.

    Attributes
    ----------
    thresh : float
        IoU threshold: a matched pair with IoU >= thresh is a true positive.
    tp, fp, fn : int
        True positives, false positives (unmatched predictions) and false
        negatives (unmatched true instances).
    precision : float
        TP / (TP + FP).
    recall : float
        TP / (TP + FN).
    accuracy : float
        TP / (TP + FP + FN), the DSB2018 "average precision" at ``thresh``.
    f1 : float
        2 TP / (2 TP + FP + FN).
    mean_true_score : float
        Sum of the IoUs of the true positives divided by ``n_true``.
    mean_matched_score : float
        Mean IoU of the true positives.
    panoptic_quality : float
        Sum of the IoUs of the true positives / (TP + FP / 2 + FN / 2).
    n_true, n_pred : int
        Number of true and predicted instances.
    by_image : bool or None, default=None
        For :func:`matching_dataset`: whether the ratios are per-image means
        (True) or computed from pooled counts (False); None for one image.

    Notes
    -----
    A ratio whose denominator is 0 is 0.0 (StarDist's convention).
    """

    thresh: float
    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    accuracy: float
    f1: float
    mean_true_score: float
    mean_matched_score: float
    panoptic_quality: float
    n_true: int
    n_pred: int
    by_image: bool | None = None


def _safe_divide(x, y):
    return float(x) / float(y) if y > 0 else 0.0


def _from_counts(thresh, tp, n_true, n_pred, sum_matched, by_image=None):
    fp, fn = n_pred - tp, n_true - tp
    return Matching(
        thresh=float(thresh),
        tp=int(tp),
        fp=int(fp),
        fn=int(fn),
        precision=_safe_divide(tp, tp + fp),
        recall=_safe_divide(tp, tp + fn),
        accuracy=_safe_divide(tp, tp + fp + fn),
        f1=_safe_divide(2 * tp, 2 * tp + fp + fn),
        mean_true_score=_safe_divide(sum_matched, n_true),
        mean_matched_score=_safe_divide(sum_matched, tp),
        panoptic_quality=_safe_divide(sum_matched, tp + fp / 2 + fn / 2),
        n_true=int(n_true),
        n_pred=int(n_pred),
        by_image=by_image,
    )


def _check_thresh(thresh):
    """Return (list of thresholds, whether a single scalar was given)."""
    single = isinstance(thresh, numbers.Real) and not isinstance(thresh, bool)
    if isinstance(thresh, np.ndarray) and thresh.ndim == 0:
        thresh, single = float(thresh), True
    values = [thresh] if single else thresh
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__") or len(values) == 0:
        raise TypeError(
            f"thresh must be a real number in (0, 1] or a non-empty sequence of them; got {_describe(thresh)}."
        )
    out = []
    for t in values:
        if isinstance(t, bool) or not isinstance(t, numbers.Real):
            raise TypeError(f"thresh must hold real numbers in (0, 1]; got {_describe(t)}.")
        if not (0 < t <= 1):
            raise ValueError(f"thresh must lie in (0, 1]; got {t!r}.")
        out.append(float(t))
    return out, single


def _iou(t, p):
    inter = intersections(t, p).astype(np.float64)
    union = t.areas[:, None] + p.areas[None, :] - inter
    return inter / np.maximum(union, 1.0)


def iou_matrix(y_true, y_pred):
    """Intersection over union of every (true, predicted) pair of instances.

    Parameters
    ----------
    y_true : array-like of shape (H, W) or (K, H, W), or list of K arrays of shape (H, W)
        Ground truth: an integer label map (0 = background) or a stack of
        binary masks, which may overlap. Empty masks are ignored.
    y_pred : array-like of shape (H, W)
        Predicted integer label map (0 = background).

    Returns
    -------
    iou : ndarray of shape (K_true, K_pred)
        ``iou[i, j]`` is the IoU of true instance ``true_ids[i]`` and predicted
        instance ``pred_ids[j]``.
    true_ids : ndarray of shape (K_true,)
        Sorted ids of the true instances (for a mask stack: 1-based positions
        of the non-empty masks).
    pred_ids : ndarray of shape (K_pred,)
        Sorted nonzero ids of the prediction.
    """
    t, p = as_pair(y_true, y_pred)
    return _iou(t, p), t.ids.copy(), p.ids.copy()


def _match_counts(iou, thresholds):
    """(tp, sum of matched IoUs) for every threshold, as StarDist computes them."""
    n_true, n_pred = iou.shape
    n_matched = min(n_true, n_pred)
    out = []
    for thr in thresholds:
        if n_matched == 0:
            out.append((0, 0.0))
            continue
        # maximise the number of pairs above threshold; IoU breaks ties
        costs = -(iou >= thr).astype(np.float64) - iou / (2 * n_matched)
        rows, cols = linear_sum_assignment(costs)
        matched = iou[rows, cols]
        ok = matched >= thr
        out.append((int(np.count_nonzero(ok)), float(matched[ok].sum())))
    return out


def matching(y_true, y_pred, thresh=0.5):
    """Match true and predicted instances one-to-one and score the result.

    Parameters
    ----------
    y_true : array-like of shape (H, W) or (K, H, W), or list of K arrays of shape (H, W)
        Ground truth: an integer label map (0 = background) or a stack of
        binary masks, which may overlap.
    y_pred : array-like of shape (H, W)
        Predicted integer label map (0 = background).
    thresh : float or sequence of float, default=0.5
        IoU threshold(s) in (0, 1]. With a sequence, the IoU matrix is
        computed once and one result per threshold is returned.

    Returns
    -------
    result : Matching or list of Matching
        A list when ``thresh`` is a sequence.

    Notes
    -----
    Follows ``stardist.matching.matching``: Hungarian assignment on the IoU
    matrix, with the cost ``-(IoU >= thresh) - IoU / (2 min(K_true, K_pred))``,
    so that the number of pairs above threshold is maximised first. Ratios
    with a zero denominator are 0.0 (e.g. no true and no predicted instances
    gives accuracy 0.0).

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([[1, 1, 0], [0, 0, 2]])
    >>> matching(y, y).accuracy
    1.0
    """
    thresholds, single = _check_thresh(thresh)
    t, p = as_pair(y_true, y_pred)
    iou = _iou(t, p)
    res = [_from_counts(thr, tp, t.n, p.n, s) for thr, (tp, s) in zip(thresholds, _match_counts(iou, thresholds))]
    return res[0] if single else res


def matching_dataset(ys_true, ys_pred, thresh=0.5, by_image=False):
    """Matching statistics aggregated over a data set of images.

    Parameters
    ----------
    ys_true : list of array-like
        Ground truth per image: label maps (H, W) or mask stacks (K, H, W).
    ys_pred : list of array-like of shape (H, W)
        Predicted label maps, one per image (sizes may differ between images).
    thresh : float or sequence of float, default=0.5
        IoU threshold(s) in (0, 1].
    by_image : bool, default=False
        If False, TP / FP / FN and the sum of matched IoUs are pooled over all
        images and the ratios are computed from the pooled counts. If True,
        every ratio (precision, recall, accuracy, f1 and the three scores) is
        the unweighted mean of the per-image values. The counts are sums in
        both cases.

    Returns
    -------
    result : Matching or list of Matching
        With ``by_image`` set; a list when ``thresh`` is a sequence.

    Notes
    -----
    Follows ``stardist.matching.matching_dataset``. Per-image ratios with a
    zero denominator count as 0.0 in the ``by_image=True`` mean.
    """
    thresholds, single = _check_thresh(thresh)
    if not isinstance(by_image, (bool, np.bool_)):
        raise TypeError(f"by_image must be a bool; got {_describe(by_image)}.")
    by_image = bool(by_image)
    return _matching_of_pairs(check_pairs(ys_true, ys_pred), thresholds, single, by_image)


def _matching_of_pairs(pairs, thresholds, single=False, by_image=False):
    """:func:`matching_dataset` of normalised ``(truth, prediction)`` :class:`Instances` pairs."""
    per_image = []  # per image: list over thresholds of (tp, sum of matched IoUs), n_true, n_pred
    for t, p in pairs:
        per_image.append((_match_counts(_iou(t, p), thresholds), t.n, p.n))
    n_true = sum(n for _, n, _ in per_image)
    n_pred = sum(n for _, _, n in per_image)
    out = []
    for k, thr in enumerate(thresholds):
        tp = sum(c[k][0] for c, _, _ in per_image)
        sum_matched = sum(c[k][1] for c, _, _ in per_image)
        pooled = _from_counts(thr, tp, n_true, n_pred, sum_matched, by_image=by_image)
        if by_image:
            stats = [_from_counts(thr, c[k][0], nt, npred, c[k][1]) for c, nt, npred in per_image]
            means = {
                f: float(np.mean([getattr(s, f) for s in stats]))
                for f in ("precision", "recall", "accuracy", "f1", "mean_true_score",
                          "mean_matched_score", "panoptic_quality")
            }
            pooled = replace(pooled, **means)
        out.append(pooled)
    return out[0] if single else out
