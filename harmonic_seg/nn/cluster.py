"""Deprecated: ``cluster_embeddings`` moved to :mod:`harmonic_seg.clustering`; this module forwards it (and
``RECOVERIES``) with a FutureWarning."""

_NEW = {"cluster_embeddings": "harmonic_seg.clustering", "RECOVERIES": "harmonic_seg.clustering"}


def __getattr__(name):
    if name in _NEW:
        from ..clustering._deprecated import moved

        return moved(__name__, name, _NEW[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
