"""Small input-validation helpers shared by the whole package (numpy only).

Every helper raises a :class:`TypeError` or :class:`ValueError` whose message
names the argument, what was expected and what was received, so that bad input
is rejected before any heavy work starts.
"""

from __future__ import annotations

import numbers
import re

import numpy as np

__all__ = [
    "check_device",
    "check_interval_pair",
    "check_masks",
    "check_label_map",
    "check_label_maps",
    "check_image",
    "check_images",
    "check_images_and_labels",
    "check_positive",
    "check_shape_2d",
]


def _describe(value):
    """Short description of ``value`` for error messages."""
    if isinstance(value, np.ndarray):
        return f"array of shape {value.shape} and dtype {value.dtype}"
    if isinstance(value, (list, tuple)):
        return f"{type(value).__name__} of length {len(value)}"
    return f"{type(value).__name__} {value!r}"[:200]


def as_array(value, name):
    """``np.asarray(value)``, with a ValueError naming ``name`` for ragged nested lists.

    numpy refuses lists such as ``[[1, 2], [3]]`` with a message about an
    "inhomogeneous shape" that does not say which argument was wrong.
    """
    try:
        return np.asarray(value)
    except ValueError as exc:
        raise ValueError(
            f"{name} could not be read as an array ({_describe(value)}): its nested lists have different "
            f"lengths or hold other sequences ({exc}). Pass a rectangular array, e.g. a numpy array."
        ) from None


def check_label_map(labels, name="labels", *, allow_float_integral=False):
    """Validate a 2-D integer label map and return it as an integer array.

    Parameters
    ----------
    labels : array-like of shape (H, W)
        Instance ids, 0 = background, non-negative integers.
    name : str, default="labels"
        Argument name used in error messages.
    allow_float_integral : bool, default=False
        Accept float arrays whose values are all whole numbers.

    Returns
    -------
    labels : ndarray of shape (H, W), integer dtype
    """
    if isinstance(labels, (str, bytes)) or labels is None:
        raise TypeError(f"{name} must be a 2-D integer array (H, W); got {_describe(labels)}.")
    arr = as_array(labels, name)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D label map of shape (H, W); got an array of shape {arr.shape}. "
            "For a 3-D stack, pass its 2-D planes as a list."
        )
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty; got shape {arr.shape}.")
    if not np.issubdtype(arr.dtype, np.integer):
        if (
            allow_float_integral
            and np.issubdtype(arr.dtype, np.floating)
            and np.all(np.isfinite(arr))
            and np.all(arr == np.round(arr))
        ):
            arr = arr.astype(np.int64)
        else:
            raise TypeError(
                f"{name} must hold integer instance ids (0 = background); got dtype {arr.dtype}. "
                "Convert with labels.astype(int) if the values are whole numbers."
            )
    if arr.min() < 0:
        raise ValueError(
            f"{name} must hold non-negative instance ids (0 = background); got minimum {arr.min()}."
        )
    if arr.dtype == np.uint64 and arr.max() > np.iinfo(np.int64).max:
        raise ValueError(
            f"{name} holds instance ids above {np.iinfo(np.int64).max} (got {arr.max()}); relabel it, "
            "e.g. with skimage.segmentation.relabel_sequential."
        )
    return arr


class ValidatedLabelMaps(list):
    """A list of label maps validated where they entered the library (the training set of ``fit``).

    :func:`check_label_maps` returns such a list as it is: the functions that
    a fit hands it to (the guide fitting, its separation score) check nothing
    again. Built only by the library, from maps it has just checked.
    """


def check_label_maps(label_maps, name="y"):
    """Validate a non-empty list of 2-D label maps (sizes may differ).

    A :class:`ValidatedLabelMaps` is returned as it is.

    Returns
    -------
    label_maps : list of ndarray
    """
    if isinstance(label_maps, ValidatedLabelMaps):
        return label_maps
    if isinstance(label_maps, np.ndarray) and label_maps.ndim == 2:
        raise TypeError(
            f"{name} must be a list of 2-D label maps; got a single 2-D array of shape "
            f"{label_maps.shape}. Wrap it in a list: [{name}]."
        )
    if not isinstance(label_maps, (list, tuple, np.ndarray)):
        raise TypeError(f"{name} must be a list of 2-D label maps; got {_describe(label_maps)}.")
    if len(label_maps) == 0:
        raise ValueError(f"{name} must contain at least one label map; got an empty sequence.")
    return [check_label_map(lab, f"{name}[{i}]") for i, lab in enumerate(label_maps)]


#: Largest image side (pixels) a shape argument may ask for.
MAX_SIDE = 2**20

#: Most channels an (H, W, C) image may have.
MAX_CHANNELS = 16


def check_image(image, name="image", *, n_channels=None):
    """Validate one image of shape (H, W) or (H, W, C) with finite values.

    A 3-D array is read as (H, W, C), channels last, with at most 16
    channels. One whose first axis is shorter than its last, such as
    (3, 512, 8), is refused: it looks like a stack of planes or a
    channels-first image (Z or C, H, W), and (H, W, C) would have an image
    with fewer rows than channels. Move the axis with ``np.moveaxis(im, 0, -1)``
    or pass the planes as a list of 2-D images.

    Parameters
    ----------
    image : array-like of shape (H, W) or (H, W, C)
    name : str, default="image"
    n_channels : int or None, default=None
        If given, the number of channels the image must have (1 for (H, W)).

    Returns
    -------
    image : ndarray of shape (H, W) or (H, W, C), numeric dtype
    """
    if isinstance(image, (str, bytes)) or image is None:
        raise TypeError(f"{name} must be an image array (H, W) or (H, W, C); got {_describe(image)}.")
    arr = as_array(image, name)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if not (np.issubdtype(arr.dtype, np.number)):
        raise TypeError(f"{name} must have a numeric dtype; got {arr.dtype}.")
    if np.iscomplexobj(arr):
        raise TypeError(f"{name} must be real-valued; got dtype {arr.dtype}.")
    if arr.ndim not in (2, 3):
        raise ValueError(
            f"{name} must be 2-D (H, W) or 2-D with channels last (H, W, C); got shape {arr.shape}."
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} must not be empty; got shape {arr.shape}.")
    if arr.ndim == 3 and arr.shape[2] > MAX_CHANNELS:
        raise ValueError(
            f"{name} has shape {arr.shape}: {arr.shape[2]} channels in the last axis. Images are "
            f"(H, W) or (H, W, C) with at most {MAX_CHANNELS} channels last; a 3-D stack must be passed as "
            f"a list of 2-D planes ([im[z] for z in range(im.shape[0])]), a channels-first image moved "
            "to channels last with np.moveaxis(im, 0, -1)."
        )
    if arr.ndim == 3 and arr.shape[0] < arr.shape[2]:
        raise ValueError(
            f"{name} has shape {arr.shape}, which looks like a stack of {arr.shape[0]} planes or a "
            f"channels-first image (Z or C, H, W): its first axis ({arr.shape[0]}) is shorter than its "
            f"last ({arr.shape[2]}), which would be read as {arr.shape[2]} channels. Images are (H, W) or "
            "(H, W, C) with channels last. Move a channel axis last with np.moveaxis(im, 0, -1); pass the "
            "planes of a stack as a list of 2-D images ([im[z] for z in range(im.shape[0])]) or pick one "
            "plane (im[z])."
        )
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values; clean or impute them first.")
    if n_channels is not None:
        c = 1 if arr.ndim == 2 else arr.shape[2]
        if c != n_channels:
            raise ValueError(
                f"{name} has {c} channel(s) (shape {arr.shape}) but the model was fitted on images "
                f"with {n_channels} channel(s)."
            )
    return arr


def check_images(images, name="X", *, n_channels=None):
    """Validate a non-empty list of images; all must have the same channel count."""
    if isinstance(images, np.ndarray) and images.ndim == 2:
        raise TypeError(
            f"{name} must be a list of images; got a single 2-D array of shape {images.shape}. "
            f"Wrap it in a list: [{name}]."
        )
    if not isinstance(images, (list, tuple, np.ndarray)):
        raise TypeError(f"{name} must be a list of images (H, W[, C]); got {_describe(images)}.")
    if len(images) == 0:
        raise ValueError(f"{name} must contain at least one image; got an empty sequence.")
    out = [check_image(im, f"{name}[{i}]", n_channels=n_channels) for i, im in enumerate(images)]
    chans = {1 if im.ndim == 2 else im.shape[2] for im in out}
    if len(chans) > 1:
        raise ValueError(f"all images in {name} must have the same number of channels; got {sorted(chans)}.")
    return out


def check_images_and_labels(images, label_maps, x_name="X", y_name="y"):
    """Validate paired lists of images and label maps of matching lengths and shapes."""
    images = check_images(images, x_name)
    label_maps = check_label_maps(label_maps, y_name)
    if len(images) != len(label_maps):
        raise ValueError(
            f"{x_name} and {y_name} must have the same length; got {len(images)} images and "
            f"{len(label_maps)} label maps."
        )
    for i, (im, lab) in enumerate(zip(images, label_maps)):
        if im.shape[:2] != lab.shape:
            raise ValueError(
                f"{y_name}[{i}] has shape {lab.shape} but {x_name}[{i}] has spatial shape "
                f"{im.shape[:2]}; each label map must match its image."
            )
    return images, label_maps


def check_positive(value, name, *, integer=False, allow_zero=False):
    """Validate a positive (or non-negative) real or integer scalar."""
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind):
        expected = "an integer" if integer else "a real number"
        raise TypeError(f"{name} must be {expected}; got {_describe(value)}.")
    if not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {bound}; got {value!r}.")
    return value


def check_shape_2d(shape, name="shape"):
    """Validate a (H, W) shape tuple of positive integers, each at most ``MAX_SIDE``.

    Whole floats such as ``64.0`` are accepted; fractions, NaN, infinities and
    sizes above ``MAX_SIDE`` are refused.
    """
    msg = f"{name} must be a pair of positive integers (H, W), each at most {MAX_SIDE}; got {shape!r}"[:300] + "."
    try:
        values = list(shape)
    except TypeError:
        raise TypeError(msg) from None
    if len(values) != 2 or not all(
        isinstance(v, (numbers.Real, np.number)) and not isinstance(v, (bool, np.bool_)) for v in values
    ):
        raise TypeError(msg)
    if not all(np.isfinite(v) and float(v) == int(v) for v in values):
        raise ValueError(msg)
    h, w = (int(v) for v in values)
    if h <= 0 or w <= 0 or h > MAX_SIDE or w > MAX_SIDE:
        raise ValueError(msg)
    return h, w


def check_interval_pair(value, name, *, low_min=None, high_max=None, low_inclusive=True, strict=False):
    """Check an optional ``(low, high)`` pair: ``low_min <= low <= high <= high_max`` (``low < high`` if strict)."""
    if value is None:
        return
    ok = (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in value)
    )
    if ok:
        lo, hi = value
        ok = bool(np.isfinite(lo) and np.isfinite(hi)) and ((lo < hi) if strict else (lo <= hi))
        if low_min is not None:
            ok = ok and (lo >= low_min if low_inclusive else lo > low_min)
        if high_max is not None:
            ok = ok and hi <= high_max
    if not ok:
        lower = "" if low_min is None else f"{low_min} {'<=' if low_inclusive else '<'} "
        upper = "" if high_max is None else f" <= {high_max}"
        raise ValueError(
            f"{name} must be None or (low, high) with {lower}low {'<' if strict else '<='} high{upper}, both "
            f"finite; got {value!r}."
        )


def check_masks(masks, shapes, name="foreground", ref_name="X", *, allow_none=False):
    """Check an optional list of boolean-like masks, one per image of the given (H, W) shapes.

    With ``allow_none``, single entries may be None (no mask for that image).

    Returns
    -------
    masks : list of ndarray or None
    """
    if masks is None:
        return None
    if len(masks) != len(shapes):
        raise ValueError(f"{name} must have one mask per image; got {len(masks)} masks for {len(shapes)} images.")
    masks = [m if (m is None and allow_none) else as_array(m, f"{name}[{i}]") for i, m in enumerate(masks)]
    for i, (m, shape) in enumerate(zip(masks, shapes)):
        if m is not None and m.shape != tuple(shape):
            raise ValueError(f"{name}[{i}] has shape {m.shape} but {ref_name}[{i}] has spatial shape {tuple(shape)}.")
    return masks


_DEVICE_PATTERN = re.compile(r"(auto|cpu|mps|cuda(:[0-9]+)?)")


def check_device(device, name="device", *, require_available=True, resolve=False):
    """Validate a torch device name before any work uses it.

    Parameters
    ----------
    device : str or torch.device
        "auto" (a CUDA GPU when available, else the CPU), "cpu", "cuda",
        "cuda:k" (GPU number k) or "mps" (Apple GPUs).
    name : str, default="device"
        Argument name used in error messages.
    require_available : bool, default=True
        Also refuse a GPU that this torch cannot use (no CUDA build, no
        driver, no such GPU number). Imports torch only then.
    resolve : bool, default=False
        Return "cuda" or "cpu" for "auto".

    Returns
    -------
    device : str
        The device name (lower case; "auto" resolved when ``resolve``).
    """
    if not isinstance(device, str) and type(device).__name__ == "device" and hasattr(device, "type"):
        device = str(device)  # a torch.device
    if not isinstance(device, str):
        raise TypeError(
            f"{name} must be a string such as 'auto', 'cpu' or 'cuda'; got {_describe(device)}."
        )
    dev = device.strip().lower()
    if not _DEVICE_PATTERN.fullmatch(dev):
        raise ValueError(
            f"{name} must be 'auto', 'cpu', 'cuda', 'cuda:k' (k the number of a GPU) or 'mps'; got {device!r}. "
            "Use 'cuda' for an NVIDIA GPU, 'cpu', or 'auto' for a GPU when there is one."
        )
    if not (require_available or resolve) or dev == "cpu":
        return dev
    import torch

    if dev == "auto":
        return ("cuda" if torch.cuda.is_available() else "cpu") if resolve else dev
    if dev.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(
                f"{name}={device!r} but this torch ({torch.__version__}) has no CUDA GPU to use "
                "(torch.cuda.is_available() is False: a CPU-only build, or no GPU or driver). "
                f"Use {name}='cpu', or {name}='auto' to use a GPU only when there is one."
            )
        index = int(dev.split(":")[1]) if ":" in dev else 0
        count = torch.cuda.device_count()
        if index >= count:
            raise ValueError(
                f"{name}={device!r} but this machine has {count} CUDA GPU(s), numbered 0 to {count - 1}; "
                f"use {name}='cuda' for the first one, or {name}='auto'."
            )
    elif dev == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(
                f"{name}='mps' but this torch cannot use an Apple GPU (torch.backends.mps.is_available() "
                f"is False); use {name}='cpu' or {name}='auto'."
            )
    return dev
