"""The training set as the training loop takes it, validated once at the public entry point (numpy only).

:meth:`HarmonicSegmenter.fit <harmonic_seg.HarmonicSegmenter.fit>` and
:meth:`Trainer.fit <harmonic_seg.nn.Trainer.fit>` check what a user passes
them; what they hand on is a :class:`TrainingSet`, whose arrays are in the
form the crop sampler reads and are never checked again: not by the guide
fitting, not per crop, not per training step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._labels import relabel_sequential
from ._validation import ValidatedLabelMaps

__all__ = ["TrainingSet", "training_set"]


@dataclass(frozen=True)
class TrainingSet:
    """Validated training images, label maps and ignore masks.

    Attributes
    ----------
    images : list of ndarray of shape (C, H, W), float32, C-contiguous
        Normalised images (as the network sees them).
    labels : ValidatedLabelMaps of ndarray of shape (H, W), int32
        Label maps with ids renumbered ``1..K`` (0 = background), a list
        that :func:`~harmonic_seg._validation.check_label_maps` passes through.
    ignore : list of ndarray of shape (H, W), bool
        Pixels left out of the losses (a read-only all-False view where none
        were given).
    """

    images: list
    labels: list
    ignore: list

    def __len__(self):
        return len(self.images)

    def subset(self, indices):
        """The images, label maps and masks at ``indices``."""
        pick = lambda seq: [seq[i] for i in indices]  # noqa: E731
        return TrainingSet(pick(self.images), ValidatedLabelMaps(pick(self.labels)), pick(self.ignore))


def training_set(images, labels, ignore=None):
    """A :class:`TrainingSet` of arrays the caller has validated.

    Parameters
    ----------
    images : list of ndarray of shape (C, H, W)
        Finite real images; cast to float32 (C-contiguous) only where they
        are not already.
    labels : list of ndarray of shape (H, W)
        Validated label maps (non-negative integer ids, the shapes of the
        images); renumbered ``1..K`` as int32.
    ignore : list of (ndarray of shape (H, W) or None) or None, default=None
        Masks of the shapes of the label maps (any dtype; nonzero is ignored).

    Returns
    -------
    TrainingSet
    """
    images = [np.ascontiguousarray(im, dtype=np.float32) for im in images]
    labels = ValidatedLabelMaps(relabel_sequential(lab)[0].astype(np.int32, copy=False) for lab in labels)
    if ignore is None:
        ignore = [None] * len(labels)
    masks = [
        np.broadcast_to(np.False_, lab.shape) if ig is None else np.asarray(ig).astype(bool, copy=False)
        for ig, lab in zip(ignore, labels)
    ]
    return TrainingSet(images, labels, masks)
