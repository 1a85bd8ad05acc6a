"""Whole-image and tiled prediction of embeddings and foreground probabilities.

Tiles start on multiples of the network's ``size_multiple`` (``2**depth``) so
that the pooling grid of every tile coincides with the one of the whole image,
and each tile receives its global origin so that its guide maps are in global
coordinates. Each tile contributes only its central part (the ``overlap``
region between two neighbouring tiles is split in the middle, so at least
``overlap // 2`` pixels are discarded from every inner tile border). With
eval-mode BatchNorm (or no normalisation) and an ``overlap`` larger than the
network's receptive field radius, tiled prediction equals untiled prediction
up to floating-point noise. GroupNorm and InstanceNorm normalise over the tile
and therefore give tile-dependent results.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from .._validation import check_device, check_positive
from ._train_utils import resolve_amp

__all__ = ["predict_embeddings", "tile_starts", "balanced_tile"]

logger = logging.getLogger(__name__)


def tile_starts(n, tile, overlap, multiple=1):
    """Start indices and ends of overlapping tiles along one axis.

    Parameters
    ----------
    n : int
        Axis length.
    tile : int
        Tile length.
    overlap : int
        Minimum overlap between consecutive tiles.
    multiple : int, default=1
        Every start is a multiple of this.

    Returns
    -------
    starts, ends : list of int
    """
    if n <= tile:
        return [0], [n]
    step = ((tile - overlap) // multiple) * multiple
    if step <= 0:
        raise ValueError(
            f"tile_size ({tile}) must exceed overlap ({overlap}) by at least the network's size multiple "
            f"({multiple})."
        )
    k = -(-(n - tile) // step)  # number of steps
    last = -(-(n - tile) // multiple) * multiple
    starts = [i * step for i in range(k)] + [last]
    starts = sorted(set(starts))
    ends = [min(s + tile, n) for s in starts]
    return starts, ends


def balanced_tile(n, tile, overlap, multiple=1):
    """The tile length, at most ``tile``, that covers an axis of length ``n`` with the fewest pixels.

    :func:`tile_starts` with ``tile`` places full-size tiles and moves the
    last one back to the end of the axis, so it can overlap its neighbour by
    far more than ``overlap`` (an axis of 2048 pixels in tiles of 1024 with an
    overlap of 118 takes 3 tiles, 3072 pixels). A shorter tile length spreads
    the same number of tiles (or fewer) evenly; this returns the length whose
    tiles add up to the fewest pixels (the longest one among equals), so the
    network computes no more than it needs.

    Parameters
    ----------
    n : int
        Axis length.
    tile : int
        Largest tile length.
    overlap : int
        Minimum overlap between consecutive tiles.
    multiple : int, default=1
        Every start is a multiple of this.

    Returns
    -------
    int
    """
    if n <= tile:
        return int(tile)
    best, best_total = int(tile), None
    for t in range(int(tile), int(overlap) + int(multiple) - 1, -1):  # at most ``tile`` candidates, no pixels
        if ((t - overlap) // multiple) * multiple <= 0:
            break
        starts, ends = tile_starts(n, t, overlap, multiple)
        total = sum(e - s for s, e in zip(starts, ends))
        if best_total is None or total < best_total:
            best, best_total = t, total
    return best


def _keep_bounds(starts, ends):
    """Owned region ``[lo, hi)`` of every tile: overlaps are split in the middle."""
    lo = [0] + [(ends[i] + starts[i + 1]) // 2 for i in range(len(starts) - 1)]
    hi = lo[1:] + [ends[-1]]
    return lo, hi


def _module_device(module):
    for p in module.parameters():
        return p.device
    return torch.device("cpu")


def predict_embeddings(module, image_chw, device=None, tile_size=None, overlap=64, batch_size=1, amp=None,
                       origin=(0, 0)):
    """Predict embeddings and foreground probabilities of one image.

    Parameters
    ----------
    module : HarmonicUNet
        Trained network; put in eval mode for the call (mode restored after).
    image_chw : ndarray of shape (C, H, W)
        Normalised image.
    device : str, torch.device or None, default=None
        None: the module's device; else "auto", "cpu", "cuda", "cuda:k" or
        "mps", one this torch can use. The module is moved there.
    tile_size : int or None, default=None
        None: one forward pass over the whole image. Otherwise tiles of at
        most this size (images no larger than it still take one pass), along
        each axis the length that covers it with the fewest pixels
        (:func:`balanced_tile`).
    overlap : int, default=64
        Minimum overlap of neighbouring tiles. Tiled equals untiled prediction
        when ``overlap // 2 >= module.receptive_field // 2`` (246 pixels for the
        default depth-4 network, 54 for depth 2); smaller overlaps give small
        differences near tile seams.
    batch_size : int, default=1
        Tiles of the same shape per forward pass.
    amp : bool or None, default=None
        Autocast; None: float16 on CUDA, float32 on CPU; True: float16 on
        CUDA, bfloat16 on CPU (:func:`~harmonic_seg.nn.resolve_amp`).
    origin : tuple of int, default=(0, 0)
        Position (row, column) of the image's first pixel in a larger image
        whose coordinates the guide functions use: a block of a large image
        given its position is embedded as in the whole image (the block
        should start on a multiple of ``module.size_multiple`` and keep the
        receptive field's margin around the pixels that are used).

    Returns
    -------
    embedding : ndarray of shape (N, H, W), float32
    fg_prob : ndarray of shape (H, W), float32
    """
    image = np.asarray(image_chw)
    if image.ndim != 3 or image.shape[1] == 0 or image.shape[2] == 0:
        raise ValueError(f"image_chw must be a non-empty (C, H, W) array; got shape {image.shape}.")
    in_ch = getattr(module, "in_channels", image.shape[0])
    if image.shape[0] != in_ch:
        raise ValueError(f"image_chw has {image.shape[0]} channel(s) but the module expects {in_ch}.")
    if tile_size is not None:
        check_positive(tile_size, "tile_size", integer=True)
        check_positive(overlap, "overlap", integer=True, allow_zero=True)
    check_positive(batch_size, "batch_size", integer=True)
    if not (np.issubdtype(image.dtype, np.number) or image.dtype == bool) or np.iscomplexobj(image):
        raise TypeError(f"image_chw must hold real numbers; got dtype {image.dtype}.")
    image = np.ascontiguousarray(image, dtype=np.float32)
    oy, ox = (int(v) for v in origin)
    dev = _module_device(module) if device is None else torch.device(check_device(device, "device", resolve=True))
    amp_dtype = resolve_amp(amp, dev)
    _, h, w = image.shape
    n_out = module.n_outputs
    mult = getattr(module, "size_multiple", 1)
    if tile_size is None:
        ys, ye, xs, xe = [0], [h], [0], [w]
    else:
        ys, ye = tile_starts(h, balanced_tile(h, int(tile_size), int(overlap), mult), int(overlap), mult)
        xs, xe = tile_starts(w, balanced_tile(w, int(tile_size), int(overlap), mult), int(overlap), mult)
    ylo, yhi = _keep_bounds(ys, ye)
    xlo, xhi = _keep_bounds(xs, xe)
    rf = getattr(module, "receptive_field", None)
    if (len(ys) > 1 or len(xs) > 1) and rf is not None and int(overlap) // 2 < rf // 2:
        logger.info(
            "overlap=%d is smaller than the network's receptive field (%d px): tiled predictions may differ "
            "slightly from untiled ones near tile seams; use overlap >= %d for seamless stitching.",
            overlap, rf, 2 * (rf // 2),
        )
    tiles = [(i, j) for i in range(len(ys)) for j in range(len(xs))]
    emb_out = np.empty((n_out, h, w), np.float32)
    fg_out = np.empty((h, w), np.float32)

    def run(batch):
        x = torch.from_numpy(np.stack([image[:, ys[i]:ye[i], xs[j]:xe[j]] for i, j in batch])).to(dev)
        origin = torch.tensor([[oy + ys[i], ox + xs[j]] for i, j in batch], dtype=torch.float64, device=dev)
        with torch.autocast(dev.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            emb, logit = module(x, origin)
        emb = emb.float().cpu().numpy()
        logit = logit.float().cpu().numpy()
        for k, (i, j) in enumerate(batch):
            sy = slice(ylo[i] - ys[i], yhi[i] - ys[i])
            sx = slice(xlo[j] - xs[j], xhi[j] - xs[j])
            emb_out[:, ylo[i]:yhi[i], xlo[j]:xhi[j]] = emb[k, :, sy, sx]
            fg_out[ylo[i]:yhi[i], xlo[j]:xhi[j]] = logit[k, 0, sy, sx]

    was_training = module.training
    module.to(dev).eval()
    try:
        with torch.inference_mode():
            batch, shape = [], None
            for i, j in tiles:
                tshape = (ye[i] - ys[i], xe[j] - xs[j])
                if batch and (tshape != shape or len(batch) >= batch_size):
                    run(batch)
                    batch = []
                batch.append((i, j))
                shape = tshape
            if batch:
                run(batch)
    finally:
        module.train(was_training)
    # the sigmoid once over the whole map: its vectorised rounding depends on where a pixel sits in the
    # buffer, so a tile-by-tile sigmoid could differ from the untiled one in the last bit
    torch.sigmoid_(torch.from_numpy(fg_out))
    return emb_out, fg_out
