"""The clustering half of :class:`~harmonic_seg.HarmonicSegmenter`: mean shift of its predictions and the
StarDist-style tuning of the clustering parameters on validation images (:meth:`optimize_postprocessing`).

A mixin, so that the estimator's module holds the training and the prediction; the grid itself is in
:mod:`harmonic_seg._tuning` (plain numpy).
"""

from __future__ import annotations

import logging

from sklearn.utils._param_validation import validate_parameter_constraints
from sklearn.utils.validation import check_is_fitted

from . import _tuning
from ._validation import check_images_and_labels
from .postprocess import MIN_SHARE

__all__ = ["ClusteringMixin"]

logger = logging.getLogger(__name__)

#: ``_cluster(..., core_fraction=_FITTED)``: the fitted ``core_fraction_`` (None means no core selection).
_FITTED = object()

#: Pull margin of the discriminative baseline (discriminative_loss's delta_v): its default bandwidth.
_DELTA_V = 0.5

#: ``recovery_`` of a fitted segmenter before tuning: connected components of the foreground, split where the
#: embedding shows distinct modes (:func:`harmonic_seg.nn.cluster_embeddings`).
DEFAULT_RECOVERY = "split"
#: ``recovery_`` of models saved or pickled before it was recorded: mean shift of all foreground pixels.
LEGACY_RECOVERY = "mean_shift"


class ClusteringMixin:
    """Clustering and its tuning for an estimator with ``module_``, ``guides_``, ``_embed``, ``_prepare``,
    ``_threads`` and ``_check_predict_input`` (:class:`~harmonic_seg.HarmonicSegmenter`)."""

    def set_params(self, **params):
        """Set parameters; on a fitted segmenter ``fg_threshold=...`` also sets ``fg_threshold_``.

        ``fg_threshold_`` is the threshold ``predict`` uses (tuning may have
        chosen it), so the new value changes predictions without refitting; so
        does ``set_params(**other.get_params())``, which thus replaces a tuned
        threshold by the configured one. The value is validated before
        anything is set.
        """
        sync = "fg_threshold" in params and hasattr(self, "fg_threshold_")
        if sync:  # the error fit would give
            validate_parameter_constraints(
                {"fg_threshold": self._parameter_constraints["fg_threshold"]},
                {"fg_threshold": params["fg_threshold"]}, caller_name=type(self).__name__,
            )
        super().set_params(**params)
        if sync:
            self.fg_threshold_ = float(self.fg_threshold)
        return self

    def _default_bandwidth(self):
        if self.bandwidth is not None:
            return float(self.bandwidth)
        return float(_DELTA_V if self.loss == "discriminative" else self.guides_.margin)

    def _reset_postprocessing(self):
        """The fitted post-processing before any tuning: the configured parameters, ``recovery_="split"``."""
        self.bandwidth_ = self._default_bandwidth()
        self.min_size_ = int(self.min_size)
        self.metric_ = self.metric
        self.core_fraction_ = self.core_fraction
        self.fg_threshold_ = float(self.fg_threshold)
        self.recovery_ = DEFAULT_RECOVERY
        self.min_share_ = MIN_SHARE
        self.tuning_results_ = []

    def _tune(self, chw, labels, scoring):
        """Grid search of the clustering parameters, then of the foreground threshold, on validation images
        (StarDist-style); the fitted attributes change only once both searches have finished."""
        preds = [self._embed(im) for im in chw]
        recovery = DEFAULT_RECOVERY

        def modes_of(pred, bandwidth, metric, core_fraction):  # the mode search, once per setting
            emb, prob = pred
            return self._modes(emb, prob > self.fg_threshold, prob, bandwidth, metric, core_fraction, recovery)

        def floor(pred, min_size):  # connected components of the predicted foreground
            emb, prob = pred
            return self._cluster(emb, prob > self.fg_threshold, prob, self._default_bandwidth(), min_size,
                                 recovery="components")[0]

        cluster = _tuning.size_filtered(
            modes_of, lambda modes, size, **kw: self._finish(modes, size, scores=False, **kw)[0])
        n_dims = preds[0][0].shape[0]  # embedding channels (N)
        best, results = _tuning.grid_search_clustering(
            cluster, preds, labels, self._default_bandwidth(), self.min_size, n_dims, scoring,
            typical_area=_tuning.median_instance_area(labels),
            core_fractions=_tuning.core_fraction_grid(self.core_fraction), floor=floor, recovery=recovery,
            min_shares=_tuning.MIN_SHARES,
        )
        keys = ("recovery", "metric", "bandwidth", "core_fraction", "min_size", "min_share")
        clustering = {k: best.get(k) for k in keys}
        if best["recovery"] == "components":  # the floor uses no window, distance or share: keep the defaults
            clustering.update(metric=self.metric, bandwidth=self._default_bandwidth(), core_fraction=self.core_fraction,
                              min_share=MIN_SHARE)

        def segment(pred, threshold):  # predict's clustering with the best parameters, at another threshold
            emb, prob = pred
            return self._cluster(emb, prob > threshold, prob, clustering["bandwidth"], clustering["min_size"],
                                 clustering["metric"], clustering["core_fraction"], recovery=clustering["recovery"],
                                 min_share=clustering["min_share"])[0]

        best_t, results_t = _tuning.grid_search_threshold(
            segment, preds, labels, _tuning.fg_threshold_grid(self.fg_threshold), scoring
        )
        self.recovery_, self.metric_ = clustering["recovery"], clustering["metric"]
        self.bandwidth_, self.min_size_ = clustering["bandwidth"], clustering["min_size"]
        self.core_fraction_, self.min_share_ = clustering["core_fraction"], clustering["min_share"]
        self.fg_threshold_ = best_t["fg_threshold"]
        self.tuning_results_ = [{**r, "fg_threshold": float(self.fg_threshold)} for r in results] + [
            {**clustering, **r} for r in results_t
        ]
        plain = next((r for r in results if r["recovery"] == "components" and r["min_size"] == 0), None)
        logger.info(
            "post-processing tuned: recovery=%s metric=%s bandwidth=%.3f min_size=%d min_share=%s core_fraction=%s "
            "fg_threshold=%.2f (validation %s %.4f; connected components of the foreground: %s)", self.recovery_,
            self.metric_, self.bandwidth_, self.min_size_, self.min_share_, self.core_fraction_, self.fg_threshold_,
            scoring,
            best_t["score"], "n/a" if plain is None else f"{plain['score']:.4f}",
        )

    def optimize_postprocessing(self, X, y, *, scoring="sbd"):
        """Choose the clustering parameters and the foreground threshold on validation images, without retraining.

        Like StarDist's ``optimize_thresholds``: the images are embedded once,
        then every distance (Euclidean, L1), bandwidth (0.5 to 3 times the
        default for Euclidean windows; the L1 ones ``sqrt(2 N / pi)`` times
        wider, so that they hold as many neighbours), minimum size (around
        ``min_size``, and 2 to 50 % of the median instance area of ``y``, so
        that the fragments of large objects can be dropped) and core fraction
        (None, 0.8, 0.6 and ``core_fraction``) is clustered as ``predict``
        does with ``recovery="split"`` (connected components of the
        foreground, split where the embedding shows distinct modes) and scored
        against ``y``; so are the connected components of the foreground alone
        (``recovery="components"``, the floor) at every minimum size.

        A few validation images are a noisy judge, so the best single score
        does not decide: every setting is scored by the smaller of its own
        score and the mean of its own and its grid neighbours' (next
        bandwidth, core fraction or minimum size), and among the settings
        within noise of the best such score (0.005, or the standard error of
        the per-image differences if larger) the simplest is kept: the floor
        first, then the minimum size nearest ``min_size``, no core fraction,
        the widest window, the Euclidean distance. The choice replaces
        ``recovery_``, ``metric_``, ``bandwidth_``, ``min_size_`` and
        ``core_fraction_`` (the floor keeps the configured distance, window
        and core fraction: it uses none). The clustering is searched at
        ``fg_threshold``; with the chosen one, the foreground thresholds 0.3
        to 0.7 are then tried, and the best replaces ``fg_threshold_`` (the
        configured one among equal scores). ``tuning_results_`` holds every
        row with its ``score`` and ``pooled_score``; the row with
        ``recovery="components"`` and ``min_size=0`` is the floor's
        validation score. ``save`` keeps them all.
        ``fit(tune_postprocessing=True)`` runs it, by SBD, on held-out images.

        Parameters
        ----------
        X : list of ndarray of shape (H, W) or (H, W, C)
            Validation images: images the network was not trained on.
        y : list of ndarray of shape (H, W)
            Their label maps.
        scoring : {"sbd", "accuracy"}, default="sbd"
            Mean symmetric best Dice, or TP / (TP + FP + FN) averaged over IoU
            thresholds 0.5:0.05:0.95 (favours exact outlines, as COCO AP does).

        Returns
        -------
        self : HarmonicSegmenter
        """
        if scoring not in _tuning.SCORINGS:
            raise ValueError(f"scoring must be one of {_tuning.SCORINGS}; got {scoring!r}.")
        check_is_fitted(self, "module_")
        images, labels = check_images_and_labels(X, y)
        images, _ = self._check_predict_input(images, None)
        with self._threads():
            self._tune(self._prepare(images), labels, scoring)
        return self

    def _recovery(self):
        return getattr(self, "recovery_", LEGACY_RECOVERY)  # a model from before recovery_ was recorded

    def _modes(self, embedding, foreground, fg_prob, bandwidth, metric=None, core_fraction=_FITTED, recovery=None):
        from .nn.cluster import _modes

        return _modes(
            embedding,
            foreground,
            bandwidth,
            recovery=self._recovery() if recovery is None else recovery,
            metric=self.metric_ if metric is None else metric,
            fg_prob=fg_prob,
            core_threshold=self.core_threshold,
            core_fraction=self.core_fraction_ if core_fraction is _FITTED else core_fraction,
            device=next(self.module_.parameters()).device,
            random_state=0,
        )

    def _finish(self, modes, min_size, min_share=None, scores=True):
        from .nn.cluster import _instances

        return _instances(modes, min_size=min_size, min_share=self._min_share() if min_share is None else min_share,
                          split_components=self.split_components, merge_small=self.merge_small, scores=scores)

    def _min_share(self):
        return getattr(self, "min_share_", MIN_SHARE)

    def _cluster(self, embedding, foreground, fg_prob, bandwidth, min_size, metric=None, core_fraction=_FITTED, *,
                 recovery=None, min_share=None):
        """``predict``'s clustering (``recovery_`` and ``min_share_`` unless given)."""
        from .nn.cluster import cluster_embeddings

        return cluster_embeddings(
            embedding,
            foreground,
            bandwidth,
            recovery=self._recovery() if recovery is None else recovery,
            metric=self.metric_ if metric is None else metric,
            min_size=min_size,
            min_share=self._min_share() if min_share is None else min_share,
            split_components=self.split_components,
            merge_small=self.merge_small,
            fg_prob=fg_prob,
            core_threshold=self.core_threshold,
            core_fraction=self.core_fraction_ if core_fraction is _FITTED else core_fraction,
            device=next(self.module_.parameters()).device,
            random_state=0,
        )
