"""What one worker does for one block: normalise, embed, cluster, and describe the block's instances.

Plain numpy around the fitted :class:`~harmonic_seg.HarmonicSegmenter`; no
dask here, so that the functions run (and are tested) without a scheduler.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from ..options import resolved
from ..preprocessing import to_channels_first
from ._geometry import local_slices

__all__ = ["intensity_range", "normalise", "segment_block"]

logger = logging.getLogger(__name__)

#: Sides of a block, in the order of its faces and strips.
SIDES = ("top", "bottom", "left", "right")


def _as_numeric(arr):
    arr = np.asarray(arr)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    return arr


def intensity_range(sample, percentiles):
    """The ``percentiles`` (low, high) of an image (or of a regular subsample of it), per channel.

    The same computation as :func:`harmonic_seg.preprocessing.percentile_normalize`,
    returned instead of applied, so that every block of a large image is
    normalised with the values of the whole image.

    Parameters
    ----------
    sample : ndarray of shape (H, W) or (H, W, C)
    percentiles : tuple of float
        (low, high), in [0, 100].

    Returns
    -------
    (lo, hi) : tuple of ndarray
        Broadcastable against the image: shape (1, 1) or (1, 1, C).
    """
    arr = _as_numeric(sample)
    arr = arr.astype(np.result_type(arr.dtype, np.float32), copy=False)
    axis = (0, 1) if arr.ndim == 3 else None
    lo, hi = np.percentile(arr, list(percentiles), axis=axis, keepdims=True)
    return lo, hi


def normalise(region, value_range, eps=1e-6):
    """A region of an image, normalised with the whole image's ``value_range``, as float32 (C, H, W)."""
    arr = _as_numeric(region)
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        raise ValueError("the image holds NaN or infinite values; replace them (np.nan_to_num) before predicting.")
    if value_range is None:
        return to_channels_first(arr)
    lo, hi = value_range
    arr = arr.astype(np.result_type(arr.dtype, np.float32), copy=False)
    with np.errstate(over="ignore", invalid="ignore"):
        out = (arr - lo) / np.maximum(hi - lo, eps)
    return to_channels_first(out.astype(np.float32, copy=False))


def embed_region(model, chw, origin):
    """The model's embedding and foreground probability of a normalised (C, H, W) region whose first pixel
    is at ``origin`` (row, column) of the whole image: the guide maps are the whole image's."""
    from ..nn import predict_embeddings

    rf = getattr(model.module_, "receptive_field", 0)
    tiling = resolved(model, "tiling")
    overlap = tiling.overlap if tiling.overlap is not None else 2 * (rf // 2)
    return predict_embeddings(model.module_, chw, tile_size=tiling.size, overlap=overlap, amp=model.amp,
                              origin=origin)


def _mean_embeddings(labels, emb, k):
    """(k, N) mean embedding of the instances 1..k of ``labels`` (0 = other pixels), vectorised per channel."""
    flat = labels.ravel()
    counts = np.bincount(flat, minlength=k + 1)[1:].astype(np.float64)
    sums = np.stack([np.bincount(flat, weights=ch.ravel(), minlength=k + 1)[1:] for ch in emb], axis=1)
    return (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)


def segment_block(model, region, value_range, block, plan, *, strips=False):
    """Segment one block of a large image.

    Parameters
    ----------
    model : HarmonicSegmenter
        Fitted, with ``scale=1``.
    region : ndarray of shape (h, w) or (h, w, C)
        The raw image over ``block.input``.
    value_range : tuple of ndarray or None
        The whole image's (lo, hi) from :func:`intensity_range`; None: no normalisation.
    block : Block
    plan : BlockPlan
    strips : bool, default=False
        Also return the context labels in the strips shared with the neighbours (overlap stitching).

    Returns
    -------
    labels : ndarray of shape (core height, core width), int32
        The block's instances numbered 1..k (0 = background).
    meta : dict
        ``n`` (k), ``means`` ((k, N) mean embedding of each instance over the
        context), ``faces`` (the first and last rows and columns of
        ``labels``, by side), ``strips`` (by side, or None), ``truncated``
        (clumps of touching instances in the core that reach the edge of the
        context inside the image: objects, or clumps, larger than the overlap),
        ``seconds`` (the time of each step: ``normalise``, ``network``,
        ``clustering`` and ``block``, the whole call).
    """
    h, w = plan.shape
    start = time.perf_counter()
    chw = normalise(region, value_range)
    seconds = {"normalise": time.perf_counter() - start}
    with model._threads():
        t0 = time.perf_counter()
        emb, prob = embed_region(model, chw, (block.input[0], block.input[2]))
        seconds["network"] = time.perf_counter() - t0
        cs = local_slices(block.context, block.input)
        emb = np.ascontiguousarray(emb[:, cs[0], cs[1]])
        prob = np.ascontiguousarray(prob[cs])
        t0 = time.perf_counter()
        lab, _ = model._cluster(emb, prob > model.fg_threshold_, prob, model.bandwidth_, model.min_size_)
        seconds["clustering"] = time.perf_counter() - t0
    core_sl = local_slices(block.core, block.context)
    ids = np.unique(lab[core_sl])
    ids = ids[ids > 0]
    k = int(ids.size)
    lut = np.zeros(int(lab.max()) + 1, dtype=np.int32)
    lut[ids] = np.arange(1, k + 1, dtype=np.int32)
    local = lut[lab]  # the context's labels, numbered as in the core (0: not in the core)
    core = np.ascontiguousarray(local[core_sl])
    faces = {"top": core[0].copy(), "bottom": core[-1].copy(), "left": core[:, 0].copy(), "right": core[:, -1].copy()}
    # clumps of touching instances that reach into the core and the edge of the context inside the image:
    # objects (or clumps, which the clustering may look at whole) larger than the overlap
    from scipy import ndimage

    clumps, _ = ndimage.label(lab > 0)
    y0, y1, x0, x1 = block.context
    edges = [e for e, inside in ((clumps[0], y0 > 0), (clumps[-1], y1 < h), (clumps[:, 0], x0 > 0),
                                 (clumps[:, -1], x1 < w)) if inside]
    truncated = np.intersect1d(np.concatenate(edges), clumps[core_sl][core > 0]) if edges else np.zeros(0, int)
    meta = {
        "index": block.index,
        "n": k,
        "means": _mean_embeddings(local, emb, k),
        "faces": faces,
        "strips": None,
        "truncated": int((truncated > 0).sum()),
    }
    if strips:
        meta["strips"] = {s: np.ascontiguousarray(local[local_slices(block.strip(s, plan), block.context)])
                          for s in SIDES}
    meta["seconds"] = {**seconds, "block": time.perf_counter() - start}
    return core, meta
