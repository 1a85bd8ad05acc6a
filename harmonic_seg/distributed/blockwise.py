"""One image larger than memory: blockwise prediction on dask, lazily or straight to Zarr.

Every block is embedded with the network's receptive field around it and the
guide functions in whole-image coordinates (its embedding equals the whole
image's), normalised with the whole image's percentiles, clustered with a
context of ``overlap`` pixels around it, and its labels are joined to its
neighbours' across the shared faces (:mod:`harmonic_seg.distributed._stitch`).
No step holds more than a block, its context and a table of one integer per
instance in one process.
"""

from __future__ import annotations

import logging
import math
import operator
import time
import uuid
from numbers import Integral
from pathlib import Path

import numpy as np

from ..options import resolved
from ._block import intensity_range, segment_block
from ._geometry import plan_blocks
from ._stitch import RULES, apply_table, relabel_table

__all__ = ["predict_blockwise", "predict_to_zarr", "global_intensity_range"]

logger = logging.getLogger(__name__)

#: Pixels sampled (a regular grid) for the whole image's percentiles; an image with fewer uses all of them.
MAX_SAMPLES = 2**22


def _require(module):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            f"harmonic_seg.distributed needs {module.split('.')[0]}; install it with "
            "pip install 'harmonic_seg[dask]' (dask[array,distributed] and zarr)."
        ) from exc


def _check_model(model):
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(model, "module_")
    scale = getattr(model, "scale_", model.scale)  # the scale the network works at ("auto" resolved by fit)
    if scale != 1:
        raise ValueError(
            f"blockwise prediction needs a model whose network works at scale 1; got scale {scale!r}. Fit the "
            "model with scale=1 on images resized by that factor, and resize the large image likewise."
        )
    norm = resolved(model, "network").norm
    if norm in ("group", "instance"):
        logger.warning("norm=%r normalises over the region the network sees: blockwise predictions depend on "
                       "the blocks (a model with norm='batch' or None gives the whole image's).", norm)


def _as_dask(image, model):
    da = _require("dask.array")
    if isinstance(image, (str, Path)):
        image = da.from_zarr(str(image))
    elif not isinstance(image, da.Array):
        if not hasattr(image, "shape") or not hasattr(image, "dtype"):
            raise TypeError("image must be a dask, Zarr or numpy array of shape (H, W[, C]); got "
                            f"{type(image).__name__}.")
        chunks = getattr(image, "chunks", None)
        image = da.from_array(image, chunks=chunks if isinstance(chunks, tuple) else "auto")
    if image.ndim not in (2, 3) or 0 in image.shape:
        raise ValueError(f"image must have shape (H, W) or (H, W, C); got shape {image.shape}.")
    numeric = np.issubdtype(image.dtype, np.number) or image.dtype == bool
    if not numeric or np.issubdtype(image.dtype, np.complexfloating):
        raise TypeError(f"image must hold real numbers; got dtype {image.dtype}.")
    n_channels = 1 if image.ndim == 2 else image.shape[2]
    if n_channels != model.n_channels_in_:
        raise ValueError(f"image has {n_channels} channel(s) but the model was fitted on {model.n_channels_in_}.")
    if image.ndim == 3 and len(image.chunks[2]) > 1:
        image = image.rechunk({2: -1})
    return image


def _normalise_chunks(chunks, image):
    da = _require("dask.array")
    if chunks is None:
        return image.chunks[:2]
    if isinstance(chunks, Integral):
        chunks = (int(chunks), int(chunks))
    try:
        out = da.core.normalize_chunks(chunks, image.shape[:2], dtype=image.dtype)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"chunks must be an int, a pair of ints or dask chunks for {image.shape[:2]}; got "
                         f"{chunks!r} ({exc}).") from exc
    if min(min(c) for c in out) < 1:
        raise ValueError(f"chunks must be positive; got {chunks!r}.")
    return out


def _margins(model, overlap):
    rf = int(getattr(model.module_, "receptive_field", 0))
    if overlap is None:
        overlap = rf
    if isinstance(overlap, bool) or not isinstance(overlap, Integral) or overlap < 0:
        raise ValueError(f"overlap must be a non-negative int (pixels) or None; got {overlap!r}.")
    return int(overlap), rf // 2, int(getattr(model.module_, "size_multiple", 1))


def _check_stitch(stitch, iou_threshold):
    if stitch not in RULES:
        raise ValueError(f"stitch must be one of {RULES}; got {stitch!r}.")
    if not (isinstance(iou_threshold, (int, float)) and 0 < iou_threshold <= 1):
        raise ValueError(f"iou_threshold must be in (0, 1]; got {iou_threshold!r}.")


def global_intensity_range(model, image, *, max_samples=MAX_SAMPLES):
    """The whole image's normalisation percentiles, as a lazy (dask delayed) value.

    Computed once on a regular subsample of at most ``max_samples`` pixels
    (every pixel for smaller images, which then gives exactly the values of
    ``model.predict``), never per block.

    Parameters
    ----------
    model : HarmonicSegmenter
        Its ``percentiles`` are used; None gives None (no normalisation).
    image : dask array of shape (H, W) or (H, W, C)
    max_samples : int, default=2**22

    Returns
    -------
    dask.delayed.Delayed or None
        Computes to ``(lo, hi)`` (:func:`~harmonic_seg.distributed._block.intensity_range`).
    """
    dask = _require("dask")
    if model.percentiles is None:
        return None
    h, w = image.shape[:2]
    step = max(1, math.ceil(math.sqrt(h * w / max_samples)))
    sample = image[::step, ::step]
    return dask.delayed(intensity_range, pure=True)(sample, tuple(model.percentiles),
                                                    dask_key_name=f"harmonic-seg-range-{uuid.uuid4().hex[:12]}")


def _prepare(model, image, chunks, overlap, stitch, iou_threshold, value_range, max_samples):
    _check_model(model)
    _check_stitch(stitch, iou_threshold)
    image = _as_dask(image, model)
    chunks = _normalise_chunks(chunks, image)
    overlap, margin, multiple = _margins(model, overlap)
    plan = plan_blocks(image.shape[:2], chunks, overlap, margin, multiple)
    if value_range is None:
        value_range = global_intensity_range(model, image, max_samples=max_samples)
    elif model.percentiles is not None:
        lo, hi = (np.asarray(v, dtype=np.float64) for v in value_range)
        value_range = (lo.reshape((1, 1, -1) if image.ndim == 3 else (1, 1)),
                       hi.reshape((1, 1, -1) if image.ndim == 3 else (1, 1)))
    logger.info("blockwise prediction of a %s image in %d blocks (overlap %d, network margin %d, %s stitching)",
                image.shape, len(plan.blocks), overlap, margin, stitch)
    return image, plan, value_range


def _region(image, block):
    y0, y1, x0, x1 = block.input
    return image[y0:y1, x0:x1]


def predict_blockwise(model, image, *, chunks=None, overlap=None, stitch="embedding", iou_threshold=0.5,
                      intensity_range=None, max_samples=MAX_SAMPLES):
    """Lazy instance labels of one large image, block by block.

    The entry point for an image that does not fit in memory (a dask array,
    e.g. ``dask.array.from_zarr``); the result is a dask array, computed by
    whatever dask scheduler is active (a ``dask.distributed.Client`` spreads
    the blocks over its workers).

    Each block is embedded from the image around it (half the network's
    receptive field, the input starting on the network's pooling grid) with
    the guide functions in whole-image coordinates, so its embedding and
    foreground probability equal those of the whole image; the intensities
    are normalised with the whole image's percentiles, computed once. Each
    block is then clustered with ``overlap`` pixels of context around it, and
    the labels of instances cut by block borders are joined across every
    shared face (``stitch``), then numbered 1..K over the whole image.

    Parameters
    ----------
    model : HarmonicSegmenter
        Fitted, with ``scale=1``.
    image : dask array, Zarr array, numpy array or str of shape (H, W) or (H, W, C)
        A string is the path (or URL) of a Zarr array.
    chunks : int, tuple or None, default=None
        Block size (an int for square blocks, or dask chunks); None: the
        image's chunks. Larger blocks repeat less of the margins (about
        ``2 * (overlap + receptive_field // 2)`` pixels per side) and need
        more memory per task.
    overlap : int or None, default=None
        Context (pixels) clustered on every side of a block: at least the
        diameter of the largest object, so that an object reaching into a
        block is clustered whole. None: the network's receptive field. Objects
        that reach the edge of a context are counted (a warning says how many
        when stitching).
    stitch : {"embedding", "iou", "touch"}, default="embedding"
        How instances cut by a block border are joined: by the distance of
        the mean embeddings of the two touching segments (at most the
        mean-shift bandwidth), by their IoU in the overlap of the two blocks,
        or whenever they touch (Cellpose's rule).
    iou_threshold : float, default=0.5
        IoU that joins two segments with ``stitch="iou"``.
    intensity_range : tuple (lo, hi) or None, default=None
        The normalisation values (scalars, or one per channel) to use instead
        of the image's percentiles.
    max_samples : int, default=2**22
        Pixels (a regular grid) from which the percentiles are computed.

    Returns
    -------
    labels : dask array of shape (H, W), int32
        Chunked like the blocks; 0 = background, instances 1..K.

    Notes
    -----
    The global numbering needs every block's labels before any block of the
    result is final, so computing the whole result keeps all blocks' labels
    (4 bytes a pixel) in the workers' memory (spilled to disk by
    ``dask.distributed`` when it runs short). :func:`predict_to_zarr` writes
    the labels to disk first and bounds the memory by the blocks.
    """
    dask = _require("dask")
    da = _require("dask.array")
    image, plan, value_range = _prepare(model, image, chunks, overlap, stitch, iou_threshold, intensity_range,
                                        max_samples)
    token = uuid.uuid4().hex[:12]
    model_d = dask.delayed(model, name=f"harmonic-seg-model-{token}")
    results = [dask.delayed(segment_block, pure=True, nout=2)(
        model_d, _region(image, b), value_range, b, plan, strips=stitch == "iou",
        dask_key_name=f"harmonic-seg-block-{token}-{b.index[0]}-{b.index[1]}") for b in plan.blocks]
    metas = [r[1] for r in results]
    table = dask.delayed(relabel_table, nout=3)(
        metas, plan.grid, stitch, bandwidth=model.bandwidth_, metric=model.metric_, iou_threshold=iou_threshold,
        dask_key_name=f"harmonic-seg-table-{token}")
    rows = []
    for b, r in zip(plan.blocks, results):
        k = plan.grid[1] * b.index[0] + b.index[1]
        offset = dask.delayed(operator.getitem)(table[1], k, dask_key_name=f"harmonic-seg-offset-{token}-{k}")
        lab = dask.delayed(apply_table, pure=True)(r[0], table[0], offset,
                                                   dask_key_name=f"harmonic-seg-labels-{token}-{k}")
        arr = da.from_delayed(lab, (b.core[1] - b.core[0], b.core[3] - b.core[2]), dtype=np.int32,
                              name=f"harmonic-seg-labels-{token}-{k}-array")
        if b.index[1] == 0:
            rows.append([])
        rows[-1].append(arr)
    return da.block(rows)


def predict_dask(model, image, foreground=None, return_scores=False):
    """``HarmonicSegmenter.predict`` of a dask array: :func:`predict_blockwise` with its defaults."""
    if foreground is not None or return_scores:
        raise ValueError("predict of a dask array (blockwise) takes neither foreground nor return_scores; call "
                         "harmonic_seg.distributed.predict_blockwise, or predict a list of in-memory images.")
    return predict_blockwise(model, image)


# ----------------------------------------------------------------------------- Zarr
def _segment_to_store(model, region, value_range, block, plan, strips, path):
    zarr = _require("zarr")
    labels, meta = segment_block(model, region, value_range, block, plan, strips=strips)
    y0, y1, x0, x1 = block.core
    zarr.open_array(store=path, mode="r+")[y0:y1, x0:x1] = labels
    return meta


def _relabel_store(path, block, table, offset):
    zarr = _require("zarr")
    z = zarr.open_array(store=path, mode="r+")
    y0, y1, x0, x1 = block.core
    z[y0:y1, x0:x1] = apply_table(z[y0:y1, x0:x1], table, offset)
    return block.index


def _default_client():
    try:
        from distributed import default_client

        return default_client()
    except (ImportError, ValueError):
        return None


def _compute(tasks, progress):
    """Compute delayed ``tasks`` with the active scheduler, with a progress display if asked."""
    dask = _require("dask")
    client = _default_client()
    if client is not None:
        futures = client.compute(tasks)
        if progress:
            from distributed import progress as show_progress

            show_progress(futures)
        return client.gather(futures)
    if progress:
        from dask.diagnostics import ProgressBar

        with ProgressBar():
            return list(dask.compute(*tasks))
    return list(dask.compute(*tasks))


def _check_regular(chunks):
    for axis, c in enumerate(chunks):
        if len(set(c[:-1])) > 1 or (len(c) > 1 and c[-1] > c[0]):
            raise ValueError(
                f"a Zarr array needs regular chunks (all equal but the last, which may be smaller); got "
                f"{c} along axis {axis}. Pass chunks=<int> or rechunk the image."
            )
    return tuple(c[0] for c in chunks)


def predict_to_zarr(model, src, dst, *, chunks=None, overlap=None, stitch="embedding", iou_threshold=0.5,
                    intensity_range=None, max_samples=MAX_SAMPLES, overwrite=False, progress=False):
    """Segment a large image and write its label map to a Zarr array, in bounded memory.

    Three passes, each spread over the active dask scheduler's workers (a
    ``dask.distributed.Client`` if one is running, else dask's threads): the
    whole image's percentiles (from a regular subsample), then every block is
    segmented as in :func:`predict_blockwise` and its labels (numbered within
    the block) are written to ``dst`` while only a description of the block
    (its instance count, mean embeddings and border rows) comes back; the
    blocks' labels are joined into global ids here (one integer per
    instance), and finally every chunk of ``dst`` is renumbered in place.

    Parameters
    ----------
    model : HarmonicSegmenter
        Fitted, with ``scale=1``.
    src : str, path, Zarr array or dask array of shape (H, W) or (H, W, C)
        The image (a string: the path or URL of a Zarr array).
    dst : str or path
        The Zarr array to create, chunked like the blocks (like ``src`` by default).
    chunks, overlap, stitch, iou_threshold, intensity_range, max_samples
        As in :func:`predict_blockwise`.
    overwrite : bool, default=False
        Replace an existing ``dst``; otherwise a ``FileExistsError`` is raised before any work.
    progress : bool, default=False
        Show a progress bar of the blocks (dask's).

    Returns
    -------
    labels : zarr.Array of shape (H, W), int32
        Opened read-only. Its ``attrs`` hold ``n_instances``, the settings
        (``stitch``, ``overlap``, ``chunks``), the stitching figures
        (``stitching``) and ``seconds``, where the time went: ``normalise``,
        ``network``, ``clustering`` and ``blocks`` (each block's whole
        segmentation), each summed over the blocks (CPU-bound work on several
        workers at once, so the sums can exceed the wall time), then
        ``stitching`` (the global ids, in the calling process) and
        ``renumbering`` (the pass that renumbers the chunks, wall time).
    """
    dask = _require("dask")
    zarr = _require("zarr")
    dst = str(dst)
    if Path(dst).exists() and not overwrite:
        raise FileExistsError(f"dst {dst!r} exists; pass overwrite=True to replace it.")
    image, plan, value_range = _prepare(model, src, chunks, overlap, stitch, iou_threshold, intensity_range,
                                        max_samples)
    zchunks = _check_regular(plan.chunks)
    if value_range is not None and not isinstance(value_range, tuple):
        (value_range,) = _compute([value_range], False)
    zarr.open_array(store=dst, mode="w", shape=plan.shape, chunks=zchunks, dtype=np.int32, fill_value=0)
    token = uuid.uuid4().hex[:12]
    model_d = dask.delayed(model, name=f"harmonic-seg-model-{token}")
    tasks = [dask.delayed(_segment_to_store, pure=True)(
        model_d, _region(image, b), value_range, b, plan, stitch == "iou", dst,
        dask_key_name=f"harmonic-seg-block-{token}-{b.index[0]}-{b.index[1]}") for b in plan.blocks]
    metas = _compute(tasks, progress)
    steps = ("normalise", "network", "clustering", "block")
    seconds = {("blocks" if s == "block" else s): sum(m["seconds"][s] for m in metas) for s in steps}
    t0 = time.perf_counter()
    table, offsets, stats = relabel_table(metas, plan.grid, stitch, bandwidth=model.bandwidth_,
                                          metric=model.metric_, iou_threshold=iou_threshold)
    seconds["stitching"] = time.perf_counter() - t0
    table_d = dask.delayed(table, name=f"harmonic-seg-table-{token}")
    tasks = [dask.delayed(_relabel_store, pure=True)(dst, b, table_d, int(offsets[k]),
                                                     dask_key_name=f"harmonic-seg-relabel-{token}-{k}")
             for k, b in enumerate(plan.blocks)]
    t0 = time.perf_counter()
    _compute(tasks, progress)
    seconds["renumbering"] = time.perf_counter() - t0
    out = zarr.open_array(store=dst, mode="r+")
    out.attrs.update({"n_instances": stats["instances"], "stitch": stitch, "overlap": plan.overlap,
                      "chunks": list(zchunks), "stitching": stats, "seconds": seconds})
    return zarr.open_array(store=dst, mode="r")
