"""EmbeddingClusterer and segment_embeddings: one predicted embedding and foreground probability -> instances.

Imports without torch: the mean shift (:mod:`harmonic_seg.clustering.meanshift`) is imported when a
clustering runs.
"""

from __future__ import annotations

import logging
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import Interval, StrOptions, validate_parameter_constraints

from ..postprocess import MIN_SHARE
from . import tuning as _grid
from ._options import RECOVERIES

__all__ = ["EmbeddingClusterer", "segment_embeddings", "check_tune_args", "RECOVERIES", "DEFAULT_BANDWIDTH"]

logger = logging.getLogger(__name__)

#: Bandwidth of ``bandwidth=None`` outside :class:`~harmonic_seg.HarmonicSegmenter` (the paper's margin eps).
DEFAULT_BANDWIDTH = 0.5
#: The values :meth:`EmbeddingClusterer.tune` chooses (fitted as ``<name>_``).
TUNED = ("recovery", "metric", "bandwidth", "core_fraction", "min_size", "min_share", "fg_threshold")

_CONSTRAINTS = {
    "bandwidth": [Interval(Real, 0, None, closed="neither"), None],
    "metric": [StrOptions({"euclidean", "l1"})],
    "min_size": [Interval(Integral, 0, None, closed="left")],
    "core_fraction": [Interval(Real, 0, 1, closed="right"), None],
    "core_threshold": [Interval(Real, 0, 1, closed="both"), None],
    "split_components": ["boolean"],
    "merge_small": ["boolean"],
    "recovery": [StrOptions(set(RECOVERIES))],
    "min_share": [Interval(Real, 0, 1, closed="both")],
    "fg_threshold": [Interval(Real, 0, 1, closed="neither")],
}


def _segment(embedding, fg_prob, foreground, *, bandwidth, metric, min_size, core_fraction, core_threshold,
             split_components, merge_small, recovery, min_share, fg_threshold, device=None, score_window=None):
    """The clustering of :func:`segment_embeddings` and :meth:`EmbeddingClusterer.segment`, parameters valid
    (``score_window``: the (bandwidth, metric) of the instance scores; None: ``bandwidth`` and ``metric``)."""
    from . import _embedding  # torch

    if foreground is None:
        if fg_prob is None:
            raise ValueError("fg_prob is None and no foreground is given: pass the foreground probability map "
                             "(H, W), or a foreground mask as foreground=.")
        foreground = np.asarray(fg_prob) > fg_threshold
    return _embedding._cluster_embeddings(
        embedding, foreground, bandwidth, recovery=recovery, kernel="flat", metric=metric, seeds="bin_mean",
        min_size=min_size, min_share=min_share, split_components=split_components, merge_small=merge_small,
        fg_prob=fg_prob, core_threshold=core_threshold, core_fraction=core_fraction, max_points=20000,
        coarse_to_fine=True, device=device, random_state=0, score_window=score_window,
    )


def segment_embeddings(
    embedding,
    fg_prob,
    *,
    foreground=None,
    bandwidth=DEFAULT_BANDWIDTH,
    metric="euclidean",
    min_size=10,
    core_fraction=None,
    core_threshold=None,
    split_components=False,
    merge_small=False,
    recovery="split",
    min_share=MIN_SHARE,
    fg_threshold=0.5,
    device=None,
):
    """Instance label map and instance scores of one predicted embedding and foreground probability.

    The function form of :class:`EmbeddingClusterer` (its parameters, not
    tuned): the pixels whose foreground probability exceeds
    ``fg_threshold`` (or those of ``foreground``) are clustered by mean shift
    of their embeddings (:func:`~harmonic_seg.clustering.cluster_embeddings`).
    :meth:`~harmonic_seg.HarmonicSegmenter.predict` does exactly this with
    its fitted values.

    Parameters
    ----------
    embedding : array-like or torch.Tensor of shape (N, H, W)
        Predicted embedding (finite values), e.g. from
        :meth:`~harmonic_seg.HarmonicSegmenter.predict_embeddings`.
    fg_prob : array-like of shape (H, W) or None
        Predicted foreground probability; it also weights the instance
        scores. None needs ``foreground`` (the scores then use 1).
    foreground : array-like of shape (H, W) or None, default=None
        Known foreground mask, clustered instead of ``fg_prob > fg_threshold``.
    bandwidth, metric, min_size, core_fraction, core_threshold, split_components, merge_small, recovery, \
min_share, fg_threshold
        See :class:`EmbeddingClusterer` (``bandwidth`` None means 0.5).
    device : str, torch.device or None, default=None
        Where the mean shift runs: None is the device of a torch
        ``embedding``, else the CPU.

    Returns
    -------
    labels : ndarray of shape (H, W), int32
        0 = background, instances 1..K.
    scores : ndarray of shape (K,), float64
        ``scores[k]`` is the confidence of instance ``k + 1``.

    Examples
    --------
    >>> import numpy as np
    >>> from harmonic_seg.clustering import segment_embeddings
    >>> emb = np.zeros((2, 8, 8), np.float32); emb[0, :, 4:] = 3.0
    >>> prob = np.full((8, 8), 0.9, np.float32)
    >>> labels, scores = segment_embeddings(emb, prob, recovery="mean_shift")
    >>> int(labels.max())
    2
    """
    params = dict(bandwidth=bandwidth, metric=metric, min_size=min_size, core_fraction=core_fraction,
                  core_threshold=core_threshold, split_components=split_components, merge_small=merge_small,
                  recovery=recovery, min_share=min_share, fg_threshold=fg_threshold)
    validate_parameter_constraints(_CONSTRAINTS, params, caller_name="segment_embeddings")
    params["bandwidth"] = DEFAULT_BANDWIDTH if bandwidth is None else float(bandwidth)
    return _segment(embedding, fg_prob, foreground, **params, device=device)


def _check_grid(values, name, constraint, *, allow_empty=False):
    """A tuning grid: a non-empty list (or tuple) of values each allowed by ``constraint``."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"{name} must be a list of values; got {type(values).__name__} {values!r:.80}.")
    values = list(values)
    if not values and not allow_empty:
        raise ValueError(f"{name} must hold at least one value; got an empty list.")
    for v in values:
        validate_parameter_constraints({name: constraint}, {name: v}, caller_name="EmbeddingClusterer.tune")
    return values


#: Keyword arguments of :meth:`EmbeddingClusterer.tune` that are search grids, with what each value must be.
GRIDS = {
    "metrics": ([StrOptions({"euclidean", "l1"})], False),
    "bandwidth_factors": ([Interval(Real, 0, None, closed="neither")], False),
    "core_fractions": (_CONSTRAINTS["core_fraction"], False),
    "min_shares": (_CONSTRAINTS["min_share"], False),
    "min_size_fractions": ([Interval(Real, 0, 1, closed="both")], True),
    "fg_thresholds": (_CONSTRAINTS["fg_threshold"], True),
}


def check_tune_args(scoring, grids):
    """``scoring`` and the search grids of :meth:`EmbeddingClusterer.tune` (a dict), checked before any work;
    returns the grids as lists."""
    if scoring not in _grid.SCORINGS:
        raise ValueError(f"scoring must be one of {_grid.SCORINGS}; got {scoring!r}.")
    unknown = sorted(set(grids) - set(GRIDS))
    if unknown:
        raise TypeError(f"unknown search grid(s) {', '.join(unknown)}; the grids are {', '.join(GRIDS)}.")
    return {name: _check_grid(values, name, GRIDS[name][0], allow_empty=GRIDS[name][1])
            for name, values in grids.items()}


def _check_predictions(predictions, label_maps):
    """``(predictions, label_maps)`` as lists of pairs and arrays of matching shapes (checked once)."""
    for value, name in ((predictions, "predictions"), (label_maps, "label_maps")):
        if isinstance(value, np.ndarray) or not isinstance(value, (list, tuple)):
            raise TypeError(f"{name} must be a list (one entry per validation image); got {type(value).__name__}.")
    if not predictions or len(predictions) != len(label_maps):
        raise ValueError(f"predictions and label_maps must be non-empty lists of the same length; got "
                         f"{len(predictions)} and {len(label_maps)}.")
    out = []
    for i, (pred, lab) in enumerate(zip(predictions, label_maps)):
        if not isinstance(pred, (tuple, list)) or len(pred) != 2:
            raise TypeError(f"predictions[{i}] must be a pair (embedding (N, H, W), fg_prob (H, W)), as "
                            "HarmonicSegmenter.predict_embeddings returns; got "
                            f"{type(pred).__name__}.")
        emb, prob = pred
        emb_shape, prob_shape, lab_shape = np.shape(emb), np.shape(prob), np.shape(lab)
        if len(emb_shape) != 3 or emb_shape[1:] != prob_shape or prob_shape != lab_shape:
            raise ValueError(f"predictions[{i}] and label_maps[{i}] must have shapes (N, H, W), (H, W) and (H, W); "
                             f"got {emb_shape}, {prob_shape} and {lab_shape}.")
        out.append((emb, np.asarray(prob)))
    return out


class EmbeddingClusterer(BaseEstimator):
    """Instances from a predicted embedding: mean shift, post-processing and their tuning.

    The clustering stage of :class:`~harmonic_seg.HarmonicSegmenter` (its
    ``clustering`` parameter), usable on any embedding and foreground
    probability: :meth:`segment` turns one pair into a label map and one
    score per instance; :meth:`tune` chooses the recovery, the distance,
    the bandwidth, the core fraction, the minimum size, the share and the
    foreground threshold on validation predictions and label maps, as
    StarDist tunes its thresholds. Before tuning (or :meth:`fit`),
    :meth:`segment` uses the parameters; after, the fitted values.

    Parameters
    ----------
    bandwidth : float or None, default=None
        Mean-shift bandwidth, the margin eps of the guide functions; with
        ``recovery="split"`` also the smallest distance between the mean
        embeddings of two regions that splits a component. None: 0.5 (in a
        :class:`~harmonic_seg.HarmonicSegmenter`, the guides' margin, or 0.5
        with ``loss="discriminative"``).
    metric : {"euclidean", "l1"}, default="euclidean"
        Distance of the mean-shift window ("euclidean" as in scikit-learn's
        MeanShift, used by the reference implementation; "l1" is the distance
        of the paper's separation margin).
    min_size : int, default=10
        Instances with fewer pixels are dropped (or merged, see
        ``merge_small``).
    core_fraction : float in (0, 1] or None, default=None
        Only this fraction of the foreground pixels, those where the predicted
        embedding changes least from pixel to pixel, seek the modes; all are
        then assigned to the nearest mode. Pixels on a border between
        touching instances, whose embedding blends both, then form no
        fragments of their own. None: every foreground pixel seeks (the
        paper).
    core_threshold : float or None, default=None
        Only foreground pixels with a predicted foreground probability of at
        least this seek the modes; all are then assigned to the nearest mode.
        None: every foreground pixel seeks (the paper).
    split_components : bool, default=False
        ``recovery="mean_shift"``: split each cluster into its connected
        components.
    merge_small : bool, default=False
        ``recovery="mean_shift"``: give the pixels of instances smaller than
        ``min_size`` to a touching larger instance instead of dropping them.
    recovery : {"split", "components", "mean_shift"}, default="split"
        "split": the connected components of the foreground, split where the
        embedding shows distinct modes; "components": the connected
        components alone; "mean_shift": mean shift of all foreground pixels at
        once, each cluster an instance (the paper). See
        :func:`~harmonic_seg.clustering.cluster_embeddings`.
    min_share : float in [0, 1], default=0.1
        ``recovery="split"``: the smallest size, relative to the component's
        largest region of one mode, of a region that splits the component.
    fg_threshold : float in (0, 1), default=0.5
        Foreground probability above which a pixel is clustered (when no
        foreground mask is given).

    Attributes
    ----------
    bandwidth_, metric_, min_size_, core_fraction_, min_share_, recovery_, fg_threshold_
        The values :meth:`segment` uses: the parameters after :meth:`fit`
        (``bandwidth_`` is never None), the chosen ones after :meth:`tune`.
    tuning_results_ : list of dict
        Every setting :meth:`tune` tried with its ``score`` (and
        ``pooled_score`` for the clustering grid); empty after :meth:`fit`.

    See Also
    --------
    segment_embeddings : The same clustering as a function.
    harmonic_seg.HarmonicSegmenter : Holds one as ``clustering``.

    Examples
    --------
    >>> import numpy as np
    >>> from harmonic_seg.clustering import EmbeddingClusterer
    >>> emb = np.zeros((2, 8, 8), np.float32); emb[0, :, 4:] = 3.0
    >>> prob = np.full((8, 8), 0.9, np.float32)
    >>> labels, scores = EmbeddingClusterer(min_size=4).segment(emb, prob)
    >>> int(labels.max())
    2
    """

    _parameter_constraints = dict(_CONSTRAINTS)

    def __init__(
        self,
        *,
        bandwidth=None,
        metric="euclidean",
        min_size=10,
        core_fraction=None,
        core_threshold=None,
        split_components=False,
        merge_small=False,
        recovery="split",
        min_share=MIN_SHARE,
        fg_threshold=0.5,
    ):
        self.bandwidth = bandwidth
        self.metric = metric
        self.min_size = min_size
        self.core_fraction = core_fraction
        self.core_threshold = core_threshold
        self.split_components = split_components
        self.merge_small = merge_small
        self.recovery = recovery
        self.min_share = min_share
        self.fg_threshold = fg_threshold

    def _default_bandwidth(self):
        return DEFAULT_BANDWIDTH if self.bandwidth is None else float(self.bandwidth)

    def _configured(self):
        """The tuned values as the parameters give them (``bandwidth`` resolved)."""
        values = {k: getattr(self, k) for k in TUNED}
        values["bandwidth"] = self._default_bandwidth()
        return values

    def _settings(self):
        """Every value :meth:`segment` uses: fitted ones where fitted, then the untuned parameters."""
        tuned = {k: getattr(self, k + "_") for k in TUNED} if hasattr(self, "bandwidth_") else self._configured()
        return {**tuned, "core_threshold": self.core_threshold, "split_components": self.split_components,
                "merge_small": self.merge_small}

    def fit(self, X=None, y=None):
        """Take the parameters as the values :meth:`segment` uses (no data needed; see :meth:`tune`).

        Parameters
        ----------
        X, y : None
            Ignored (the mean shift learns nothing).

        Returns
        -------
        self : EmbeddingClusterer
        """
        self._validate_params()
        for name, value in self._configured().items():
            setattr(self, name + "_", value)
        self.min_size_ = int(self.min_size_)
        self.fg_threshold_ = float(self.fg_threshold_)
        self.tuning_results_ = []
        return self

    def segment(self, embedding, fg_prob, *, foreground=None, device=None):
        """Instance label map and instance scores of one embedding and foreground probability.

        Parameters
        ----------
        embedding : array-like or torch.Tensor of shape (N, H, W)
            Predicted embedding (finite values).
        fg_prob : array-like of shape (H, W) or None
            Predicted foreground probability (None needs ``foreground``).
        foreground : array-like of shape (H, W) or None, default=None
            Known foreground mask, clustered instead of
            ``fg_prob > fg_threshold_``.
        device : str, torch.device or None, default=None
            Where the mean shift runs (None: the device of a torch
            ``embedding``, else the CPU).

        Returns
        -------
        labels : ndarray of shape (H, W), int32
        scores : ndarray of shape (K,), float64
            One confidence per instance, as :func:`segment_embeddings` gives
            it, measured with the configured ``bandwidth`` and ``metric``
            (not the tuned window): the same instances score the same
            whichever window and recovery found them.
        """
        self._validate_params()
        return _segment(embedding, fg_prob, foreground, **self._settings(), device=device,
                        score_window=self._score_window())

    def _score_window(self):
        """The (bandwidth, metric) of the instance scores: the configured ones, not the tuned window, so that
        the same instances score the same whichever setting the tuning chose."""
        return self._default_bandwidth(), self.metric

    def tune(
        self,
        predictions,
        label_maps,
        *,
        scoring="sbd",
        metrics=_grid.METRICS,
        bandwidth_factors=_grid.BANDWIDTH_FACTORS,
        core_fractions=_grid.CORE_FRACTIONS,
        min_shares=_grid.MIN_SHARES,
        min_size_fractions=_grid.MIN_SIZE_FRACTIONS,
        fg_thresholds=_grid.FG_THRESHOLDS,
        device=None,
    ):
        """Choose the clustering and the foreground threshold on validation predictions.

        Every distance of ``metrics``, bandwidth (``bandwidth_factors`` times
        ``bandwidth``; the L1 ones ``sqrt(2 N / pi)`` times wider, so that
        they hold as many neighbours), core fraction (``core_fractions`` and
        ``core_fraction``), share (``min_shares``) and minimum size (around
        ``min_size``, and ``min_size_fractions`` of the median instance area
        of ``label_maps``, so that the fragments of large objects can be
        dropped) is clustered with ``recovery="split"`` and scored against
        ``label_maps``; so are the connected components of the foreground
        alone (``recovery="components"``, the floor) at every minimum size.
        Every setting is scored by the smaller of its own score and the mean
        of its own and its grid neighbours', and among the settings within
        noise of the best such score the simplest is kept: the floor first,
        then the minimum size nearest ``min_size``, the largest share, no
        core fraction, the widest window, the first distance (the floor
        keeps the configured distance, window, core fraction and share: it
        uses none). A clustering so chosen that scores below the best floor
        row by more than 0.005 in SBD or in COCO AP (with its scores) on the
        validation images gives way to that floor row
        (:func:`~harmonic_seg.clustering.tuning.keep_floor_unless_better`).
        The clustering is searched at ``fg_threshold``; with the
        chosen one, ``fg_threshold`` and ``fg_thresholds`` are then tried and
        the best is kept (the configured one among equal scores).

        Parameters
        ----------
        predictions : list of tuple (embedding, fg_prob)
            One ``(N, H, W)`` embedding and ``(H, W)`` foreground probability
            per validation image (e.g.
            :meth:`~harmonic_seg.HarmonicSegmenter.predict_embeddings`).
        label_maps : list of ndarray of shape (H, W)
            Their ground-truth label maps.
        scoring : {"sbd", "accuracy"}, default="sbd"
            Mean symmetric best Dice, or TP / (TP + FP + FN) averaged over
            IoU thresholds 0.5:0.05:0.95.
        metrics : sequence of {"euclidean", "l1"}, default=("euclidean", "l1")
            Distances tried (earlier ones are simpler).
        bandwidth_factors : sequence of float, default=(0.5, 0.7, 0.85, 1.0, 1.2, 1.5, 2.0, 2.5, 3.0)
            Bandwidths tried, as multiples of ``bandwidth``.
        core_fractions : sequence of (float or None), default=(None, 0.8, 0.6)
            Core fractions tried, besides ``core_fraction``.
        min_shares : sequence of float, default=(0.05, 0.1, 0.2)
            Shares tried with ``recovery="split"``.
        min_size_fractions : sequence of float, default=(0.02, 0.05, 0.1, 0.2, 0.3, 0.5)
            Minimum sizes tried, as fractions of the median instance area of
            ``label_maps`` (besides those around ``min_size``).
        fg_thresholds : sequence of float, default=(0.3, 0.4, 0.5, 0.6, 0.7)
            Foreground thresholds tried with the chosen clustering, besides
            ``fg_threshold``; an empty sequence keeps ``fg_threshold``.
        device : str, torch.device or None, default=None
            Where the mean shift runs.

        Returns
        -------
        self : EmbeddingClusterer
            With the chosen values as ``recovery_``, ``metric_``,
            ``bandwidth_``, ``core_fraction_``, ``min_size_``, ``min_share_``
            and ``fg_threshold_``, and every row tried in
            ``tuning_results_`` (the clustering grid at ``fg_threshold``, then
            the thresholds with the chosen clustering).
        """
        self._validate_params()
        grids = check_tune_args(scoring, dict(
            metrics=metrics, bandwidth_factors=bandwidth_factors, core_fractions=core_fractions,
            min_shares=min_shares, min_size_fractions=min_size_fractions, fg_thresholds=fg_thresholds))
        preds = _check_predictions(predictions, label_maps)
        best, results = self._search(
            preds, list(label_maps), scoring, device, metrics=tuple(grids["metrics"]),
            factors=tuple(grids["bandwidth_factors"]), cores=grids["core_fractions"], shares=grids["min_shares"],
            fractions=tuple(grids["min_size_fractions"]), thresholds=grids["fg_thresholds"])
        for name, value in best.items():
            setattr(self, name + "_", value)
        self.tuning_results_ = results
        return self

    def _search(self, preds, labels, scoring, device, *, metrics, factors, cores, shares, fractions, thresholds):
        """Grid search of the clustering, then of the foreground threshold; returns the chosen values and rows."""
        from ._embedding import _checked_modes, _checked_prediction, _instances

        bw0, fg0, recovery = self._default_bandwidth(), float(self.fg_threshold), "split"
        keep = {"split_components": self.split_components, "merge_small": self.merge_small}
        preds = [_checked_prediction(emb, prob, device) for emb, prob in preds]  # once, not per grid point

        def modes_of(pred, bandwidth, metric, core_fraction):  # the mode search, once per setting
            return _checked_modes(pred, fg0, bandwidth, recovery=recovery, metric=metric,
                                  core_threshold=self.core_threshold, core_fraction=core_fraction)

        def finish(modes, size, min_share=None):
            share = self.min_share if min_share is None else min_share
            return _instances(modes, min_size=size, min_share=share, scores=False, **keep)[0]

        def cluster(pred, threshold, *, recovery, metric, bandwidth, core_fraction, min_size, min_share):
            modes = _checked_modes(pred, threshold, bandwidth, recovery=recovery, metric=metric,
                                   core_threshold=self.core_threshold, core_fraction=core_fraction)
            return finish(modes, min_size, min_share)

        def floor(pred, min_size):  # connected components of the predicted foreground
            return cluster(pred, fg0, recovery="components", metric=self.metric, bandwidth=bw0, min_size=min_size,
                           core_fraction=self.core_fraction, min_share=self.min_share)

        best, results = _grid.grid_search_clustering(
            _grid.size_filtered(modes_of, finish), preds, labels, bw0, self.min_size, preds[0][0].shape[0], scoring,
            typical_area=_grid.median_instance_area(labels),
            core_fractions=_grid.core_fraction_grid(self.core_fraction, cores), floor=floor, recovery=recovery,
            min_shares=shares, metrics=metrics, bandwidth_factors=factors, min_size_fractions=fractions,
        )

        def segment(pred, row):  # labels and scores of a row, at the threshold of the grid
            modes = _checked_modes(pred, fg0, row["bandwidth"] or bw0, recovery=row["recovery"],
                                   metric=row["metric"] or self.metric, core_threshold=self.core_threshold,
                                   core_fraction=row["core_fraction"])
            share = row.get("min_share") or self.min_share
            return _instances(modes, min_size=row["min_size"], min_share=share, score_window=(bw0, self.metric),
                              **keep)

        best = _grid.keep_floor_unless_better(best, results, segment, preds, labels)
        chosen = {k: best.get(k) for k in ("recovery", "metric", "bandwidth", "core_fraction", "min_size",
                                           "min_share")}
        if best["recovery"] == "components":  # the floor uses no window, distance or share: keep the configured
            chosen.update(metric=self.metric, bandwidth=bw0, core_fraction=self.core_fraction,
                          min_share=self.min_share)
        best_t, results_t = _grid.grid_search_threshold(
            lambda pred, t: cluster(pred, t, **chosen), preds, labels, _grid.fg_threshold_grid(fg0, thresholds),
            scoring,
        )
        rows = [{**r, "fg_threshold": fg0} for r in results] + [{**chosen, **r} for r in results_t]
        chosen["fg_threshold"] = best_t["fg_threshold"]
        plain = next((r for r in results if r["recovery"] == "components" and r["min_size"] == 0), None)
        logger.info(
            "post-processing tuned: recovery=%s metric=%s bandwidth=%.3f min_size=%d min_share=%s core_fraction=%s "
            "fg_threshold=%.2f (validation %s %.4f; connected components of the foreground: %s)", chosen["recovery"],
            chosen["metric"], chosen["bandwidth"], chosen["min_size"], chosen["min_share"], chosen["core_fraction"],
            chosen["fg_threshold"], scoring, best_t["score"], "n/a" if plain is None else f"{plain['score']:.4f}",
        )
        return chosen, rows
