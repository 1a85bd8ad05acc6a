"""Harmonic embeddings of label maps (paper eq. 1-2). Numpy only.

The embedding of an instance S is the mean of the guide functions over its
pixels. The *target embedding map* assigns every pixel the embedding of the
instance it belongs to (0 on background); it is what the network regresses.
"""

from __future__ import annotations

import numpy as np

from .._labels import relabel_sequential
from .._validation import check_label_map
from .functions import GuideFunctions, _separable_factors, check_origin, window_coordinates

__all__ = ["instance_embeddings", "embedding_map", "embedding_table", "lookup_embeddings"]


def _check_guides(guides):
    if not isinstance(guides, GuideFunctions):
        raise TypeError(
            f"guides must be a GuideFunctions instance (e.g. GuideFunctionFitter().fit(y).guides_); "
            f"got {type(guides).__name__}."
        )


def _row_runs(labels):
    """Maximal horizontal runs of equal labels: row, first column, end column, label."""
    h, w = labels.shape
    starts = np.ones((h, w), bool)
    starts[:, 1:] = labels[:, 1:] != labels[:, :-1]
    rows, x0 = np.nonzero(starts)
    first = np.flatnonzero(starts.ravel())
    ends = np.empty_like(first)
    ends[:-1] = first[1:]
    ends[-1] = labels.size
    # A run never crosses a row end: every row starts a new run.
    x1 = ends - rows * w
    return rows, x0, x1, labels.ravel()[first]


def _sums(labels, guides, origin):
    """Per-label pixel counts and guide sums, indexed by label value.

    Every guide is a sum of two products ``a(y) * b(x)``
    (``guides._separable_factors``), so the
    sum over a horizontal run of one label is ``a(y)`` times a difference of
    prefix sums of ``b``: the cost is one pass over the pixels to find the runs
    plus ``O(runs * N)``, instead of evaluating N full guide maps (which is
    still done, one guide at a time, for noise-like maps whose runs are short).
    """
    h, w = labels.shape
    y0, x0 = check_origin(origin)
    factors = _separable_factors(guides, window_coordinates(h, y0, 1), window_coordinates(w, x0, 1))
    rows, x0, x1, run_labels = _row_runs(labels)
    n_bins = int(run_labels.max()) + 1
    counts = np.bincount(run_labels, weights=(x1 - x0), minlength=n_bins).astype(np.int64)
    n_guides = guides.frequencies.shape[0]
    sums = np.empty((n_bins, n_guides))
    if rows.size > labels.size // 4:
        # Noise-like maps (runs of a pixel or two): evaluating each guide on every pixel is cheaper.
        flat = labels.ravel()
        for n in range(n_guides):
            values = sum(np.multiply.outer(a[n], b[n]) for a, b in factors)
            sums[:, n] = np.bincount(flat, weights=values.ravel(), minlength=n_bins)
        return counts, sums
    prefixes = []
    for a, b in factors:
        prefix = np.zeros((b.shape[0], w + 1))
        np.cumsum(b, axis=1, out=prefix[:, 1:])
        prefixes.append(prefix)
    for n in range(n_guides):  # one guide at a time: memory O(runs)
        per_run = sum(a[n, rows] * (p[n, x1] - p[n, x0]) for (a, _), p in zip(factors, prefixes))
        sums[:, n] = np.bincount(run_labels, weights=per_run, minlength=n_bins)
    return counts, sums


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
    ids : ndarray of shape (K,), int64
        Instance ids present (sorted, background excluded).
    embeddings : ndarray of shape (K, N), float64
        Mean of each guide function over each instance's pixels.

    Notes
    -----
    The ids are renumbered ``1..K`` internally, so memory follows the number of
    instances, not the largest id (an id of ``2**31 - 1`` costs nothing extra).
    """
    _check_guides(guides)
    return _instance_embeddings(check_label_map(labels, "labels"), guides, origin)


def _instance_embeddings(labels, guides, origin=(0, 0)):
    """:func:`instance_embeddings` of a validated label map."""
    labels, ids, _ = relabel_sequential(labels)
    counts, sums = _sums(labels, guides, origin)
    return ids, sums[1:] / counts[1:, None]


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

    Notes
    -----
    The ids are renumbered ``1..K`` internally, so memory follows the number of
    instances and the size of the map, not the largest id.
    """
    _check_guides(guides)
    labels, ids, _ = relabel_sequential(check_label_map(labels, "labels"))
    counts, sums = _sums(labels, guides, origin)
    table = _table(counts, sums)
    target = _lookup(table, labels, dtype)
    if not return_embeddings:
        return target
    return target, ids, table[1:]


#: Largest embedding table (bytes) ``embedding_table`` builds: one float64 row per id up to the largest.
MAX_TABLE_BYTES = 2**30


def embedding_table(labels, guides, origin=(0, 0)):
    """Embedding of every label value, as a lookup table.

    Parameters
    ----------
    labels : array-like of shape (H, W)
        Integer label map, 0 = background.
    guides : GuideFunctions
    origin : tuple of float, default=(0, 0)
        Global coordinate of ``labels[0, 0]``.

    Returns
    -------
    table : ndarray of shape (labels.max() + 1, N), float64
        Row ``k`` is the embedding of instance ``k``; rows of the background
        (0) and of absent labels are 0. ``lookup_embeddings(table, window)``
        gives the target map of any window of ``labels`` (a training crop)
        without building it for the whole image.

    Notes
    -----
    The table has a row for every value up to the largest id, so its memory
    follows ``labels.max()``, not the number of instances: renumber sparse ids
    first (e.g. ``skimage.segmentation.relabel_sequential``) when the largest
    id is far above the number of instances.
    """
    _check_guides(guides)
    labels = check_label_map(labels, "labels")
    check_table_size(int(labels.max()), guides.n_guides)  # before allocating: one row for every id up to the largest
    return _embedding_table(labels, guides, origin)


def check_table_size(largest_id, n_guides):
    """Refuse an embedding table above :data:`MAX_TABLE_BYTES` (one row of ``n_guides`` floats per id)."""
    rows = int(largest_id) + 1
    if rows * n_guides * 8 > MAX_TABLE_BYTES:
        raise ValueError(
            f"labels' largest id is {rows - 1}: its embedding table would have {rows} rows of {n_guides} "
            f"floats ({rows * n_guides * 8 / 2**30:.3g} GiB, above {MAX_TABLE_BYTES / 2**30:g} GiB). "
            "Renumber the ids first, e.g. with harmonic_seg.postprocess.relabel_sequential(labels), or use "
            "instance_embeddings, which keeps only the ids present."
        )


def _embedding_table(labels, guides, origin=(0, 0)):
    """:func:`embedding_table` of a validated label map whose table size was checked (the training crops).

    No renumbering: the sampler's maps hold ids ``1..K`` (an augmentation may only drop some), and
    the rows of absent ids are 0, as :func:`embedding_table` gives them.
    """
    return _table(*_sums(labels, guides, origin))


def _table(counts, sums):
    present = counts > 0
    present[0] = False
    table = np.zeros_like(sums)
    table[present] = sums[present] / counts[present, None]
    return table


def lookup_embeddings(table, labels, dtype=np.float32):
    """Target map of a label map (or of a window of one) from its embedding table.

    Parameters
    ----------
    table : ndarray of shape (K, N)
        From :func:`embedding_table`.
    labels : array-like of shape (H, W)
        Integer labels below ``K``.
    dtype : dtype, default=np.float32

    Returns
    -------
    target : ndarray of shape (N, H, W)
    """
    table = np.asarray(table)
    if table.ndim != 2:
        raise ValueError(f"table must be a 2-D array (K, N) from embedding_table; got shape {table.shape}.")
    labels = check_label_map(labels, "labels")
    if labels.max() >= len(table):
        raise ValueError(
            f"labels holds label {labels.max()}, beyond the {len(table)} rows of table; "
            "build the table from the label map this window comes from."
        )
    return _lookup(table, labels, dtype)


def _lookup(table, labels, dtype):
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be a numpy floating dtype such as np.float32; got {dtype!r}.") from None
    if dtype.kind != "f":
        raise TypeError(f"dtype must be a numpy floating dtype such as np.float32; got {dtype}.")
    return np.take(table.T.astype(dtype), labels, axis=1)
