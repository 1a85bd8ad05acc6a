"""Torch part of harmonic_seg: SinConv U-Net, loss, training loop and (tiled) inference.

Everything that imports torch lives in this subpackage.
"""

from ._train_utils import resolve_amp
from .cluster import cluster_embeddings
from .inference import predict_embeddings
from .layers import GuideMapper, SinConv
from .losses import discriminative_loss, harmonic_loss, touching_pixels
from .meanshift import MeanShift, mean_shift
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
    "resolve_amp",
    "predict_embeddings",
    "mean_shift",
    "MeanShift",
    "cluster_embeddings",
]
