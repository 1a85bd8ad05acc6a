"""Clustering: instances from predicted embeddings (the method's last stage).

* :class:`EmbeddingClusterer` (scikit-learn estimator) and
  :func:`segment_embeddings` (the same as a function): one embedding and
  foreground probability -> label map and instance scores, and the tuning of
  the clustering on validation predictions;
* :func:`cluster_embeddings`: the mean shift of one embedding map and its
  post-processing, with every option;
* :class:`MeanShift` and :func:`mean_shift`: fast mean shift of points
  (torch), a drop-in replacement of scikit-learn's;
* :mod:`harmonic_seg.clustering.tuning`: the search grids and the selection
  rule of the tuning (plain numpy).

The post-processing rules (minimum size, splits, scores) are in
:mod:`harmonic_seg.postprocess`. This package imports without torch; the
names that need it (``MeanShift``, ``mean_shift``, ``cluster_embeddings``)
import it when first used.
"""

_LAZY = {
    "EmbeddingClusterer": "._estimator",
    "segment_embeddings": "._estimator",
    "RECOVERIES": "._options",
    "cluster_embeddings": "._embedding",
    "MeanShift": ".meanshift",
    "mean_shift": ".meanshift",
}

__all__ = list(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(__all__) | {"tuning", "meanshift"})
