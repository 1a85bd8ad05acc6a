"""Geometric augmentation of whole images and label maps (numpy, vectorised).

Augmentations act on the *full* image and label map and define a new image
frame; target embeddings are computed in that frame before cropping (see
:mod:`harmonic_seg.nn.data`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["resize_bilinear", "resize_nearest", "random_scale_flip", "random_rotation", "random_crop_window"]


def _source_coords(n_out, n_in):
    """Half-pixel-centre source coordinates of ``n_out`` output pixels (align_corners=False)."""
    return (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5


def resize_bilinear(image, shape):
    """Bilinear resize of a (C, H, W) image to ``shape`` (same convention as torch, align_corners=False).

    Parameters
    ----------
    image : ndarray of shape (C, H, W)
    shape : tuple of int

    Returns
    -------
    resized : ndarray of shape (C, h, w), float32
    """
    c, h_in, w_in = image.shape
    h, w = int(shape[0]), int(shape[1])
    out = image.astype(np.float32, copy=False)
    if h != h_in:
        y = np.clip(_source_coords(h, h_in), 0, h_in - 1)
        y0 = np.floor(y).astype(np.intp)
        y1 = np.minimum(y0 + 1, h_in - 1)
        wy = (y - y0).astype(np.float32)[None, :, None]
        out = out[:, y0] * (1 - wy) + out[:, y1] * wy
    if w != w_in:
        x = np.clip(_source_coords(w, w_in), 0, w_in - 1)
        x0 = np.floor(x).astype(np.intp)
        x1 = np.minimum(x0 + 1, w_in - 1)
        wx = (x - x0).astype(np.float32)[None, None, :]
        out = out[:, :, x0] * (1 - wx) + out[:, :, x1] * wx
    return np.ascontiguousarray(out, dtype=np.float32)


def resize_nearest(array, shape):
    """Nearest-neighbour resize of the last two axes of ``array`` (labels, masks)."""
    h_in, w_in = array.shape[-2:]
    h, w = int(shape[0]), int(shape[1])
    yi = np.minimum(np.floor((np.arange(h) + 0.5) * (h_in / h)).astype(np.intp), h_in - 1)
    xi = np.minimum(np.floor((np.arange(w) + 0.5) * (w_in / w)).astype(np.intp), w_in - 1)
    return np.ascontiguousarray(array[..., yi[:, None], xi[None, :]])


def random_scale_flip(image, labels, ignore, rng, scale_range=(0.75, 1.33), flips=True):
    """Random isotropic scaling and left-right / up-down flips of a whole sample.

    Parameters
    ----------
    image : ndarray of shape (C, H, W), float32
    labels : ndarray of shape (H, W), int
    ignore : ndarray of shape (H, W), bool
    rng : numpy.random.Generator
    scale_range : tuple of float or None, default=(0.75, 1.33)
        The factor is drawn log-uniformly in this range; None disables scaling.
    flips : bool, default=True
        Flip left-right and up-down, each with probability 1/2.

    Returns
    -------
    image, labels, ignore : ndarrays in the augmented frame
    """
    if scale_range is not None and scale_range[0] != scale_range[1]:
        lo, hi = np.log(scale_range[0]), np.log(scale_range[1])
        f = float(np.exp(rng.uniform(lo, hi)))
    elif scale_range is not None:
        f = float(scale_range[0])
    else:
        f = 1.0
    h, w = labels.shape
    new = (max(1, int(round(h * f))), max(1, int(round(w * f))))
    if new != (h, w):
        image = resize_bilinear(image, new)
        labels = resize_nearest(labels, new)
        ignore = resize_nearest(ignore, new)
    if flips:
        lr, ud = rng.random(2) < 0.5
        if lr:
            image, labels, ignore = image[..., ::-1], labels[:, ::-1], ignore[:, ::-1]
        if ud:
            image, labels, ignore = image[..., ::-1, :], labels[::-1], ignore[::-1]
    return (
        np.ascontiguousarray(image, dtype=np.float32),
        np.ascontiguousarray(labels),
        np.ascontiguousarray(ignore),
    )


def random_rotation(image, labels, ignore, rng):
    """Rotation of a whole sample by an angle drawn uniformly in [0, 360) degrees.

    The new frame holds the whole rotated image (it grows by up to a factor
    of sqrt(2) along each axis); its pixels that come from outside the image
    are 0 in the image, background in the labels and ignored.

    Parameters
    ----------
    image : ndarray of shape (C, H, W), float32
    labels : ndarray of shape (H, W), int
    ignore : ndarray of shape (H, W), bool
    rng : numpy.random.Generator

    Returns
    -------
    image : ndarray of shape (C, H', W'), float32
    labels : ndarray of shape (H', W'), the dtype of ``labels``
    ignore : ndarray of shape (H', W'), bool
        The sample in the rotated frame of ``(H', W')`` pixels.
    """
    from scipy import ndimage as ndi

    angle = float(rng.uniform(0.0, 360.0))
    rot = lambda a, order: ndi.rotate(a, angle, axes=(-1, -2), reshape=True, order=order, cval=0,  # noqa: E731
                                      mode="constant", prefilter=False)
    image = rot(np.asarray(image, dtype=np.float32), 1)
    labels = rot(np.asarray(labels), 0)
    inside = rot(np.ones(ignore.shape, np.uint8), 0).astype(bool)
    ignore = rot(np.asarray(ignore, dtype=np.uint8), 0).astype(bool) | ~inside
    return np.ascontiguousarray(image), np.ascontiguousarray(labels), np.ascontiguousarray(ignore)


def random_crop_window(shape, crop_size, rng=None):
    """Top-left corner of a random (or, with ``rng=None``, centred) crop.

    Parameters
    ----------
    shape : tuple of int
        ``(H, W)`` of the image.
    crop_size : tuple of int
        ``(h, w)`` of the crop; along an axis where the image is smaller the
        corner is 0 (the crop is padded at the bottom/right).
    rng : numpy.random.Generator or None

    Returns
    -------
    (y0, x0) : tuple of int
    """
    corner = []
    for n, c in zip(shape, crop_size):
        slack = n - c
        if slack <= 0:
            corner.append(0)
        elif rng is None:
            corner.append(slack // 2)
        else:
            corner.append(int(rng.integers(0, slack + 1)))
    return tuple(corner)
