"""Checks that :class:`~harmonic_seg.HarmonicSegmenter` runs before any heavy work (numpy only).

``fit`` calls them before stage 1 (the guide functions) so that a setting
the network cannot train with (a device torch cannot use, images or crops too
small for the U-Net's depth, values float32 cannot hold) is refused with a
message, never discovered after minutes of work or as an error deep in torch.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from ._validation import check_device, check_interval_pair
from .preprocessing import _normalized, scaled_shape, to_channels_first

logger = logging.getLogger(__name__)

__all__ = [
    "check_crop_size",
    "check_extra_params",
    "check_network_fit",
    "clip_crop_size",
    "min_crop_size",
    "min_image_side",
    "prepare_images",
]

#: Largest ``scale`` (an image enlarged more than this is certainly a mistake).
MAX_SCALE = 100.0

#: Smallest image side (after ``scale``) the segmenter trains on, whatever the depth.
MIN_IMAGE_SIDE = 8
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def min_image_side(depth):
    """Smallest side of a training image for a U-Net of ``depth``: ``max(2**depth, 8)``."""
    return max(2 ** int(depth), MIN_IMAGE_SIDE)


def min_crop_size(depth):
    """Smallest crop for a U-Net of ``depth``: its deepest level keeps 2 x 2 pixels, ``2 * 2**depth``."""
    return 2 ** (int(depth) + 1)


def check_crop_size(crop_size, depth, *, name="crop_size"):
    """Refuse a crop whose deepest U-Net level would be a single pixel.

    A crop of ``crop_size`` is halved ``depth`` times; at 1 x 1 pixel batch
    normalisation (and instance normalisation) has one value per channel and
    torch fails once training has started.
    """
    need = min_crop_size(depth)
    if crop_size < need:
        raise ValueError(
            f"{name}={crop_size} is too small for depth={depth}: the network halves a crop {depth} times and "
            f"its deepest level must keep at least 2 x 2 pixels (normalisation needs more than one value per "
            f"channel), so {name} must be at least {need} (2 * 2**depth). Use {name}={need} or more, or a "
            "smaller depth."
        )


def clip_crop_size(crop_size, shapes, minimum=1):
    """The crop side used for training images of the given (H, W) shapes.

    A crop larger than the longest side of every image would only add
    padding (ignored by the loss, but computed and stored): it is clipped to
    that side, and never below ``minimum``.
    """
    longest = max(max(int(s[0]), int(s[1])) for s in shapes)
    return int(min(int(crop_size), max(longest, int(minimum))))


def check_extra_params(est, *, fitted=False):
    """The parameter rules ``_parameter_constraints`` cannot express (device availability included).

    With ``fitted`` (``predict`` and the like, on parameters possibly set
    after fit), ``device`` is only checked for its form: the network runs
    where ``fit`` or ``load`` put it.
    """
    check_interval_pair(est.percentiles, "percentiles", low_min=0, high_max=100, strict=True)
    from ._train_params import EXTRA_RULES, TRAINING_PARAMETERS  # the training parameters' rules, TrainConfig's too

    for name, rule in EXTRA_RULES.items():
        if name in TRAINING_PARAMETERS:  # the nested options' own: checked by _validate_params (options.py)
            rule(getattr(est, name), name)
    check_device(est.device, "device", require_available=not fitted)
    if not fitted:  # training will call them: hooks missing are refused now, not once training has begun
        from .nn._train_utils import _check_callbacks

        _check_callbacks(est.callbacks)


def check_network_fit(est, images, name="X", *, scale=None):
    """Refuse training images that ``scale`` makes too small for the network, and crops too small for it.

    Parameters
    ----------
    est : HarmonicSegmenter
    images : list of ndarray of shape (H, W) or (H, W, C)
        Validated training images, before ``scale``.
    name : str, default="X"
    scale : float or None, default=None
        The resolved scale (``scale="auto"`` chosen, or a fitted model's);
        None: ``est.scale``.
    """
    scale = est.scale if scale is None else scale
    from .options import resolved

    depth = int(resolved(est, "network").depth)
    need = min_image_side(depth)
    shapes = [im.shape[:2] for im in images]
    reduced = [scaled_shape(sh, scale) for sh in shapes]
    i = int(np.argmin([min(r) for r in reduced]))
    if min(reduced[i]) < need:
        smallest = min(shapes[i])
        if scale != 1:
            how = (
                f"scale={scale!r} reduces {name}[{i}] of shape {tuple(shapes[i])} to "
                f"{reduced[i][0]} x {reduced[i][1]} pixels"
            )
            fix = f"use scale >= {math.ceil(need / smallest * 1000) / 1000:g} or a smaller depth"
        else:
            how = f"{name}[{i}] has shape {tuple(shapes[i])}"
            fix = "use larger images (or scale > 1) or a smaller depth"
        raise ValueError(
            f"{how}, smaller than the {need} x {need} pixels the network needs (2**depth = {2**depth} with "
            f"depth={depth}, and at least {MIN_IMAGE_SIDE}); {fix}."
        )
    check_crop_size(est.crop_size, depth)


def _check_float32_range(image, name):
    if np.issubdtype(image.dtype, np.floating) and image.dtype.itemsize > 4 and image.size:
        peak = float(np.max(np.abs(image)))
        if peak > _FLOAT32_MAX:
            raise ValueError(
                f"{name} holds values up to {peak:.3g}, beyond float32's range (3.4e38) in which the network "
                "computes; with percentiles=None images are fed as they are. Rescale them "
                f"(e.g. {name} / np.abs({name}).max()) or set percentiles, e.g. percentiles=(1.0, 99.8)."
            )


def prepare_images(images, percentiles, name="X"):
    """Validated (H, W[, C]) images -> normalised float32 (C, H, W) arrays.

    The images come from :func:`~harmonic_seg._validation.check_images` and
    are not checked again. With ``percentiles`` each image is normalised (in
    float64, :func:`~harmonic_seg.preprocessing.percentile_normalize`) and
    cast to float32 once, channels first; with None it is cast to float32 as
    it is, after checking that float32 can hold its values.
    """
    out = []
    for i, im in enumerate(images):
        if percentiles is not None:
            im = _normalized(im, *percentiles, name=f"{name}[{i}]")
        else:
            _check_float32_range(im, f"{name}[{i}]")
        out.append(to_channels_first(im))
    return out
