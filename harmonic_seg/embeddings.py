"""Harmonic embeddings of label maps (paper eq. 1-2). Numpy only.

The embedding of an instance S is the mean of the guide functions over its
pixels. The *target embedding map* assigns every pixel the embedding of the
instance it belongs to (0 on background); it is what the network regresses.
"""

from __future__ import annotations

import numpy as np

from ._validation import check_label_map
from .guides import GuideFunctions, guide_maps

__all__ = ["instance_embeddings", "embedding_map"]


def _check_guides(guides):
    if not isinstance(guides, GuideFunctions):
        raise TypeError(
            f"guides must be a GuideFunctions instance (e.g. GuideFunctionFitter().fit(y).guides_); "
            f"got {type(guides).__name__}."
        )


def _sums(labels, guides, origin):
    """Per-label pixel counts and guide sums, indexed by label value."""
    maps = guide_maps(guides, labels.shape, origin=origin, dtype=np.float64)
    flat = labels.ravel()
    n_bins = int(flat.max()) + 1
    counts = np.bincount(flat, minlength=n_bins)
    sums = np.stack(
        [np.bincount(flat, weights=m.ravel(), minlength=n_bins) for m in maps], axis=1
    )
    return counts, sums, maps


def instance_embeddings(labels, guides, origin=(0, 0)):
    """Guided embedding of every instance of a label map.

    Parameters
    ----------
    labels : array-like of shape (H, W)
        Integer label map, 0 = background.
    guides : GuideFunctions
    origin : tuple of float, default=(0, 0)
        Global coordinate of ``labels[0, 0]`` (when ``labels`` is a window of a
        larger image).

    Returns
    -------
    ids : ndarray of shape (K,)
        Instance ids present (sorted, background excluded).
    embeddings : ndarray of shape (K, N), float64
        Mean of each guide function over each instance's pixels.
    """
    _check_guides(guides)
    labels = check_label_map(labels, "labels")
    counts, sums, _ = _sums(labels, guides, origin)
    ids = np.flatnonzero(counts)
    ids = ids[ids != 0]
    return ids, sums[ids] / counts[ids, None]


def embedding_map(labels, guides, origin=(0, 0), *, dtype=np.float32, return_embeddings=False):
    """Per-pixel target embedding map of a label map.

    Parameters
    ----------
    labels : array-like of shape (H, W)
        Integer label map, 0 = background.
    guides : GuideFunctions
    origin : tuple of float, default=(0, 0)
        Global coordinate of ``labels[0, 0]``.
    dtype : dtype, default=np.float32
    return_embeddings : bool, default=False
        Also return the instance ids and embeddings.

    Returns
    -------
    target : ndarray of shape (N, H, W)
        ``target[:, y, x]`` is the embedding of the instance containing
        pixel ``(y, x)``; 0 on background.
    ids, embeddings : ndarray of shape (K,) and (K, N)
        Only when ``return_embeddings`` is True.
    """
    _check_guides(guides)
    labels = check_label_map(labels, "labels")
    counts, sums, _ = _sums(labels, guides, origin)
    table = np.zeros_like(sums)
    present = counts > 0
    table[present] = sums[present] / counts[present, None]
    table[0] = 0.0
    target = np.ascontiguousarray(np.moveaxis(table.astype(dtype)[labels], -1, 0))
    if not return_embeddings:
        return target
    ids = np.flatnonzero(present)
    ids = ids[ids != 0]
    return target, ids, table[ids]
