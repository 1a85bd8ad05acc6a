"""Intensity normalisation and layout helpers for images (numpy only)."""

from __future__ import annotations

import numpy as np

from ._validation import check_image

__all__ = [
    "percentile_normalize",
    "rescale_channels_first",
    "rescale_labels",
    "rescale_training_set",
    "scaled_shape",
    "to_channels_first",
]


def scaled_shape(shape, scale):
    """``(round(H * scale), round(W * scale))``, at least 1 x 1."""
    return tuple(max(1, int(round(n * scale))) for n in shape[:2])


def rescale_channels_first(array, shape):
    """Resize a (C, H, W) array to (C, *shape) with bilinear interpolation.

    Anti-aliased (Gaussian pre-filter) when shrinking, so that reducing an
    image does not alias its texture. Used for the network's input (images
    reduced by ``HarmonicSegmenter(scale=...)``) and its output (embeddings
    and foreground probabilities brought back to the input size).

    Parameters
    ----------
    array : ndarray of shape (C, H, W)
    shape : tuple of int (H', W')

    Returns
    -------
    resized : ndarray of shape (C, H', W'), float32
    """
    from skimage.transform import resize

    arr = np.asarray(array, dtype=np.float32)
    if arr.shape[1:] == tuple(shape):
        return arr
    shrink = shape[0] < arr.shape[1] or shape[1] < arr.shape[2]
    out = resize(arr, (arr.shape[0], *shape), order=1, mode="edge", anti_aliasing=shrink, preserve_range=True)
    return np.ascontiguousarray(out, dtype=np.float32)


def rescale_labels(labels, shape):
    """Resize a label map (or a boolean mask) to ``shape`` by nearest neighbour.

    Ids are never blended; an instance thinner than the new pixel size may
    vanish.

    Parameters
    ----------
    labels : ndarray of shape (H, W), integer or bool
    shape : tuple of int (H', W')

    Returns
    -------
    resized : ndarray of shape (H', W'), same dtype
    """
    labels = np.asarray(labels)
    if labels.shape == tuple(shape):
        return labels
    h, w = labels.shape
    # centres of the new pixels in the old grid, as resize(order=0) would place them, but exact for ids
    rows = np.minimum(((np.arange(shape[0]) + 0.5) * h / shape[0]).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(shape[1]) + 0.5) * w / shape[1]).astype(np.int64), w - 1)
    return np.ascontiguousarray(labels[np.ix_(rows, cols)])


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

    Notes
    -----
    Computed in float64 for float64 and wide integer images (float32 for
    the others), then cast to float32: values beyond float32's range (about
    3.4e38), such as 1e300, are normalised before the cast instead of
    overflowing to infinity. A ``ValueError`` says so when even the
    normalised values exceed float32's range (outliers far beyond the
    percentiles).
    """
    return _percentile_normalize(image, low, high, per_channel=per_channel, eps=eps)


def _percentile_normalize(image, low, high, *, per_channel=True, eps=1e-6, name="image"):
    """:func:`percentile_normalize`, with errors naming the image ``name``."""
    image = check_image(image, name)
    if not (0 <= low < high <= 100):
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100; got low={low!r}, high={high!r}.")
    return _normalized(image, low, high, per_channel=per_channel, eps=eps, name=name).astype(np.float32, copy=False)


def _normalized(image, low, high, *, per_channel=True, eps=1e-6, name="image"):
    """:func:`percentile_normalize` of an image already validated (``check_image``), before the cast to float32.

    Returns the normalised values in float64 (the percentiles are float64),
    so that the caller casts them to float32 once, in the layout it needs
    (:func:`to_channels_first`). Unsigned integer images are not copied to
    float32 first: their values, their percentiles (interpolated between
    sorted neighbours, ``high >= low``) and the differences are exact in
    float64 either way, so the result is the same, bit for bit.
    """
    work = np.result_type(image.dtype, np.float32)  # float64 for float64 and 32/64-bit integers
    arr = image if (image.dtype.kind == "u" and work == np.float32) else image.astype(work, copy=False)
    axis = (0, 1) if (per_channel and arr.ndim == 3) else None
    lo, hi = np.percentile(arr, [low, high], axis=axis, keepdims=True)
    with np.errstate(over="ignore", invalid="ignore"):
        out = (arr - lo) / np.maximum(hi - lo, eps)
    if work != np.float32 and not np.all(np.abs(out) <= np.finfo(np.float32).max):
        raise ValueError(
            f"{name} has values that, normalised between its {low} and {high} percentiles, exceed float32's "
            f"range (up to {np.nanmax(np.abs(out)):.3g} times the percentile span; float32 holds 3.4e38). "
            "Clip the outliers first (np.clip) or choose other percentiles."
        )
    return out


def rescale_training_set(images, labels, ignore, scale):
    """Images, label maps and ignore masks as the network sees them with ``scale``.

    Parameters
    ----------
    images : list of ndarray of shape (C, H, W)
    labels : list of ndarray of shape (H, W)
    ignore : list of (ndarray of shape (H, W) or None) or None
    scale : float
        Resize factor; 1 returns the inputs unchanged.

    Returns
    -------
    images, labels, ignore
        Resized bilinearly (images) and by nearest neighbour (labels, masks).
    """
    if scale == 1:
        return images, labels, ignore
    shapes = [scaled_shape(lab.shape, scale) for lab in labels]
    images = [rescale_channels_first(c, sh) for c, sh in zip(images, shapes)]
    out_labels = [rescale_labels(lab, sh) for lab, sh in zip(labels, shapes)]
    if ignore is not None:
        ignore = [None if ig is None else rescale_labels(np.asarray(ig, dtype=bool), sh) for ig, sh in zip(ignore, shapes)]
    if not any(lab.any() for lab in out_labels):
        raise ValueError(f"scale={scale!r} leaves no labelled pixel in y; choose a larger scale.")
    return images, out_labels, ignore
