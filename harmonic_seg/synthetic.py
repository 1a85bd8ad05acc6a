"""Synthetic instance-segmentation data for tests, examples and quick benchmarks (numpy only).

:func:`make_instances` draws images of textured objects with a darker rim (so that a
network can find the borders between touching objects) plus Gaussian noise, with
their instance label maps:

- ``kind='blobs'``: densely packed, touching, irregular cells: a power (additively
  weighted Voronoi) diagram of random seeds in a smoothly warped plane, each cell
  cut to a random radius around its seed;
- ``kind='ellipses'``: elongated, slightly bent ellipses (worm-like), separate or,
  with ``overlap=True``, crossing each other.
"""

from __future__ import annotations

import logging
import numbers

import numpy as np
from scipy import ndimage as ndi

from ._validation import check_positive, check_shape_2d
from .io.datasets import Dataset, masks_to_label_map

__all__ = ["make_instances"]

logger = logging.getLogger(__name__)

_KINDS = ("blobs", "ellipses")


def _rng(random_state):
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(0, 2**31 - 1))
    try:
        return np.random.default_rng(random_state)
    except (TypeError, ValueError):
        raise TypeError(
            f"random_state must be None, an int, a numpy Generator or RandomState; got {random_state!r}."
        ) from None


def _smooth_noise(rng, shape, sigma):
    """Zero-mean, unit-std smooth random field."""
    f = ndi.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return (f - f.mean()) / (f.std() + 1e-12)


def _warped_grid(rng, shape, amplitude, sigma):
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    if amplitude > 0:
        yy += amplitude * _smooth_noise(rng, shape, sigma)
        xx += amplitude * _smooth_noise(rng, shape, sigma)
    return yy, xx


def _poisson_seeds(rng, n, shape, min_dist, margin):
    """Up to ``n`` seeds at least ``min_dist`` apart (vectorised dart throwing)."""
    h, w = shape
    cand = rng.uniform([margin, margin], [h - 1 - margin, w - 1 - margin], size=(max(30 * n, 60), 2))
    keep = []
    for p in cand:  # loop over candidate points, not pixels
        if not keep or np.min(np.sum((np.asarray(keep) - p) ** 2, axis=1)) >= min_dist**2:
            keep.append(p)
            if len(keep) == n:
                break
    return np.asarray(keep)


def _keep_largest_component(labels):
    """Keep, for every label, only its largest 4-connected piece (vectorised)."""
    from skimage.measure import label as cc_label

    comp = cc_label(labels, connectivity=1, background=0)
    if comp.max() == 0:
        return labels
    comp_label = np.zeros(comp.max() + 1, labels.dtype)
    comp_label[comp.ravel()] = labels.ravel()
    area = np.bincount(comp.ravel(), minlength=comp.max() + 1).astype(np.int64)
    area[0] = -1
    order = np.lexsort((area, comp_label))  # by label, then by area
    last = np.r_[comp_label[order][1:] != comp_label[order][:-1], True]
    keep = np.zeros(comp.max() + 1, bool)
    keep[order[last]] = True
    keep[0] = False
    return np.where(keep[comp], labels, 0)


def _relabel(labels, min_area):
    area = np.bincount(labels.ravel())
    ok = area >= min_area
    ok[0] = False
    new = np.zeros(area.size, np.int32)
    new[ok] = np.arange(1, ok.sum() + 1, dtype=np.int32)
    return new[labels], ok


def _blobs(rng, shape, n, overlap):
    h, w = shape
    size = min(h, w)
    # Typical cell radius so that n cells fill about 60 % of the image.
    r0 = np.sqrt(0.6 * h * w / (np.pi * n))
    seeds = _poisson_seeds(rng, n, shape, min_dist=1.1 * r0, margin=0.3 * r0)
    if len(seeds) < n:  # crowded: accept closer seeds
        extra = _poisson_seeds(rng, n, shape, min_dist=0.7 * r0, margin=0.2 * r0)
        seeds = extra if len(extra) > len(seeds) else seeds
    k = len(seeds)
    yy, xx = _warped_grid(rng, shape, amplitude=0.25 * r0, sigma=max(size / 12, 2.0))
    d2 = (yy[None] - seeds[:, 0, None, None]) ** 2 + (xx[None] - seeds[:, 1, None, None]) ** 2
    weight = rng.uniform(-0.3, 0.3, k) * r0**2  # power-diagram weights
    radius = r0 * rng.uniform(0.95, 1.5, k)
    power = d2 - weight[:, None, None]
    inside = d2 <= radius[:, None, None] ** 2
    owner = power.argmin(axis=0)  # power diagram: convex cells
    labels = np.where(np.take_along_axis(inside, owner[None], 0)[0], owner + 1, 0).astype(np.int32)
    labels = _keep_largest_component(labels)
    labels, ok = _relabel(labels, min_area=max(4, int(0.15 * np.pi * r0**2)))
    masks = None
    if overlap:
        # About half of the cells spread over their neighbours: a pixel belongs to cell i
        # when its power distance is within slack_i of the best one (inside i's radius).
        best = power.min(axis=0)
        slack = np.where(rng.random(k) < 0.5, rng.uniform(0.3, 0.8, k) * r0**2, 0.0)
        grown = inside & (power <= best[None] + slack[:, None, None])
        kept = ok[1:]  # seeds that survived as instances, in label order
        masks = grown[kept] | (labels[None] == np.arange(1, kept.sum() + 1)[:, None, None])
    return labels, masks


def _ellipse_masks(rng, shape, n, overlap):
    h, w = shape
    size = min(h, w)
    yy, xx = _warped_grid(rng, shape, amplitude=0.04 * size, sigma=max(size / 10, 2.0))
    masks = []
    union = np.zeros(shape, bool)
    halo = np.zeros(shape, bool)
    for _ in range(25 * n):  # loop over candidate objects, not pixels
        if len(masks) == n:
            break
        a = rng.uniform(0.12, 0.25) * size
        b = rng.uniform(0.035, 0.06) * size
        cy, cx = rng.uniform(0.1 * h, 0.9 * h), rng.uniform(0.1 * w, 0.9 * w)
        t = rng.uniform(0, np.pi)
        # evaluate in the bounding box only (warp displacements are < 0.2 * size)
        r = int(a + 0.2 * size) + 1
        box = (slice(max(int(cy) - r, 0), int(cy) + r + 1), slice(max(int(cx) - r, 0), int(cx) + r + 1))
        u = (yy[box] - cy) * np.sin(t) + (xx[box] - cx) * np.cos(t)
        v = (yy[box] - cy) * np.cos(t) - (xx[box] - cx) * np.sin(t)
        m = np.zeros(shape, bool)
        m[box] = (u / a) ** 2 + (v / b) ** 2 <= 1.0
        area = m.sum()
        if area < 8:
            continue
        shared = (m & union).sum()
        if shared and (not overlap or shared > 0.3 * area):
            continue
        if not overlap and (m & halo).any():
            continue  # keep separate ellipses apart by at least one pixel
        masks.append(m)
        union |= m
        if not overlap:
            halo |= ndi.binary_dilation(m)
    return np.asarray(masks, bool).reshape(-1, h, w)


def _render(rng, shape, labels, masks, noise):
    """Textured objects with a darker rim on a dark background, plus noise."""
    size = min(shape)
    texture = _smooth_noise(rng, shape, max(size / 40, 1.0))
    if masks is None:
        k = int(labels.max())
        obj = labels > 0
        bright = np.r_[0.0, rng.uniform(0.55, 0.9, k)][labels]
        # rim: pixels with a 4-neighbour of another label (incl. background)
        pad = np.pad(labels, 1, mode="edge")
        rim = obj & (
            (pad[:-2, 1:-1] != labels) | (pad[2:, 1:-1] != labels)
            | (pad[1:-1, :-2] != labels) | (pad[1:-1, 2:] != labels)
        )
    else:
        k = masks.shape[0]
        obj = masks.any(axis=0)
        bright = np.clip((rng.uniform(0.45, 0.75, k)[:, None, None] * masks).sum(axis=0), 0, 0.95)
        pad = np.pad(masks, ((0, 0), (1, 1), (1, 1)))
        eroded = pad[:, :-2, 1:-1] & pad[:, 2:, 1:-1] & pad[:, 1:-1, :-2] & pad[:, 1:-1, 2:] & masks
        rim = (masks & ~eroded).any(axis=0)
    image = np.where(obj, bright + 0.08 * texture, 0.1 + 0.03 * texture)
    image = np.where(rim, 0.3 * image + 0.05, image)
    image = ndi.gaussian_filter(image, 0.6)
    if noise > 0:
        image = image + noise * rng.standard_normal(shape)
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def make_instances(n_images=4, shape=(128, 128), n_instances=(5, 15), kind="blobs", overlap=False,
                   noise=0.1, random_state=None):
    """Draw synthetic images of objects with their instance labels.

    Parameters
    ----------
    n_images : int, default=4
        Number of images.
    shape : tuple of int, default=(128, 128)
        Image size (H, W).
    n_instances : int or tuple of int, default=(5, 15)
        Number of objects per image, or an inclusive range (low, high) to draw it
        from. For ``'blobs'`` a few tiny cells may be dropped, and for ``'ellipses'``
        placement may fail when the image is crowded, so the count can fall short of
        the drawn number (never below 1 on reasonable sizes); it is never above it.
    kind : {'blobs', 'ellipses'}, default='blobs'
        ``'blobs'``: densely packed touching irregular cells. ``'ellipses'``:
        elongated bent ellipses, separate unless ``overlap=True``.
    overlap : bool, default=False
        Let objects overlap. The result then carries ``masks`` (K, H, W) bool (the
        full objects) and ``ignore`` (pixels covered by several objects, which get
        label 0 in ``labels``, as with ``overlap='ignore'`` of
        :func:`~harmonic_seg.io.load_bbbc010`).
    noise : float, default=0.1
        Standard deviation of the additive Gaussian noise.
    random_state : int, numpy Generator, RandomState or None, default=None
        Seed for reproducible output.

    Returns
    -------
    Dataset
        ``images`` float32 (H, W) in [0, 1], ``labels`` int32 (H, W), ``names``
        ``'synthetic_000'``, ..., and with ``overlap=True`` ``masks`` and ``ignore``.

    Examples
    --------
    >>> from harmonic_seg.synthetic import make_instances
    >>> data = make_instances(n_images=2, shape=(64, 64), n_instances=(3, 6), random_state=0)
    >>> len(data), data.images[0].shape, data.labels[0].dtype
    (2, (64, 64), dtype('int32'))
    """
    check_positive(n_images, "n_images", integer=True)
    shape = check_shape_2d(shape, "shape")
    if min(shape) < 16:
        raise ValueError(f"shape must be at least (16, 16); got {shape}.")
    if isinstance(n_instances, numbers.Integral) and not isinstance(n_instances, bool):
        lo = hi = int(n_instances)
    else:
        try:
            lo, hi = (int(v) for v in n_instances)
        except (TypeError, ValueError):
            raise TypeError(f"n_instances must be an int or a (low, high) pair; got {n_instances!r}.") from None
    if not 1 <= lo <= hi:
        raise ValueError(f"n_instances must satisfy 1 <= low <= high; got {n_instances!r}.")
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}; got {kind!r}.")
    check_positive(noise, "noise", allow_zero=True)
    rng = _rng(random_state)

    images, labels, names, masks_out, ignore_out = [], [], [], [], []
    for i in range(int(n_images)):
        n = int(rng.integers(lo, hi + 1))
        if kind == "blobs":
            lab, masks = _blobs(rng, shape, n, overlap)
        else:
            masks = _ellipse_masks(rng, shape, n, overlap)
            lab, _ = masks_to_label_map(masks, "first")
            if not overlap:
                masks = None
        if overlap:
            lab, ign = masks_to_label_map(masks, "ignore")
            masks_out.append(masks)
            ignore_out.append(ign)
        images.append(_render(rng, shape, lab, masks, float(noise)))
        labels.append(lab.astype(np.int32, copy=False))
        names.append(f"synthetic_{i:03d}")
    return Dataset(
        images=images,
        labels=labels,
        names=names,
        masks=masks_out if overlap else None,
        ignore=ignore_out if overlap else None,
    )
