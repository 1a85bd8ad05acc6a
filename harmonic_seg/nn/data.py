"""Training and validation samples: augmented crops with their target embeddings.

For every sample an image is drawn, scaled and flipped *as a whole* (this
defines a new image frame), the instances' embeddings are computed on the full
augmented label map with :func:`harmonic_seg.guides.embedding_table` (an
instance's embedding is the mean of the guides over the whole instance, not
over its part inside the crop), and then a random crop is taken, whose target
map is looked up from those embeddings (only the crop's pixels are filled). The crop's
top-left corner in the augmented frame is returned as ``origin`` so the network
evaluates its guide maps in the same frame as the targets.
"""

from __future__ import annotations

import numpy as np

from .._labels import relabel_sequential
from .._validation import check_label_map
from ..guides.embeddings import _embedding_table, _lookup, check_table_size, lookup_embeddings
from .augment import random_crop_window, random_rotation, random_scale_flip

__all__ = ["CropSampler", "crop_sample"]


def crop_sample(image, labels, ignore, target, corner, crop_size):
    """Crop (and pad at the bottom/right) all arrays of a sample.

    Parameters
    ----------
    image : ndarray of shape (C, H, W)
    labels : ndarray of shape (H, W)
    ignore : ndarray of shape (H, W), bool
    target : ndarray of shape (N, H, W) or (K, N)
        The target embedding map, or the table of the instances' embeddings
        (:func:`~harmonic_seg.guides.embedding_table`, row ``k`` for label
        ``k``), from which the crop's target is looked up.
    corner : tuple of int
        Top-left ``(y0, x0)`` of the crop.
    crop_size : tuple of int
        ``(h, w)``.

    Returns
    -------
    image (C, h, w) float32, target (N, h, w) float32, labels (h, w) int64,
    ignore (h, w) bool, origin (2,) float64
        Padded pixels are 0 in image and target, background (label 0), and
        ignored. The labels are the instance ids of the crop (the foreground is
        ``labels > 0``); the discriminative loss needs them.
    """
    return _crop_sample(image, labels, ignore, target, corner, crop_size, lookup_embeddings)


def _table_lookup(table, labels):
    """The crop's target from the table of the map it comes from (no checks: the sampler's own crops)."""
    return _lookup(table, labels, np.float32)


def _crop_sample(image, labels, ignore, target, corner, crop_size, lookup=_table_lookup):
    """:func:`crop_sample`, the target looked up by ``lookup(table, crop_labels)``."""
    y0, x0 = corner
    h, w = crop_size
    src = (slice(y0, y0 + h), slice(x0, x0 + w))
    img = image[:, src[0], src[1]]
    ch, cw = img.shape[-2:]
    out_img = np.zeros((image.shape[0], h, w), np.float32)
    out_lab = np.zeros((h, w), np.int64)
    out_ign = np.ones((h, w), bool)
    out_img[:, :ch, :cw] = img
    out_lab[:ch, :cw] = labels[src]
    out_ign[:ch, :cw] = ignore[src]
    if target.ndim == 2:  # a table: padded pixels are label 0, whose row is 0
        out_tgt = lookup(target, out_lab)
    else:
        out_tgt = np.zeros((target.shape[0], h, w), np.float32)
        out_tgt[:, :ch, :cw] = target[:, src[0], src[1]]
    return out_img, out_tgt, out_lab, out_ign, np.array([y0, x0], dtype=np.float64)


class CropSampler:
    """Draws augmented training crops with target embeddings.

    Parameters
    ----------
    images : list of ndarray of shape (C, H, W), float32
        Normalised images.
    labels : list of ndarray of shape (H, W), int
        Label maps (0 = background). Their ids are renumbered ``1..K`` (in
        increasing order) and kept in :attr:`labels`, so that the embedding
        tables of the samples, and the discriminative loss, follow the number
        of instances, not the largest id.
    guides : GuideFunctions
        Guides defining the target embeddings.
    ignore : list of ndarray of shape (H, W), bool, or None
        Pixels excluded from the loss.
    crop_size : int or tuple of int, default=256
    scale_range : tuple of float or None, default=(0.75, 1.33)
    flips : bool, default=True
    rotate : bool, default=False
        Also rotate every sample by a random angle (after scaling and flips;
        see :func:`~harmonic_seg.nn.augment.random_rotation`).
    """

    def __init__(
        self, images, labels, guides, ignore=None, crop_size=256, scale_range=(0.75, 1.33), flips=True, rotate=False
    ):
        labels = [relabel_sequential(check_label_map(lab, f"labels[{i}]"))[0] for i, lab in enumerate(labels)]
        self._setup(images, labels, guides, ignore if ignore is not None else [None] * len(images), crop_size,
                    scale_range, flips, rotate)

    @classmethod
    def _from_training_set(cls, data, guides, crop_size=256, scale_range=(0.75, 1.33), flips=True, rotate=False):
        """A sampler of a :class:`~harmonic_seg._training_set.TrainingSet` (validated: not checked again)."""
        self = cls.__new__(cls)
        self._setup(data.images, data.labels, guides, data.ignore, crop_size, scale_range, flips, rotate)
        return self

    def _setup(self, images, labels, guides, ignore, crop_size, scale_range, flips, rotate):
        """Store validated data (label ids ``1..K``); refuse embedding tables too large, once for all crops."""
        check_table_size(max((int(lab.max()) for lab in labels), default=0), guides.n_guides)
        self.images = images
        self.labels = labels
        self.guides = guides
        self.ignore = ignore
        self.crop_size = (crop_size, crop_size) if np.isscalar(crop_size) else tuple(crop_size)
        self.scale_range = scale_range
        self.flips = flips
        self.rotate = rotate
        areas = np.array([lab.size for lab in labels], dtype=np.float64)
        #: Images are drawn with probability proportional to their area.
        self.weights = areas / areas.sum()

    def __len__(self):
        return len(self.images)

    def _ignore(self, i):
        ign = self.ignore[i]
        return np.zeros(self.labels[i].shape, bool) if ign is None else np.asarray(ign, bool)

    def sample(self, rng):
        """One augmented crop.

        Parameters
        ----------
        rng : numpy.random.Generator

        Returns
        -------
        image (C, h, w), target (N, h, w), labels (h, w), ignore (h, w), origin (2,)
        """
        i = int(rng.choice(len(self.images), p=self.weights))
        img, lab, ign = random_scale_flip(
            self.images[i], self.labels[i], self._ignore(i), rng, self.scale_range, self.flips
        )
        if self.rotate:
            img, lab, ign = random_rotation(img, lab, ign, rng)
        table = _embedding_table(lab, self.guides)
        corner = random_crop_window(lab.shape, self.crop_size, rng)
        return _crop_sample(img, lab, ign, table, corner, self.crop_size)

    def batch(self, rng, batch_size):
        """Stacked samples: arrays with a leading batch axis (see :meth:`sample`)."""
        parts = [self.sample(rng) for _ in range(batch_size)]
        return tuple(np.stack(p) for p in zip(*parts))

    def center_crops(self):
        """Deterministic, un-augmented centre crops of every image (validation).

        Returns
        -------
        list of tuples ``(image, target, labels, ignore, origin)``, one per image:
        the centred ``crop_size`` window (the whole image, padded and ignored
        beyond its border, when smaller), targets computed on the full image.
        """
        out = []
        for i in range(len(self.images)):
            lab = np.asarray(self.labels[i])
            table = _embedding_table(lab, self.guides)
            corner = random_crop_window(lab.shape, self.crop_size, None)
            out.append(_crop_sample(self.images[i], lab, self._ignore(i), table, corner, self.crop_size))
        return out
