"""Deprecated: the mean shift moved to :mod:`harmonic_seg.clustering` (``MeanShift``, ``mean_shift``,
``cluster_embeddings``); this module forwards them with a FutureWarning."""

_NEW = {"MeanShift": "harmonic_seg.clustering", "mean_shift": "harmonic_seg.clustering",
        "cluster_embeddings": "harmonic_seg.clustering", "KERNELS": "harmonic_seg.clustering.meanshift",
        "METRICS": "harmonic_seg.clustering.meanshift"}


def __getattr__(name):
    if name in _NEW:
        from ..clustering._deprecated import moved

        return moved(__name__, name, _NEW[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
