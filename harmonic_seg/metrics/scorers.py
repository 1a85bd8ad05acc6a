"""scikit-learn scorers for instance segmentation estimators.

The scorers call ``estimator.predict(X)``, which must return a list of 2-D
integer label maps, and compare it with ``y``, a list of ground truths (label
maps or mask stacks). scikit-learn passes ``y`` and the predictions to the
score function unchanged, so they work with ``cross_val_score``,
``GridSearchCV`` etc. (the estimator must not be a classifier, or stratified
splitting would try to read ``y`` as class labels).
"""

from __future__ import annotations

from sklearn.metrics import make_scorer

from .dice import mean_symmetric_best_dice
from .matching import _check_thresh, matching_dataset

__all__ = ["sbd_score", "ap_score", "make_ap_scorer", "sbd_scorer", "ap_scorer", "SCORERS"]


def sbd_score(y_true_list, y_pred_list):
    """Mean symmetric best Dice over images (greater is better).

    Parameters
    ----------
    y_true_list : list of array-like
        Ground truth per image: label maps (H, W) or mask stacks (K, H, W).
    y_pred_list : list of array-like of shape (H, W)
        Predicted label maps.

    Returns
    -------
    score : float
    """
    return mean_symmetric_best_dice(y_true_list, y_pred_list)


def ap_score(y_true_list, y_pred_list, thresh=0.5):
    """Pooled DSB2018 average precision TP / (TP + FP + FN) at one IoU threshold.

    Parameters
    ----------
    y_true_list : list of array-like
        Ground truth per image: label maps (H, W) or mask stacks (K, H, W).
    y_pred_list : list of array-like of shape (H, W)
        Predicted label maps.
    thresh : float, default=0.5
        IoU threshold in (0, 1].

    Returns
    -------
    score : float
        ``matching_dataset(..., by_image=False).accuracy``.
    """
    thresholds, single = _check_thresh(thresh)
    if not single:
        raise TypeError(f"thresh must be a single real number in (0, 1]; got {thresh!r}.")
    return matching_dataset(y_true_list, y_pred_list, thresh=thresholds[0], by_image=False).accuracy


def make_ap_scorer(thresh=0.5):
    """Scorer computing :func:`ap_score` at IoU threshold ``thresh``.

    Parameters
    ----------
    thresh : float, default=0.5
        IoU threshold in (0, 1].

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y)``, greater is better.
    """
    thresholds, single = _check_thresh(thresh)
    if not single:
        raise TypeError(f"thresh must be a single real number in (0, 1]; got {thresh!r}.")
    return make_scorer(ap_score, greater_is_better=True, thresh=thresholds[0])


sbd_scorer = make_scorer(sbd_score, greater_is_better=True)
ap_scorer = make_ap_scorer(0.5)

#: Scorers by name, for ``scoring=SCORERS["sbd"]`` etc.
SCORERS = {"sbd": sbd_scorer, "ap50": ap_scorer, "ap75": make_ap_scorer(0.75)}
