"""Grid search of the clustering parameters on validation images (StarDist-style tuning).

Plain numpy: the caller passes a ``cluster`` function that turns one
prediction into a label map, so the search runs the exact post-processing of
``predict`` and nothing else.
"""

from __future__ import annotations

import itertools

import numpy as np

from .metrics import matching_dataset, mean_symmetric_best_dice
from .metrics._instances import as_label_map

__all__ = [
    "BANDWIDTH_FACTORS",
    "CORE_FRACTIONS",
    "FG_THRESHOLDS",
    "IOU_THRESHOLDS",
    "SCORINGS",
    "bandwidth_grid",
    "core_fraction_grid",
    "fg_threshold_grid",
    "grid_search_clustering",
    "grid_search_threshold",
    "median_instance_area",
    "min_size_grid",
    "size_filtered",
]

#: Euclidean bandwidths tried, as multiples of the default bandwidth (eps). Up to 3 eps: on elongated
#: objects (worms) a network's embedding drifts along the object and a wider window keeps it whole.
BANDWIDTH_FACTORS = (0.5, 0.7, 0.85, 1.0, 1.2, 1.5, 2.0, 2.5, 3.0)
METRICS = ("euclidean", "l1")
#: IoU thresholds of ``scoring="accuracy"`` (those of COCO AP).
IOU_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))
SCORINGS = ("sbd", "accuracy")
#: Core fractions tried (``cluster_embeddings(core_fraction=...)``): every foreground pixel seeks a mode
#: (None, the paper), or only the 80 % / 60 % where the embedding changes least. Mean shift of exact target
#: embeddings computed at half size and brought back to full size finds leaves with SBD 0.72 when every
#: pixel seeks, 0.94 with 80 % (benchmarks/oracle.py); the blended borders are what the selection leaves out.
CORE_FRACTIONS = (None, 0.8, 0.6)

#: Foreground thresholds tried with the tuned clustering. Swept on saved networks with the clustering
#: re-tuned at each threshold (benchmarks/fg_threshold.py), the held-out images chose 0.6 on DIC-HeLa
#: and on leaves; on leaves the clustering tuned at 0.6 was the one tuned at 0.5, so a search of the
#: threshold after the clustering finds it at a fifth of the cost of a full grid per threshold.
FG_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)


#: Minimum sizes tried as fractions of the median instance area of the validation labels. A fixed grid
#: around ``min_size`` (10 px) cannot drop the fragments of large objects: on DIC-HeLa (median cell
#: 12,500 px) fragments of a few hundred pixels each count as an instance and cost SBD.
MIN_SIZE_FRACTIONS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5)


def median_instance_area(label_maps):
    """Median number of pixels of the instances of some label maps (0 when there is none; ids may be sparse)."""
    areas = [as_label_map(lab, "label_maps").areas for lab in label_maps]
    areas = np.concatenate(areas) if areas else np.zeros(0)
    return float(np.median(areas)) if areas.size else 0.0


def min_size_grid(min_size, typical_area=0.0):
    """Minimum instance sizes tried: around the configured one, and :data:`MIN_SIZE_FRACTIONS` of
    ``typical_area`` (the median instance area of the validation images)."""
    around = {0, int(min_size), 2 * int(min_size) + 10, 4 * int(min_size) + 40}
    return sorted(around | {int(round(f * typical_area)) for f in MIN_SIZE_FRACTIONS})


def core_fraction_grid(core_fraction=None):
    """Core fractions tried: :data:`CORE_FRACTIONS` and the configured one (1 counts as None)."""
    grid = list(CORE_FRACTIONS)
    value = None if core_fraction is None else round(float(core_fraction), 6)  # np.float32(0.8) is 0.8
    if value is not None and value != 1 and value not in grid:
        grid.append(value)
    return grid


def fg_threshold_grid(fg_threshold=0.5):
    """Foreground thresholds tried: the configured one first (it wins ties; kept as given), then those of
    :data:`FG_THRESHOLDS` that differ from it."""
    value = float(fg_threshold)
    return [value] + [t for t in FG_THRESHOLDS if round(t, 6) != round(value, 6)]


def size_filtered(cluster_all, drop_small):
    """The ``cluster`` of :func:`grid_search_clustering` from a clustering without minimum size.

    Parameters
    ----------
    cluster_all : callable
        ``cluster_all(prediction, bandwidth, metric, core_fraction) -> label map``, keeping every
        instance.
    drop_small : callable
        ``drop_small(label_map, min_size) -> label map`` (e.g.
        :func:`harmonic_seg.postprocess.remove_small_instances`).

    Returns
    -------
    cluster : callable
        ``cluster(prediction, bandwidth, min_size, metric, core_fraction)``:
        ``drop_small`` of the clustering, which is computed once per
        prediction, bandwidth, distance and core fraction and kept while the
        grid goes through the minimum sizes.
    """
    cache = {}

    def cluster(prediction, bandwidth, min_size, metric, core_fraction=None):
        key = (id(prediction), bandwidth, metric, core_fraction)
        if key not in cache:
            if any(k[1:] != key[1:] for k in cache):
                cache.clear()  # a new (bandwidth, metric, core fraction): the previous clusterings are not needed
            cache[key] = cluster_all(prediction, bandwidth, metric, core_fraction)
        return drop_small(cache[key], min_size)

    return cluster


def bandwidth_grid(bandwidth, metric, n_dims):
    """Bandwidths tried for one distance: :data:`BANDWIDTH_FACTORS` times ``bandwidth``, and for L1
    also times ``sqrt(2 n_dims / pi)``.

    A point at Euclidean distance ``d`` in a random direction of ``R^n_dims`` lies at an L1 distance of
    about ``d sqrt(2 n_dims / pi)`` (2.8 ``d`` for 12 guides), so the L1 windows are scaled to hold the
    same neighbours as the Euclidean ones. With shared factors, the L1 grid only held windows narrower
    than the Euclidean ones, and on worms it kept choosing its widest.
    """
    scale = np.sqrt(2.0 * n_dims / np.pi) if metric == "l1" else 1.0
    return [float(bandwidth * f * scale) for f in BANDWIDTH_FACTORS]


def validation_score(y_true, y_pred, scoring):
    """``"sbd"``: mean symmetric best Dice over the images; ``"accuracy"``: TP / (TP + FP + FN)
    pooled over the images, averaged over the IoU thresholds 0.5:0.05:0.95 (rewards exact outlines,
    like COCO AP)."""
    if scoring == "sbd":
        return mean_symmetric_best_dice(y_true, y_pred)
    return float(np.mean([m.accuracy for m in matching_dataset(y_true, y_pred, list(IOU_THRESHOLDS))]))


def grid_search_clustering(
    cluster, predictions, y_true, bandwidth, min_size, n_dims, scoring="sbd", typical_area=0.0,
    core_fractions=(None,),
):
    """Best clustering parameters on validation images.

    Parameters
    ----------
    cluster : callable
        ``cluster(prediction, bandwidth, min_size, metric, core_fraction) -> label map``.
        The minimum size varies fastest: for one ``(metric, bandwidth, core_fraction)`` every
        size is tried on every prediction before the next, so that ``cluster``
        can cluster once and only drop the small instances for each size
        (:func:`size_filtered`).
    predictions : list
        One prediction per validation image, passed to ``cluster`` as is.
    y_true : list of ndarray of shape (H, W)
        Ground-truth label maps of the validation images.
    bandwidth : float
        Default bandwidth; the grid is :func:`bandwidth_grid` of it.
    min_size : int
        Default minimum size; the grid is :func:`min_size_grid` of it and of ``typical_area``.
    n_dims : int
        Embedding dimension (scales the L1 bandwidths, see :func:`bandwidth_grid`).
    scoring : {"sbd", "accuracy"}, default="sbd"
        See :func:`validation_score`.
    typical_area : float, default=0.0
        Typical instance area in pixels, e.g. :func:`median_instance_area` of
        ``y_true``; 0 tries the sizes around ``min_size`` only.
    core_fractions : sequence of (float or None), default=(None,)
        Core fractions tried (e.g. :func:`core_fraction_grid`); they vary
        between the bandwidths and the minimum sizes.

    Returns
    -------
    best : dict
        ``metric, bandwidth, core_fraction, min_size, score`` of the best grid
        point (the first one in grid order among equal scores).
    results : list of dict
        Every grid point with its score.
    """
    if scoring not in SCORINGS:
        raise ValueError(f"scoring must be one of {SCORINGS}; got {scoring!r}.")
    results = []
    grid = [(m, bw, cf) for m in METRICS for bw in bandwidth_grid(bandwidth, m, n_dims) for cf in core_fractions]
    for (metric, bw, cf), size in itertools.product(grid, min_size_grid(min_size, typical_area)):
        pred = [cluster(p, bw, size, metric, cf) for p in predictions]
        results.append({"metric": metric, "bandwidth": bw, "core_fraction": cf, "min_size": int(size),
                        "score": validation_score(y_true, pred, scoring)})
    return max(results, key=lambda r: r["score"]), results


def grid_search_threshold(segment, predictions, y_true, thresholds, scoring="sbd"):
    """Best foreground threshold on validation images, the clustering fixed.

    Parameters
    ----------
    segment : callable
        ``segment(prediction, threshold) -> label map``: the clustering of
        the pixels whose foreground probability exceeds ``threshold``.
    predictions : list
        One prediction per validation image, passed to ``segment`` as is.
    y_true : list of ndarray of shape (H, W)
        Ground-truth label maps of the validation images.
    thresholds : sequence of float
        Thresholds tried, e.g. :func:`fg_threshold_grid` (the first wins ties).
    scoring : {"sbd", "accuracy"}, default="sbd"
        See :func:`validation_score`.

    Returns
    -------
    best : dict
        ``fg_threshold, score`` of the best threshold (the first in ``thresholds``
        among equal scores).
    results : list of dict
        Every threshold with its score.
    """
    if scoring not in SCORINGS:
        raise ValueError(f"scoring must be one of {SCORINGS}; got {scoring!r}.")
    results = [
        {"fg_threshold": float(t), "score": validation_score(y_true, [segment(p, t) for p in predictions], scoring)}
        for t in thresholds
    ]
    return max(results, key=lambda r: r["score"]), results
