"""Grid search of the clustering parameters on validation images (StarDist-style tuning).

The search behind :meth:`harmonic_seg.clustering.EmbeddingClusterer.tune`,
usable with any clustering. Plain numpy: the caller passes a ``cluster``
function that turns one prediction into a label map, so the search runs the
exact post-processing of ``predict`` and nothing else. The module constants
are the default grids; every function takes its grid as an argument.

A handful of validation images is a noisy judge: the single best grid point
often wins by luck (a tiny window, no minimum size). :func:`select_setting`
therefore scores every grid point by the smaller of its own score and the
mean score of itself and its grid neighbours, and among the settings whose pooled score is within noise of the
best one it takes the simplest: the connected components of the foreground
(the floor), then the minimum size nearest the configured one, then the
largest share a region needs to split a component, then no core selection,
then the widest window. :func:`keep_floor_unless_better` then compares the choice with the floor by
SBD and COCO AP together: a split that wins by one measure and loses by the other gives way.
"""

from __future__ import annotations

import itertools

import numpy as np

from ..metrics import matching_dataset, mean_symmetric_best_dice
from ..metrics._instances import _trusted_label_map, as_instances, as_label_map
from ..metrics.dice import _SBDScorer
from ..metrics.matching import _matching_of_pairs

__all__ = [
    "BANDWIDTH_FACTORS",
    "CORE_FRACTIONS",
    "FG_THRESHOLDS",
    "IOU_THRESHOLDS",
    "METRICS",
    "MIN_SHARES",
    "MIN_SIZE_FRACTIONS",
    "SCORINGS",
    "bandwidth_grid",
    "core_fraction_grid",
    "fg_threshold_grid",
    "grid_search_clustering",
    "grid_search_threshold",
    "keep_floor_unless_better",
    "median_instance_area",
    "min_size_grid",
    "select_setting",
    "size_filtered",
    "validation_score",
]

#: Euclidean bandwidths tried, as multiples of the default bandwidth (eps). Up to 3 eps: on elongated
#: objects (worms) a network's embedding drifts along the object and a wider window keeps it whole.
BANDWIDTH_FACTORS = (0.5, 0.7, 0.85, 1.0, 1.2, 1.5, 2.0, 2.5, 3.0)
METRICS = ("euclidean", "l1")
#: IoU thresholds of ``scoring="accuracy"`` (those of COCO AP).
IOU_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))
SCORINGS = ("sbd", "accuracy")
#: Core fractions tried (``cluster_embeddings(core_fraction=...)``): every foreground pixel seeks a mode
#: (None, the paper), or only the 80 % / 60 % where the embedding changes least: an embedding predicted at a
#: reduced size and brought back to full size blends touching objects along their borders, and the
#: selection leaves those pixels out of the mode search.
CORE_FRACTIONS = (None, 0.8, 0.6)

#: Smallest difference of pooled validation scores that :func:`select_setting` treats as more than noise;
#: with two or more validation images the noise is also estimated from them (standard error of the
#: per-image differences), and the larger of the two is used.
MIN_TOLERANCE = 0.005

#: ``recovery`` values in order of simplicity (see :func:`select_setting`).
RECOVERY_ORDER = ("components", "split", "mean_shift")

#: ``min_share`` values tried with ``recovery="split"`` (:func:`harmonic_seg.postprocess.split_at_modes`):
#: a region of one mode splits a component only if it holds this share of the component's largest one.
#: On nuclei 0.2 keeps fragments of one nucleus with it; a clump of cells of unequal sizes, or a plant's
#: small leaves beside large ones, needs less. The rules run on the cached mode search: a share costs
#: no mean shift.
MIN_SHARES = (0.05, 0.1, 0.2)

#: Foreground thresholds tried with the tuned clustering. The clustering tuned at one threshold is
#: usually the one tuned at its neighbours, so the threshold is searched after the clustering, at a
#: fraction of the cost of a full grid per threshold.
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


def min_size_grid(min_size, typical_area=0.0, fractions=MIN_SIZE_FRACTIONS):
    """Minimum instance sizes tried: around the configured one, and ``fractions`` of ``typical_area`` (the
    median instance area of the validation images)."""
    around = {0, int(min_size), 2 * int(min_size) + 10, 4 * int(min_size) + 40}
    return sorted(around | {int(round(f * typical_area)) for f in fractions})


def core_fraction_grid(core_fraction=None, fractions=CORE_FRACTIONS):
    """Core fractions tried: ``fractions`` and the configured one (1 counts as None)."""
    grid = list(fractions)
    value = None if core_fraction is None else round(float(core_fraction), 6)  # np.float32(0.8) is 0.8
    if value is not None and value != 1 and value not in grid:
        grid.append(value)
    return grid


def fg_threshold_grid(fg_threshold=0.5, thresholds=FG_THRESHOLDS):
    """Foreground thresholds tried: the configured one first (it wins ties; kept as given), then those of
    ``thresholds`` that differ from it."""
    value = float(fg_threshold)
    return [value] + [t for t in thresholds if round(t, 6) != round(value, 6)]


def size_filtered(cluster_all, drop_small):
    """The ``cluster`` of :func:`grid_search_clustering` from a clustering without minimum size.

    Parameters
    ----------
    cluster_all : callable
        ``cluster_all(prediction, bandwidth, metric, core_fraction) -> label map``, keeping every
        instance (or any result ``drop_small`` takes, such as a mode search).
    drop_small : callable
        ``drop_small(label_map, min_size, **finish) -> label map`` (e.g.
        :func:`harmonic_seg.postprocess.remove_small_instances`); ``finish`` are the keyword
        arguments given to ``cluster`` (``min_share``).

    Returns
    -------
    cluster : callable
        ``cluster(prediction, bandwidth, min_size, metric, core_fraction, **finish)``:
        ``drop_small`` of the clustering, which is computed once per
        prediction, bandwidth, distance and core fraction and kept while the
        grid goes through the minimum sizes (and shares).
    """
    cache = {}

    def cluster(prediction, bandwidth, min_size, metric, core_fraction=None, **finish):
        key = (id(prediction), bandwidth, metric, core_fraction)
        if key not in cache:
            if any(k[1:] != key[1:] for k in cache):
                cache.clear()  # a new (bandwidth, metric, core fraction): the previous clusterings are not needed
            cache[key] = cluster_all(prediction, bandwidth, metric, core_fraction)
        return drop_small(cache[key], min_size, **finish)

    return cluster


def bandwidth_grid(bandwidth, metric, n_dims, factors=BANDWIDTH_FACTORS):
    """Bandwidths tried for one distance: ``factors`` times ``bandwidth``, and for L1 also times
    ``sqrt(2 n_dims / pi)``.

    A point at Euclidean distance ``d`` in a random direction of ``R^n_dims`` lies at an L1 distance of
    about ``d sqrt(2 n_dims / pi)`` (2.8 ``d`` for 12 guides), so the L1 windows are scaled to hold the
    same neighbours as the Euclidean ones. With shared factors, the L1 grid only held windows narrower
    than the Euclidean ones, and on worms it kept choosing its widest.
    """
    scale = np.sqrt(2.0 * n_dims / np.pi) if metric == "l1" else 1.0
    return [float(bandwidth * f * scale) for f in factors]


def validation_score(y_true, y_pred, scoring):
    """``"sbd"``: mean symmetric best Dice over the images; ``"accuracy"``: TP / (TP + FP + FN)
    pooled over the images, averaged over the IoU thresholds 0.5:0.05:0.95 (rewards exact outlines,
    like COCO AP)."""
    if scoring == "sbd":
        return mean_symmetric_best_dice(y_true, y_pred)
    return float(np.mean([m.accuracy for m in matching_dataset(y_true, y_pred, list(IOU_THRESHOLDS))]))


def _truths(y_true, scoring):
    """What :func:`_scored` compares the predictions with: every truth validated and normalised once for
    the whole grid (for SBD, a prepared scorer)."""
    if scoring == "sbd":
        return [_SBDScorer(y, f"y_true[{i}]") for i, y in enumerate(y_true)]
    return [as_instances(y, f"y_true[{i}]") for i, y in enumerate(y_true)]


def _accuracy(pairs):
    return float(np.mean([m.accuracy for m in _matching_of_pairs(pairs, list(IOU_THRESHOLDS))]))


def _scored(truths, pred, scoring):
    """The data set's score and the per-image scores (the noise estimate of :func:`select_setting`);
    ``truths`` from :func:`_truths`; the same values as :func:`validation_score`."""
    if scoring == "sbd":
        per_image = [score(p) for score, p in zip(truths, pred)]
        return float(np.mean(per_image)), per_image
    pairs = [(t, _trusted_label_map(p, t.shape)) for t, p in zip(truths, pred)]
    return _accuracy(pairs), [_accuracy([pair]) for pair in pairs]


def _neighbours(keys):
    """For grid keys ``(group, i, j, ...)``: the rows one step away along exactly one index, same group."""
    where = {k: n for n, k in enumerate(keys)}
    out = []
    for k in keys:
        near = []
        for axis in range(1, len(k)):
            for step in (-1, 1):
                other = k[:axis] + (k[axis] + step,) + k[axis + 1 :]
                if other in where:
                    near.append(where[other])
        out.append(near)
    return out


def select_setting(results, keys, simplicity, *, min_tolerance=MIN_TOLERANCE):
    """The grid point to keep: pooled with its neighbours, the simplest within noise of the best.

    Parameters
    ----------
    results : list of dict
        One row per grid point with ``score`` and ``image_scores`` (one per
        validation image); ``pooled_score`` is added to every row.
    keys : list of tuple
        Grid position of every row: ``(group, i, j, ...)`` with integer
        indices along the ordered axes; rows of one group that differ by one
        step along one axis are neighbours.
    simplicity : list of tuple
        Sort key of every row, smaller is simpler.
    min_tolerance : float, default=MIN_TOLERANCE
        Pooled scores closer than this to the best one are within noise.

    Returns
    -------
    index : int
        Row of the chosen setting: the simplest among those whose pooled
        score is within noise of the best pooled score. The pooled score is
        the smaller of a row's own score and the mean score of the row and
        its neighbours: an isolated peak pools down to its neighbourhood, and
        a poor row next to it does not pool up. Noise is ``min_tolerance``
        or, where some image scores higher with the row than with the best
        one, the larger of it and the standard error of the per-image score
        differences (two images or more): a row that loses to the best one on
        some images and gains on none is not within noise of it (a split that
        helps on the images with touching objects and changes nothing on the
        others is no luck). Ties in simplicity: the higher pooled score, then
        grid order.
    """
    near = _neighbours(keys)
    scores = np.array([r["score"] for r in results], dtype=float)
    images = np.array([r["image_scores"] for r in results], dtype=float).reshape(len(results), -1)
    region = np.array([scores[[n] + near[n]].mean() for n in range(len(results))])
    pooled = np.minimum(scores, region)  # good itself and in its neighbourhood
    for r, v in zip(results, pooled):
        r["pooled_score"] = float(v)
    best = int(np.argmax(pooled))
    diff = images[best] - images  # (rows, images): the rows' own scores, image by image
    n_img = diff.shape[1]
    se = diff.std(1, ddof=1) / np.sqrt(n_img) if n_img >= 2 else np.zeros(len(results))
    se = np.where((diff < -1e-12).any(1), se, 0.0)  # only where some image prefers the row
    ok = pooled[best] - pooled <= np.maximum(min_tolerance, se)
    return min(np.flatnonzero(ok), key=lambda n: (simplicity[n], -pooled[n], n))


def grid_search_clustering(
    cluster, predictions, y_true, bandwidth, min_size, n_dims, scoring="sbd", typical_area=0.0,
    core_fractions=(None,), floor=None, recovery="split", min_shares=(None,), *, metrics=METRICS,
    bandwidth_factors=BANDWIDTH_FACTORS, min_size_fractions=MIN_SIZE_FRACTIONS,
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
    floor : callable or None, default=None
        ``floor(prediction, min_size) -> label map``: the connected
        components of the foreground, tried at every minimum size before the
        clustering (rows with ``recovery="components"``; the one with
        ``min_size=0`` is the plain floor). None: not tried.
    recovery : str, default="split"
        The ``recovery`` written in the rows of ``cluster``.
    min_shares : sequence of (float or None), default=(None,)
        Shares tried (e.g. :data:`MIN_SHARES`), passed to ``cluster`` as
        ``min_share=`` (None: not passed); they vary between the core
        fractions and the minimum sizes, larger ones being simpler.
    metrics : sequence of {"euclidean", "l1"}, default=METRICS
        Distances tried, earlier ones simpler.
    bandwidth_factors : sequence of float, default=BANDWIDTH_FACTORS
        Bandwidths tried, as multiples of ``bandwidth`` (see :func:`bandwidth_grid`).
    min_size_fractions : sequence of float, default=MIN_SIZE_FRACTIONS
        Minimum sizes tried as fractions of ``typical_area`` (see :func:`min_size_grid`).

    Returns
    -------
    best : dict
        The row chosen by :func:`select_setting`: ``recovery, metric,
        bandwidth, core_fraction, min_size, score, pooled_score`` (and
        ``min_share`` when ``min_shares`` are tried)
        (``metric``, ``bandwidth`` and ``core_fraction`` are None for the
        floor).
    results : list of dict
        Every grid point with its score and pooled score.
    """
    if scoring not in SCORINGS:
        raise ValueError(f"scoring must be one of {SCORINGS}; got {scoring!r}.")
    sizes = min_size_grid(min_size, typical_area, min_size_fractions)
    truths = _truths(y_true, scoring)
    results, keys, simple = [], [], []
    i_default = int(np.argmin([abs(s - int(min_size)) for s in sizes]))

    def add(row, key, rank):
        score, per_image = _scored(truths, row.pop("pred"), scoring)
        results.append({**row, "score": score, "image_scores": per_image})
        keys.append(key)
        simple.append(rank)

    if floor is not None:
        for i, size in enumerate(sizes):
            add({"recovery": "components", "metric": None, "bandwidth": None, "core_fraction": None,
                 "min_size": int(size), "pred": [floor(p, size) for p in predictions]},
                ("components", i), (RECOVERY_ORDER.index("components"), abs(i - i_default), 0, 0, 0))
    metrics = tuple(metrics)
    bws = {m: bandwidth_grid(bandwidth, m, n_dims, bandwidth_factors) for m in metrics}
    grid = [(m, b, c) for m in metrics for b in range(len(bws[m])) for c in range(len(core_fractions))]
    rank = RECOVERY_ORDER.index(recovery) if recovery in RECOVERY_ORDER else len(RECOVERY_ORDER)
    shares = sorted(min_shares, key=lambda v: -1 if v is None else v)
    for (m, b, c), (j, share), (i, size) in itertools.product(grid, enumerate(shares), enumerate(sizes)):
        bw, cf = bws[m][b], core_fractions[c]
        finish = {} if share is None else {"min_share": share}
        row = {"recovery": recovery, "metric": m, "bandwidth": bw, "core_fraction": cf, "min_size": int(size)}
        add({**row, **finish, "pred": [cluster(p, bw, size, m, cf, **finish) for p in predictions]},
            (m, b, c, j, i), (rank, abs(i - i_default), -j, c, -b, metrics.index(m)))
    chosen = select_setting(results, keys, simple)
    for r in results:
        del r["image_scores"]  # used for the noise estimate only
    return results[chosen], results


def keep_floor_unless_better(best, results, segment, predictions, y_true, *, min_tolerance=MIN_TOLERANCE):
    """The floor instead of a clustering that the validation images show losing to it on another measure.

    :func:`grid_search_clustering` chooses by one measure (SBD, say). A split that wins by it can still
    cut objects into pieces whose outlines score worse at the stricter IoU thresholds: the embedding
    may only add to the connected components of the foreground. So the chosen clustering is also
    compared with the best floor row on the validation images by mean symmetric best Dice and by
    COCO AP with the instances' scores, and the floor is kept if the clustering is lower than it by
    more than ``min_tolerance`` on either.

    Parameters
    ----------
    best : dict
        The row chosen by :func:`grid_search_clustering`.
    results : list of dict
        Its rows (``recovery``, ``score``, ``pooled_score``); the compared rows get ``check_sbd`` and
        ``check_coco_ap``.
    segment : callable
        ``segment(prediction, row) -> (label map, scores)``: the post-processing of ``row``.
    predictions : list
    y_true : list of ndarray of shape (H, W)
    min_tolerance : float, default=MIN_TOLERANCE

    Returns
    -------
    row : dict
        ``best``, or the floor row that replaces it.
    """
    from ..metrics import coco_average_precision

    floors = [r for r in results if r["recovery"] == "components"]
    if best["recovery"] == "components" or not floors:
        return best
    floor = max(floors, key=lambda r: (r.get("pooled_score", r["score"]), -r["min_size"]))
    for row in (best, floor):
        out = [segment(p, row) for p in predictions]
        labels = [lab for lab, _ in out]
        row["check_sbd"] = mean_symmetric_best_dice(y_true, labels)
        row["check_coco_ap"] = coco_average_precision(y_true, labels, [sc for _, sc in out])["AP"]
    loses = any(best[k] < floor[k] - min_tolerance for k in ("check_sbd", "check_coco_ap"))
    return floor if loses else best


def grid_search_threshold(segment, predictions, y_true, thresholds, scoring="sbd", *, min_tolerance=MIN_TOLERANCE):
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
        Thresholds tried, e.g. :func:`fg_threshold_grid`; the first is the
        configured one.
    scoring : {"sbd", "accuracy"}, default="sbd"
        See :func:`validation_score`.
    min_tolerance : float, default=MIN_TOLERANCE
        See :func:`select_setting`.

    Returns
    -------
    best : dict
        ``fg_threshold, score`` of the chosen threshold: among those within
        noise of the best score (:func:`select_setting`, no pooling: the
        thresholds are 0.1 apart), the nearest to the first one (the
        configured threshold), which thus stays unless another beats it by
        more than noise.
    results : list of dict
        Every threshold with its score.
    """
    if scoring not in SCORINGS:
        raise ValueError(f"scoring must be one of {SCORINGS}; got {scoring!r}.")
    results, truths = [], _truths(y_true, scoring)
    for t in thresholds:
        score, per_image = _scored(truths, [segment(p, t) for p in predictions], scoring)
        results.append({"fg_threshold": float(t), "score": score, "image_scores": per_image})
    first = float(thresholds[0])
    chosen = select_setting(results, [(n,) for n in range(len(results))],
                            [abs(r["fg_threshold"] - first) for r in results], min_tolerance=min_tolerance)
    for r in results:
        del r["image_scores"], r["pooled_score"]  # no pooling here: the pooled score is the score
    return results[chosen], results
