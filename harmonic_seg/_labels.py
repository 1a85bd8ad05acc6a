"""Consecutive renumbering of label maps, so that memory follows the number of instances.

Arrays indexed by label value (per-instance sums, lookup tables) have ``max id + 1``
rows; a map with one id of ``2**31 - 1`` would need gigabytes for three instances.
:func:`relabel_sequential` renumbers the ids ``1..K`` in increasing order (0 stays
background) with work and memory proportional to the number of pixels.
"""

from __future__ import annotations

import numpy as np

__all__ = ["relabel_sequential"]


def relabel_sequential(labels):
    """Renumber the instance ids of a validated label map ``1..K``, in increasing order.

    Parameters
    ----------
    labels : ndarray of shape (H, W), integer dtype
        Non-negative ids, 0 = background (validated by the caller).

    Returns
    -------
    relabelled : ndarray of shape (H, W), int32 (int64 above 2**31 - 1 instances)
        Id ``ids[k]`` becomes ``k + 1``; 0 stays 0. ``labels`` itself (not a copy)
        when its ids are already ``1..K`` and its dtype casts safely to ``np.intp``.
    ids : ndarray of shape (K,), int64
        The original ids present, sorted (background excluded).
    areas : ndarray of shape (K,), int64
        Pixel count of every instance.
    """
    flat = labels.ravel()
    if flat.size == 0:
        return labels, np.zeros(0, np.int64), np.zeros(0, np.int64)
    top = int(flat.max())
    if top <= 4 * flat.size + 1024:
        # Compact ids: O(pixels) through a lookup table of top + 1 entries.
        counts = np.bincount(flat.astype(np.intp, copy=False), minlength=top + 1)
        counts[0] = 0
        ids = np.flatnonzero(counts)
        areas = counts[ids].astype(np.int64)
        if ids.size == top and np.can_cast(labels.dtype, np.intp):
            return labels, ids.astype(np.int64), areas  # already 1..K
        dtype = np.int32 if ids.size <= np.iinfo(np.int32).max else np.int64
        lut = np.zeros(top + 1, dtype=dtype)
        lut[ids] = np.arange(1, ids.size + 1, dtype=dtype)
        return lut[flat].reshape(labels.shape), ids.astype(np.int64), areas
    # Sparse ids (e.g. 2**31 - 1): sort the values instead of indexing by them.
    ids, inv = np.unique(flat, return_inverse=True)
    inv = inv.reshape(labels.shape)
    if ids[0] == 0:
        ids = ids[1:]
    else:
        inv = inv + 1
    dtype = np.int32 if ids.size <= np.iinfo(np.int32).max else np.int64
    relabelled = inv.astype(dtype, copy=False)
    areas = np.bincount(relabelled.ravel(), minlength=ids.size + 1)[1:].astype(np.int64)
    return relabelled, ids.astype(np.int64), areas
