"""Torch part of harmonic_seg: SinConv U-Net, losses, training loop and (tiled) inference.

The mean shift and the clustering of embeddings are in :mod:`harmonic_seg.clustering`;
``harmonic_seg.nn.MeanShift``, ``mean_shift`` and ``cluster_embeddings`` still work but are deprecated.
"""

from ._train_utils import resolve_amp
from .inference import predict_embeddings
from .layers import GuideMapper, SinConv
from .losses import discriminative_loss, harmonic_loss, touching_pixels
from .callbacks import Checkpoint, EarlyStopping, EpochLogger, ProgressBar
from .trainer import Callback, TrainConfig, Trainer
from .unet import HarmonicUNet, count_parameters

__all__ = [
    "GuideMapper",
    "SinConv",
    "HarmonicUNet",
    "count_parameters",
    "harmonic_loss",
    "discriminative_loss",
    "touching_pixels",
    "TrainConfig",
    "Trainer",
    "Callback",
    "Checkpoint",
    "EarlyStopping",
    "EpochLogger",
    "ProgressBar",
    "resolve_amp",
    "predict_embeddings",
]

#: Names that moved to harmonic_seg.clustering (deprecated here).
_MOVED = ("MeanShift", "mean_shift", "cluster_embeddings")


def __getattr__(name):
    if name in _MOVED:
        from ..clustering._deprecated import moved

        return moved(__name__, name, "harmonic_seg.clustering")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
