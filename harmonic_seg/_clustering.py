"""The clustering stage of :class:`~harmonic_seg.HarmonicSegmenter`: its nested
:class:`~harmonic_seg.clustering.EmbeddingClusterer` (``clustering``, fitted as ``clustering_``).

The clustering and its tuning are the clusterer's; this mixin only connects the segmenter to it: the
fitted attributes that read and write ``clustering_`` (``bandwidth_``, ``fg_threshold_``, ...),
``set_params`` reaching a fitted clusterer, and :meth:`optimize_postprocessing`, which embeds images and
tunes the clusterer.
"""

from __future__ import annotations

import logging

import numpy as np
from sklearn.base import clone
from sklearn.utils._param_validation import validate_parameter_constraints
from sklearn.utils.validation import check_is_fitted

from ._validation import check_images_and_labels, check_masks
from .clustering._estimator import TUNED, EmbeddingClusterer, check_tune_args
from .options import loss_name

__all__ = ["ClusteringMixin"]

logger = logging.getLogger(__name__)

#: Pull margin of the discriminative baseline (discriminative_loss's delta_v): its default bandwidth.
_DELTA_V = 0.5
#: Parameters the tuning does not choose: a fitted clusterer takes their new values from ``set_params``.
UNTUNED = ("core_threshold", "split_components", "merge_small")
#: Fitted attributes of the segmenter that are those of ``clustering_``.
FITTED = tuple(name + "_" for name in TUNED) + ("tuning_results_",)


def _fitted_attribute(name):
    def get(self):
        try:
            return getattr(self.__dict__["clustering_"], name)
        except KeyError:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}") from None

    def set_(self, value):
        if "clustering_" not in self.__dict__:  # set by hand: the configured clusterer holds it from now on
            self._reset_postprocessing()
        setattr(self.__dict__["clustering_"], name, value)

    return property(get, set_, doc=f"``clustering_.{name}`` (see :class:`~harmonic_seg.clustering."
                                   "EmbeddingClusterer`).")


class ClusteringMixin:
    """Connects :class:`~harmonic_seg.HarmonicSegmenter` (``clustering``, ``loss``, ``module_``, ``_embed``,
    ``_prepare``, ``_threads``, ``_check_predict_input``) to its clusterer."""

    def set_params(self, **params):
        """Set parameters; on a fitted segmenter some clustering ones also reach ``clustering_``.

        The clustering parameters the tuning does not choose
        (``core_threshold``, ``split_components``, ``merge_small``) also reach
        ``clustering_``, and ``clustering__fg_threshold`` (or a new
        ``clustering``) also sets ``fg_threshold_``, the threshold ``predict``
        uses (validated first), so that they change predictions without
        refitting; ``set_params(**other.get_params())`` thus replaces a tuned
        threshold by the configured one.
        """
        fitted = "clustering_" in self.__dict__
        touched = fitted and any(k == "clustering" or k.startswith("clustering__") for k in params)
        self._check_fitted_set_params(params)
        super().set_params(**params)
        if touched:
            config = self._configured_clusterer().get_params()
            self.clustering_.set_params(**{k: config[k] for k in UNTUNED})
            if any(k in ("clustering", "clustering__fg_threshold") for k in params):
                self.clustering_.fg_threshold_ = float(config["fg_threshold"])
        return self

    def _check_fitted_set_params(self, params):
        """On a fitted segmenter, the error fit would give for a new foreground threshold, before anything is set."""
        if "clustering_" in self.__dict__ and "clustering__fg_threshold" in params:
            validate_parameter_constraints(
                {"clustering__fg_threshold": EmbeddingClusterer._parameter_constraints["fg_threshold"]},
                {"clustering__fg_threshold": params["clustering__fg_threshold"]}, caller_name=type(self).__name__,
            )

    def _configured_clusterer(self):
        """``clustering``, or the default clusterer it stands for when None."""
        return EmbeddingClusterer() if self.clustering is None else self.clustering

    def _default_bandwidth(self):
        return float(_DELTA_V if loss_name(self) == "discriminative" else self.guides_.margin)

    def _clusterer(self):
        """A new, unfitted clusterer of the current configuration, its bandwidth resolved."""
        clusterer = clone(self._configured_clusterer())
        if clusterer.bandwidth is None:
            clusterer.set_params(bandwidth=self._default_bandwidth())
        return clusterer

    def _cluster_device(self):
        return next(self.module_.parameters()).device

    def _reset_postprocessing(self):
        """The fitted clusterer before any tuning: the configured parameters (``recovery_="split"``)."""
        self.clustering_ = self._clusterer().fit()

    def _tune(self, chw, labels, scoring, **grids):
        """Tune a new clusterer of the current configuration on prepared images; it replaces ``clustering_``
        only once its searches have finished."""
        preds = [self._embed(im) for im in chw]
        self.clustering_ = self._clusterer().tune(preds, labels, scoring=scoring, device=self._cluster_device(),
                                                  **grids)

    def optimize_postprocessing(self, X, y, *, scoring="sbd", **grids):
        """Choose the clustering parameters and the foreground threshold on validation images, without retraining.

        Like StarDist's ``optimize_thresholds``: the images are embedded once,
        then a clusterer of the configured parameters (``clustering``) is tuned on the embeddings and ``y``
        (:meth:`harmonic_seg.clustering.EmbeddingClusterer.tune`: every
        distance, bandwidth around the default, core fraction, share and
        minimum size with ``recovery="split"``, and the connected components
        of the foreground; the simplest setting within noise of the best is
        kept, unless it is lower than the foreground's connected components
        by SBD or COCO AP; then the foreground threshold). The tuned clusterer replaces
        ``clustering_``, and with it ``recovery_``, ``metric_``,
        ``bandwidth_``, ``min_size_``, ``min_share_``, ``core_fraction_``,
        ``fg_threshold_`` and ``tuning_results_`` (every row tried, with its
        ``score``; ``save`` keeps them). ``fit(tune_postprocessing=True)``
        runs it, by SBD, on held-out images.

        Parameters
        ----------
        X : list of ndarray of shape (H, W) or (H, W, C)
            Validation images: images the network was not trained on.
        y : list of ndarray of shape (H, W)
            Their label maps.
        scoring : {"sbd", "accuracy"}, default="sbd"
            Mean symmetric best Dice, or TP / (TP + FP + FN) averaged over IoU
            thresholds 0.5:0.05:0.95 (favours exact outlines, as COCO AP does).
        **grids
            Search grids of :meth:`~harmonic_seg.clustering.EmbeddingClusterer.tune`
            (``metrics``, ``bandwidth_factors``, ``core_fractions``,
            ``min_shares``, ``min_size_fractions``, ``fg_thresholds``); the
            defaults are its own.

        Returns
        -------
        self : HarmonicSegmenter
        """
        check_tune_args(scoring, grids)
        check_is_fitted(self, "module_")
        self._validate_params()
        images, labels = check_images_and_labels(X, y)
        images, _ = self._check_predict_input(images, None)
        with self._threads():
            self._tune(self._prepare(images), labels, scoring, **grids)
        return self

    def _cluster(self, embedding, foreground, fg_prob, *fitted):
        """``predict``'s clustering of one embedding by ``clustering_`` (``fitted``, the fitted bandwidth and
        minimum size some callers pass, are its own)."""
        return self.clustering_.segment(embedding, fg_prob, foreground=foreground, device=self._cluster_device())

    def predict_from_embeddings(self, embedded, foreground=None, *, return_scores=False):
        """Instance label maps of predicted embeddings: ``predict`` after ``predict_embeddings``.

        ``predict(X)`` is ``predict_from_embeddings(predict_embeddings(X))``;
        computing the embeddings once lets several foregrounds or
        thresholds be compared without running the network again.

        Parameters
        ----------
        embedded : list of tuple (embedding, fg_prob)
            The output of :meth:`predict_embeddings`: an (N, H, W) embedding
            and an (H, W) foreground probability per image.
        foreground : list of ndarray of shape (H, W) or None, default=None
            Known foreground masks, imposed instead of ``fg_prob >
            fg_threshold_``.
        return_scores : bool, default=False
            Also return one confidence per instance.

        Returns
        -------
        labels : list of ndarray of shape (H, W), int32
        scores : list of ndarray of shape (K,)
            Only when ``return_scores`` is True.
        """
        check_is_fitted(self, "module_")
        self._validate_params()
        if isinstance(embedded, np.ndarray) or not isinstance(embedded, (list, tuple)):
            raise TypeError(f"embedded must be a list of (embedding, fg_prob) pairs, as predict_embeddings returns; "
                            f"got {type(embedded).__name__}.")
        if not all(isinstance(p, (tuple, list)) and len(p) == 2 for p in embedded):
            raise TypeError("embedded must be a list of (embedding, fg_prob) pairs, as predict_embeddings returns.")
        foreground = check_masks(foreground, [np.shape(prob) for _, prob in embedded], "foreground", "embedded")
        labels, scores = [], []
        with self._threads():
            for i, (emb, prob) in enumerate(embedded):
                fg = prob > self.fg_threshold_ if foreground is None else foreground[i].astype(bool)
                lab, sc = self._cluster(emb, fg, prob)
                labels.append(lab)
                scores.append(sc)
        return (labels, scores) if return_scores else labels


for _name in FITTED:
    setattr(ClusteringMixin, _name, _fitted_attribute(_name))
del _name


def adopt_flat_fitted(est, legacy):
    """Build ``clustering_`` of a segmenter pickled or saved before the clustering was an estimator.

    ``legacy`` holds the fitted values found (``bandwidth_``, ``min_size_``, ... as recorded then);
    those not recorded take what such a model did: ``core_fraction``, ``fg_threshold`` (the configured
    clusterer's parameters), ``recovery_="mean_shift"`` with ``min_share_=0.1``, no tuning results.
    """
    clusterer = est._clusterer()
    clusterer.fit()
    config = est._configured_clusterer()
    values = {"core_fraction_": config.core_fraction, "fg_threshold_": config.fg_threshold, "tuning_results_": []}
    if "recovery_" not in legacy:  # recorded since; before, the mean shift of all foreground pixels
        values.update(recovery_="mean_shift", min_share_=0.1)
    values.update(legacy)
    for name, value in values.items():
        setattr(clusterer, name, value)
    est.clustering_ = clusterer
