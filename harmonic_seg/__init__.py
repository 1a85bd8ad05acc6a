"""harmonic_seg: instance segmentation of biological images with harmonic embeddings.

Kulikov & Lempitsky, "Instance Segmentation of Biological Images Using Harmonic
Embeddings", CVPR 2020.

The numpy-only parts (guide functions, embeddings, metrics, readers) import
without torch. Names that need torch (``HarmonicSegmenter``) are imported
lazily on first access.
"""

import logging

from ._version import __version__

logging.getLogger(__name__).addHandler(logging.NullHandler())

_LAZY = {
    "GuideFunctions": ".guides",
    "GuideFunctionFitter": ".guides",
    "fit_guides": ".guides",
    "separation_score": ".guides",
    "embedding_map": ".guides",
    "instance_embeddings": ".guides",
    "HarmonicSegmenter": ".segmenter",
    "Augmentation": ".options",
    "Tiling": ".options",
    "Loss": ".options",
    "Network": ".options",
    "PercentileNormalizer": ".transformers",
    "ChannelSelector": ".transformers",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module = importlib.import_module(_LAZY[name], __name__)
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
