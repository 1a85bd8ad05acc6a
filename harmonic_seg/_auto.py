"""The automatic choices of :class:`~harmonic_seg.HarmonicSegmenter` (numpy; torch only where a device is asked).

* ``scale="auto"``: from the size of the training objects (:func:`auto_scale`);
* ``base_width="auto"``: from the device the network trains on (:func:`resolve_base_width`);
* ``amp="auto"``: resolved where the network runs (:func:`harmonic_seg.nn.resolve_amp`).

All three are the defaults.
"""

from __future__ import annotations

import logging
import math

import numpy as np

__all__ = [
    "AUTO_SCALE_DIAMETER",
    "AUTO_SCALE_RANGE",
    "BASE_WIDTHS",
    "auto_scale",
    "object_diameters",
    "resolve_base_width",
]

logger = logging.getLogger(__name__)

#: Size of the median object, in pixels of the network's input, that ``scale="auto"`` aims at. With the
#: size of :func:`object_diameters` it gives the scales of the hand recipes: 0.5 for worms (BBBC010, median
#: size 66 px) and leaves (CVPPP A1, 60 px), 0.25 for DIC-HeLa cells (131 px), 1 for nuclei (24 px).
AUTO_SCALE_DIAMETER = 32.0
#: Bounds of ``scale="auto"``: never enlarged, never reduced more than eight times.
AUTO_SCALE_RANGE = (0.125, 1.0)
#: ``base_width="auto"`` per device type (others: the GPU width).
BASE_WIDTHS = {"cpu": 16, "cuda": 32}


def object_diameters(label_maps):
    """Size of every instance: the geometric mean of its equivalent diameter and its length.

    The equivalent diameter is that of the disc of the same area,
    ``sqrt(4 area / pi)``; the length is the major axis of the ellipse of the
    same second moments, ``4 sqrt(lambda_max)``. For a disc both are its
    diameter; for an elongated object (a worm) the mean lies between its
    width and its length.

    Parameters
    ----------
    label_maps : list of ndarray of shape (H, W)
        Integer label maps, 0 = background (ids may be sparse).

    Returns
    -------
    ndarray of shape (K,)
        One size per instance of all maps, in pixels.
    """
    out = []
    for lab in label_maps:
        lab = np.asarray(lab)
        ids, inv = np.unique(lab.ravel(), return_inverse=True)
        if not np.any(ids != 0):
            continue
        yy, xx = np.indices(lab.shape, dtype=np.float64)
        yy, xx = yy.ravel(), xx.ravel()
        n = np.bincount(inv).astype(np.float64)
        my, mx = np.bincount(inv, yy) / n, np.bincount(inv, xx) / n
        dy, dx = yy - my[inv], xx - mx[inv]
        # second moments of every instance; 1/12 is that of a pixel (a one-pixel object has size 1)
        cyy = np.bincount(inv, dy * dy) / n + 1 / 12
        cxx = np.bincount(inv, dx * dx) / n + 1 / 12
        cxy = np.bincount(inv, dy * dx) / n
        half = (cyy + cxx) / 2
        lam = half + np.sqrt(np.maximum(half**2 - (cyy * cxx - cxy**2), 0))
        keep = ids != 0
        equivalent = np.sqrt(4 * n[keep] / np.pi)
        length = 4 * np.sqrt(lam[keep])
        out.append(np.sqrt(equivalent * length))
    return np.concatenate(out) if out else np.zeros(0)


def auto_scale(label_maps, *, min_scale=None):
    """``scale="auto"``: the factor that brings the median object to :data:`AUTO_SCALE_DIAMETER` pixels.

    ``AUTO_SCALE_DIAMETER / median(object_diameters(label_maps))``, rounded
    to a quarter octave (a power of ``2**0.25``: 1, 0.84, 0.71, 0.59, 0.5,
    ...), so that a few more or fewer objects do not change it, and clipped
    to :data:`AUTO_SCALE_RANGE`. Label maps without instances give 1.

    Parameters
    ----------
    label_maps : list of ndarray of shape (H, W)
        The training label maps at full size.
    min_scale : float or None, default=None
        Smallest scale allowed besides the range (e.g. the one that keeps
        every training image large enough for the network).

    Returns
    -------
    scale : float
    median_size : float
        The median object size in pixels (nan without instances).
    """
    sizes = object_diameters(label_maps)
    lo, hi = AUTO_SCALE_RANGE
    if min_scale is not None:
        lo = min(hi, max(lo, float(min_scale)))
    if sizes.size == 0:
        return hi, math.nan
    median = float(np.median(sizes))
    raw = AUTO_SCALE_DIAMETER / median
    rounded = 2.0 ** (round(4 * math.log2(raw)) / 4)
    return float(min(hi, max(lo, rounded))), median


def resolve_base_width(base_width, device):
    """``base_width="auto"``: :data:`BASE_WIDTHS` of the device type (16 on CPU, 32 on GPUs); an int as it is."""
    if isinstance(base_width, str):
        kind = str(device).split(":")[0]
        return int(BASE_WIDTHS.get(kind, BASE_WIDTHS["cuda"]))
    return int(base_width)
