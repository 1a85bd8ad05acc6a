"""Intensity normalisation and layout helpers for images (numpy only)."""

from __future__ import annotations

import numpy as np

from ._validation import check_image

__all__ = ["percentile_normalize", "to_channels_first"]


def to_channels_first(image):
    """(H, W) or (H, W, C) -> float32 (C, H, W)."""
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[None]
    else:
        arr = np.moveaxis(arr, -1, 0)
    return np.ascontiguousarray(arr, dtype=np.float32)


def percentile_normalize(image, low=1.0, high=99.8, *, per_channel=True, eps=1e-6):
    """Map the ``low`` and ``high`` intensity percentiles of an image to 0 and 1.

    The field's convention (CSBDeep, StarDist, Cellpose): robust to hot pixels
    and to the bit depth of the microscope. Computed on the whole image, never
    per tile, so that tiled and untiled prediction see the same values.

    Parameters
    ----------
    image : array-like of shape (H, W) or (H, W, C)
    low, high : float, default=1.0, 99.8
        Percentiles in [0, 100], ``low < high``.
    per_channel : bool, default=True
        Normalise each channel on its own.
    eps : float, default=1e-6
        Guards against division by zero on constant images.

    Returns
    -------
    normalized : ndarray of shape (H, W) or (H, W, C), float32
    """
    image = check_image(image, "image")
    if not (0 <= low < high <= 100):
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100; got low={low!r}, high={high!r}.")
    arr = image.astype(np.float32, copy=False)
    axis = (0, 1) if (per_channel and arr.ndim == 3) else None
    lo, hi = np.percentile(arr, [low, high], axis=axis, keepdims=True)
    return ((arr - lo) / np.maximum(hi - lo, eps)).astype(np.float32, copy=False)
