"""Best Dice, symmetric best Dice and difference in count (CVPPP metrics).

Definitions of the CVPPP leaf segmentation challenge (Scharr et al. 2016):

* ``BD(a, b)``: for every instance of ``a`` the largest Dice coefficient with
  any instance of ``b``, averaged over the instances of ``a``. Background is
  excluded and there is no one-to-one matching.
* ``SBD(true, pred) = min(BD(true, pred), BD(pred, true))``.
* ``DiC = #pred - #true`` and ``|DiC|``.

Instances are counted after relabelling, so ids need not be consecutive. For
a mask stack, empty masks are not counted.

Empty cases: ``BD(a, b)`` is 1.0 when neither has an instance and 0.0 when
exactly one of them is empty; hence SBD is 1.0 when both are empty
("nothing to find, nothing found") and 0.0 when only one is.
"""

from __future__ import annotations

import numpy as np

from ._instances import _trusted_label_map, as_instances, as_pair, check_pairs, check_same_shape, intersections

__all__ = [
    "best_dice",
    "symmetric_best_dice",
    "difference_in_count",
    "abs_difference_in_count",
    "mean_symmetric_best_dice",
    "mean_abs_difference_in_count",
]


def _best_dice(a, b):
    if a.n == 0:
        return 1.0 if b.n == 0 else 0.0
    if b.n == 0:
        return 0.0
    inter = intersections(a, b).astype(np.float64)
    dice = 2.0 * inter / (a.areas[:, None] + b.areas[None, :])
    return float(dice.max(axis=1).mean())


def _sbd(t, p):
    if t.n == 0 or p.n == 0:
        return 1.0 if t.n == p.n else 0.0
    return _sbd_of_table(intersections(t, p), t.areas, p.areas)


def _sbd_of_table(inter, areas_t, areas_p):
    """SBD from the (K_t, K_p) intersection table: the Dice table once, its best per row and per column
    (the same numbers, in the same order, as ``_best_dice`` both ways)."""
    dice = 2.0 * inter.astype(np.float64) / (areas_t[:, None] + areas_p[None, :])
    return min(float(dice.max(axis=1).mean()), float(dice.max(axis=0).mean()))


class _SBDScorer:
    """Symmetric best Dice of many predictions of one image against its truth, normalised once.

    The tuning of the post-processing scores thousands of label maps against a few truths: the truth
    is validated and relabelled here once, and for a label-map truth the intersection table is
    counted on the truth's own pixels only (background pixels of the truth add nothing to it).
    Predictions are the library's own label maps (non-negative integers of the truth's shape) and
    are not validated again. Scores equal :func:`symmetric_best_dice` exactly.
    """

    def __init__(self, y_true, name="y_true"):
        self.truth = as_instances(y_true, name)
        if self.truth.labels is not None:
            flat = self.truth.labels.ravel()
            self._fg = np.flatnonzero(flat)
            self._fg_ids = flat[self._fg].astype(np.int64)

    def __call__(self, y_pred):
        t = self.truth
        pred = _trusted_label_map(y_pred, t.shape)
        if t.n == 0 or pred.n == 0:
            return 1.0 if t.n == pred.n else 0.0
        if t.labels is None:
            return _sbd_of_table(intersections(t, pred), t.areas, pred.areas)
        nb = pred.n + 1
        pred_ids = pred.labels.ravel()[self._fg]
        table = np.bincount(self._fg_ids * nb + pred_ids, minlength=(t.n + 1) * nb).reshape(t.n + 1, nb)
        return _sbd_of_table(table[1:, 1:], t.areas, pred.areas)


def best_dice(a, b):
    """Best Dice of the instances of ``a`` with respect to ``b`` (CVPPP).

    Parameters
    ----------
    a, b : array-like of shape (H, W) or (K, H, W), or list of K arrays of shape (H, W)
        Integer label maps (0 = background) or stacks of binary masks, of the
        same image shape.

    Returns
    -------
    bd : float
        ``mean_i max_j 2 |a_i & b_j| / (|a_i| + |b_j|)`` over the instances
        ``a_i`` of ``a``. 1.0 if both are empty, 0.0 if exactly one is.
    """
    ia = as_instances(a, "a")
    ib = as_instances(b, "b")
    check_same_shape(ia, ib, "a", "b")
    return _best_dice(ia, ib)


def symmetric_best_dice(y_true, y_pred):
    """Symmetric best Dice, ``min(BD(y_true, y_pred), BD(y_pred, y_true))``.

    Parameters
    ----------
    y_true : array-like of shape (H, W) or (K, H, W), or list of K arrays of shape (H, W)
        Ground truth: an integer label map or a stack of (possibly
        overlapping) binary masks.
    y_pred : array-like of shape (H, W)
        Predicted integer label map (0 = background).

    Returns
    -------
    sbd : float
        In [0, 1]; 1.0 if both are empty, 0.0 if exactly one is.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([[1, 1, 0], [0, 0, 2]])
    >>> symmetric_best_dice(y, y)
    1.0
    """
    t, p = as_pair(y_true, y_pred)
    return _sbd(t, p)


def difference_in_count(y_true, y_pred):
    """Difference in count, ``#instances(y_pred) - #instances(y_true)``.

    Parameters
    ----------
    y_true : array-like of shape (H, W) or (K, H, W), or list of K arrays of shape (H, W)
        Ground truth label map or mask stack.
    y_pred : array-like of shape (H, W)
        Predicted integer label map.

    Returns
    -------
    dic : int
        Positive when too many instances were predicted.
    """
    t, p = as_pair(y_true, y_pred)
    return p.n - t.n


def abs_difference_in_count(y_true, y_pred):
    """Absolute difference in count, ``|#pred - #true|``.

    Parameters
    ----------
    y_true : array-like of shape (H, W) or (K, H, W), or list of K arrays of shape (H, W)
        Ground truth label map or mask stack.
    y_pred : array-like of shape (H, W)
        Predicted integer label map.

    Returns
    -------
    abs_dic : int
    """
    return abs(difference_in_count(y_true, y_pred))


def mean_symmetric_best_dice(ys_true, ys_pred):
    """Mean symmetric best Dice over a data set of images.

    Parameters
    ----------
    ys_true : list of array-like
        Ground truth per image: label maps (H, W) or mask stacks (K, H, W).
    ys_pred : list of array-like of shape (H, W)
        Predicted label maps, one per image.

    Returns
    -------
    sbd : float
        Unweighted mean of the per-image SBD.
    """
    return float(np.mean([_sbd(t, p) for t, p in check_pairs(ys_true, ys_pred)]))


def mean_abs_difference_in_count(ys_true, ys_pred):
    """Mean absolute difference in count over a data set of images.

    Parameters
    ----------
    ys_true : list of array-like
        Ground truth per image: label maps (H, W) or mask stacks (K, H, W).
    ys_pred : list of array-like of shape (H, W)
        Predicted label maps, one per image.

    Returns
    -------
    abs_dic : float
    """
    return float(np.mean([abs(p.n - t.n) for t, p in check_pairs(ys_true, ys_pred)]))
