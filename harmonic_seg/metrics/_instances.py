"""Normalisation of instance annotations for the metrics (numpy / scipy only).

Every metric of this subpackage accepts a ground truth that is either

* a 2-D integer label map of shape (H, W), 0 = background, ids need not be
  consecutive, or
* a stack of binary masks of shape (K, H, W), or a list of K 2-D boolean
  arrays, one mask per instance; masks may overlap (e.g. BBBC010 worms).

A prediction is always a 2-D integer label map. :func:`as_instances` turns
either form into an :class:`Instances` record, and :func:`intersections`
computes the (K_a, K_b) table of pixel intersections between two of them with
a single vectorised pass (a contingency table for two label maps, a sparse
matrix product otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .._labels import relabel_sequential
from .._validation import _describe, check_label_map

__all__ = ["Instances", "as_instances", "as_label_map", "as_pair", "check_pairs", "check_same_shape", "intersections"]


@dataclass(frozen=True, eq=False)
class Instances:
    """Instances of one image, in a form the metrics can consume.

    Attributes
    ----------
    ids : ndarray of shape (K,), int64
        Original instance ids (label map) or 1-based positions in the stack
        (mask stack). Sorted increasingly.
    areas : ndarray of shape (K,), int64
        Pixel count of every instance (always > 0).
    shape : tuple of int
        Image shape (H, W).
    labels : ndarray of shape (H, W) or None
        Consecutive relabelling 0..K of a label map (0 = background), or None
        for a mask stack.
    masks : scipy.sparse.csr_matrix of shape (K, H * W) or None
        Flattened binary masks of a mask stack, or None for a label map.
    """

    ids: np.ndarray
    areas: np.ndarray
    shape: tuple
    labels: np.ndarray | None = None
    masks: sp.csr_matrix | None = None

    @property
    def n(self):
        """Number of (non-empty) instances."""
        return int(self.ids.size)

    def indicator(self):
        """Sparse (K, H * W) int64 indicator matrix of the instances."""
        if self.masks is not None:
            return self.masks
        flat = self.labels.ravel()
        pix = np.flatnonzero(flat)
        data = np.ones(pix.size, dtype=np.int64)
        return sp.csr_matrix((data, (flat[pix] - 1, pix)), shape=(self.n, flat.size))

    def dense_masks(self):
        """Iterate over the instances as (id, bool mask of shape (H, W)) pairs."""
        if self.masks is not None:
            for k, i in enumerate(self.ids):
                yield int(i), self.masks.getrow(k).toarray().reshape(self.shape).astype(bool)
        else:
            for k, i in enumerate(self.ids):
                yield int(i), self.labels == k + 1


def as_label_map(y, name="y_pred"):
    """Validate a prediction label map and return it as :class:`Instances`."""
    lab = check_label_map(y, name)
    inv, ids, areas = relabel_sequential(lab)
    return Instances(ids=ids, areas=areas, shape=lab.shape, labels=inv.astype(np.int64, copy=False))


def _trusted_label_map(y, shape):
    """:class:`Instances` of a label map the library made itself (non-negative integers), not validated again;
    only its shape and dtype are checked (the post-processing tuning scores thousands of them)."""
    y = np.asarray(y)
    if y.shape != tuple(shape) or y.dtype.kind not in "iu":
        raise ValueError(f"a prediction must be an integer label map of shape {tuple(shape)}; got "
                         f"{y.dtype} of shape {y.shape}.")
    inv, ids, areas = relabel_sequential(y)
    return Instances(ids=ids, areas=areas, shape=y.shape, labels=inv.astype(np.int64, copy=False))


def _check_binary(arr, name):
    if arr.dtype == bool:
        return arr
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise TypeError(f"{name} must be a stack of binary masks (K, H, W); got dtype {arr.dtype}.")
    if arr.size and not np.all((arr == 0) | (arr == 1)):
        raise ValueError(
            f"{name} has shape {arr.shape}, so it is read as a stack of binary masks (K, H, W), "
            f"but it holds values other than 0 and 1 (e.g. {arr[(arr != 0) & (arr != 1)].flat[0]!r}). "
            "Pass a label map as a 2-D array, or boolean masks."
        )
    return arr != 0


def as_instances(y, name="y_true", *, shape=None):
    """Normalise a label map or a mask stack into :class:`Instances`.

    Parameters
    ----------
    y : array-like of shape (H, W) or (K, H, W), or list of K arrays of shape (H, W)
        A 2-D integer label map (0 = background) or a stack of binary masks
        (possibly overlapping). Empty masks of a stack are dropped.
    name : str, default="y_true"
        Argument name used in error messages.
    shape : tuple of int or None, default=None
        Expected image shape (H, W); needed to read an empty list of masks.

    Returns
    -------
    instances : Instances
    """
    if isinstance(y, (str, bytes)) or y is None:
        raise TypeError(
            f"{name} must be a 2-D label map (H, W) or a stack of binary masks (K, H, W); "
            f"got {_describe(y)}."
        )
    if isinstance(y, (list, tuple)) and len(y) == 0:
        if shape is None:
            raise ValueError(f"{name} is an empty list of masks and the image shape is unknown.")
        return Instances(ids=np.zeros(0, np.int64), areas=np.zeros(0, np.int64), shape=tuple(shape),
                         masks=sp.csr_matrix((0, int(np.prod(shape))), dtype=np.int64))
    try:
        arr = np.asarray(y)
    except ValueError:
        arr = None
    if arr is None or arr.dtype == object:
        raise ValueError(
            f"{name} must be a 2-D label map or a stack of equally shaped 2-D masks; got a ragged "
            f"{_describe(y)}."
        )
    if arr.ndim == 2:
        inst = as_label_map(arr, name)
    elif arr.ndim == 3:
        if arr.shape[1] == 0 or arr.shape[2] == 0:
            raise ValueError(f"{name} must not be empty; got shape {arr.shape}.")
        masks = _check_binary(arr, name).reshape(arr.shape[0], arr.shape[1] * arr.shape[2])
        areas = masks.sum(axis=1, dtype=np.int64)
        keep = np.flatnonzero(areas)
        csr = sp.csr_matrix(masks[keep], dtype=np.int64)
        inst = Instances(ids=(keep + 1).astype(np.int64), areas=areas[keep], shape=arr.shape[1:], masks=csr)
    else:
        raise ValueError(
            f"{name} must be a 2-D label map (H, W) or a stack of binary masks (K, H, W); "
            f"got an array of shape {arr.shape}."
        )
    if shape is not None and tuple(inst.shape) != tuple(shape):
        raise ValueError(f"{name} has image shape {tuple(inst.shape)} but {tuple(shape)} was expected.")
    return inst


def check_same_shape(a, b, name_a, name_b):
    """Raise a ValueError when two :class:`Instances` cover different image shapes."""
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(
            f"{name_a} and {name_b} must cover the same image shape; got {tuple(a.shape)} "
            f"and {tuple(b.shape)}."
        )


def intersections(a, b):
    """Pixel intersections between the instances of ``a`` and ``b``.

    Parameters
    ----------
    a, b : Instances
        Instances of the same image shape.

    Returns
    -------
    inter : ndarray of shape (a.n, b.n), int64
    """
    if a.labels is not None and b.labels is not None:
        # contingency table of two label maps (row / column 0 = background)
        nb = b.n + 1
        table = np.bincount(
            (a.labels.ravel() * nb + b.labels.ravel()), minlength=(a.n + 1) * nb
        ).reshape(a.n + 1, nb)
        return table[1:, 1:].astype(np.int64, copy=False)
    prod = a.indicator() @ b.indicator().T
    return np.asarray(prod.toarray(), dtype=np.int64)


def _as_sequence(ys, name):
    if isinstance(ys, (str, bytes)) or ys is None:
        raise TypeError(f"{name} must be a list with one annotation per image; got {_describe(ys)}.")
    if isinstance(ys, np.ndarray):
        if ys.ndim == 2:
            raise TypeError(
                f"{name} must be a list with one annotation per image; got a single 2-D array of "
                f"shape {ys.shape}. Wrap it in a list: [{name}]."
            )
        if ys.ndim < 2:
            raise TypeError(f"{name} must be a list with one annotation per image; got {_describe(ys)}.")
        return list(ys)
    if not isinstance(ys, (list, tuple)):
        raise TypeError(f"{name} must be a list with one annotation per image; got {_describe(ys)}.")
    return list(ys)


def check_pairs(ys_true, ys_pred, name_true="ys_true", name_pred="ys_pred"):
    """Validate two per-image sequences and return them as normalised pairs.

    Returns
    -------
    pairs : list of (Instances, Instances)
        ``(truth, prediction)`` for every image.
    """
    ys_true = _as_sequence(ys_true, name_true)
    ys_pred = _as_sequence(ys_pred, name_pred)
    if len(ys_true) != len(ys_pred):
        raise ValueError(
            f"{name_true} and {name_pred} must have the same length (one entry per image); got "
            f"{len(ys_true)} and {len(ys_pred)}."
        )
    if len(ys_true) == 0:
        raise ValueError(f"{name_true} and {name_pred} must contain at least one image; got empty sequences.")
    pairs = []
    for i, (yt, yp) in enumerate(zip(ys_true, ys_pred)):
        p = as_label_map(yp, f"{name_pred}[{i}]")
        t = as_instances(yt, f"{name_true}[{i}]", shape=p.shape if _is_empty_list(yt) else None)
        check_same_shape(t, p, f"{name_true}[{i}]", f"{name_pred}[{i}]")
        pairs.append((t, p))
    return pairs


def _is_empty_list(y):
    return isinstance(y, (list, tuple)) and len(y) == 0


def as_pair(y_true, y_pred, name_true="y_true", name_pred="y_pred"):
    """Validate one (ground truth, prediction) pair of the same image."""
    p = as_label_map(y_pred, name_pred)
    t = as_instances(y_true, name_true, shape=p.shape if _is_empty_list(y_true) else None)
    check_same_shape(t, p, name_true, name_pred)
    return t, p
