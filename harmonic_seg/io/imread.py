"""Reading images and label maps from disk, and writing label maps (numpy only).

Supported formats: TIFF (``.tif``/``.tiff``, read with :mod:`tifffile`) and PNG/JPEG
(``.png``/``.jpg``/``.jpeg``, read with Pillow).

Notes
-----
* Palette-indexed PNGs (Pillow mode ``'P'``) are returned as their *index* values,
  never converted to RGB: this is how indexed label maps (e.g. CVPPP
  ``plantNNN_label.png``) store instance ids.
* TIFFs compressed with a codec that :mod:`tifffile` cannot decode without the
  optional ``imagecodecs`` package (e.g. LZW, used by the Cell Tracking Challenge
  files) are read with Pillow instead, so ``imagecodecs`` is not required.
"""

from __future__ import annotations

import logging
import os
import struct
from pathlib import Path

import numpy as np

from .._validation import check_label_map

__all__ = ["read_image", "read_label_map", "write_label_map", "IMAGE_SUFFIXES"]

logger = logging.getLogger(__name__)

#: File name suffixes (lower case) understood by :func:`read_image`.
IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")
_TIFF = (".tif", ".tiff")


def _as_existing_file(path):
    """Return ``path`` as a :class:`~pathlib.Path`, raising if it is not a readable file."""
    if isinstance(path, bytes):
        path = path.decode()
    if not isinstance(path, (str, Path)):
        raise TypeError(f"path must be a str or pathlib.Path; got {type(path).__name__} {path!r}"[:300])
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"image file not found: {p.resolve()}")
    if not p.is_file():
        raise IsADirectoryError(f"expected an image file but got a directory: {p.resolve()}")
    if p.suffix.lower() not in IMAGE_SUFFIXES:
        raise ValueError(
            f"unsupported image format {p.suffix!r} for {p.resolve()}; expected one of "
            f"{', '.join(IMAGE_SUFFIXES)}."
        )
    return p


def _read_tiff(p):
    import tifffile

    try:
        arr = tifffile.imread(p)
    except (ValueError, struct.error, EOFError, IndexError, KeyError, OverflowError) as exc:  # damaged files
        if not isinstance(exc, ValueError) or "imagecodecs" not in str(exc):
            raise ValueError(f"could not read TIFF file {p.resolve()}: {type(exc).__name__}: {exc}") from exc
        logger.debug("tifffile needs imagecodecs for %s (%s); reading with Pillow", p, exc)
        arr = _read_tiff_pillow(p)
    # Drop leading singleton axes, e.g. (1, H, W) single-plane stacks.
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    return np.asarray(arr)


def _read_tiff_pillow(p):
    from PIL import Image, ImageSequence

    with Image.open(p) as im:
        frames = [np.asarray(_pil_to_array_mode(fr)) for fr in ImageSequence.Iterator(im)]
    return frames[0] if len(frames) == 1 else np.stack(frames)


def _pil_to_array_mode(im):
    """Return a Pillow image in a mode that converts losslessly to a numpy array."""
    if im.mode in ("1",):
        return im.convert("L")
    if im.mode in ("CMYK", "YCbCr", "LAB", "HSV", "PA"):
        return im.convert("RGBA" if im.mode == "PA" else "RGB")
    return im


def _read_pillow(p):
    from PIL import Image

    try:
        with Image.open(p) as im:
            im.load()
            mode = im.mode
            arr = np.asarray(_pil_to_array_mode(im))
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, Image.DecompressionBombError) as exc:  # damaged
        raise ValueError(f"could not read image file {p.resolve()}: {type(exc).__name__}: {exc}") from exc
    if mode == "1":
        arr = (arr > 0).astype(np.uint8)
    return arr, mode


def read_image(path, *, drop_alpha=True):
    """Read one image file into a numpy array.

    Parameters
    ----------
    path : str or pathlib.Path
        A ``.tif``/``.tiff`` (read with tifffile, or Pillow for codecs that tifffile
        cannot decode without ``imagecodecs``) or ``.png``/``.jpg``/``.jpeg`` file
        (read with Pillow).
    drop_alpha : bool, default=True
        Drop the alpha channel of RGBA (``(H, W, 4)`` becomes ``(H, W, 3)``) and
        grey+alpha (``(H, W, 2)`` becomes ``(H, W)``) PNG/JPEG images. TIFF samples
        are returned as stored.

    Returns
    -------
    image : ndarray of shape (H, W) or (H, W, C)
        The stored values in their stored dtype (e.g. uint8, uint16). Palette-indexed
        PNGs are returned as their index values (not converted to RGB); 1-bit images
        become uint8 0/1.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist (the message gives the full path).
    ValueError
        If the suffix is not supported or the file cannot be decoded.
    """
    p = _as_existing_file(path)
    if p.suffix.lower() in _TIFF:
        arr = _read_tiff(p)
        mode = None
    else:
        arr, mode = _read_pillow(p)
    if drop_alpha and arr.ndim == 3:
        if mode in ("RGBA", "LA", "PA"):
            arr = arr[..., :-1]
            if arr.shape[2] == 1:
                arr = arr[..., 0]
    return np.ascontiguousarray(arr)


def read_label_map(path):
    """Read a 2-D integer instance label map (0 = background).

    Parameters
    ----------
    path : str or pathlib.Path
        A ``.tif``/``.tiff`` or ``.png`` file holding instance ids: grey-level
        (8/16-bit), palette-indexed (the index is the id) or 1-bit. An RGB/RGBA file
        whose colour channels are all equal (a grey map saved as colour) is accepted
        and its first channel used. Float TIFFs with whole-number values are accepted.

    Returns
    -------
    labels : ndarray of shape (H, W), integer dtype

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the file is not 2-D, is an RGB colour-coded label image (colours must
        first be converted to ids), or holds negative values.
    TypeError
        If it holds non-integral values.
    """
    p = _as_existing_file(path)
    arr = read_image(p, drop_alpha=True)
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        colour = arr[..., :3]
        if np.array_equal(colour[..., 0], colour[..., 1]) and np.array_equal(colour[..., 0], colour[..., 2]):
            logger.debug("label map %s is stored as grey RGB; using its first channel", p)
            arr = colour[..., 0]
        else:
            raise ValueError(
                f"label map {p.resolve()} is an RGB colour-coded image (shape {arr.shape}); expected a "
                "2-D map of integer instance ids (grey-level, 16-bit or palette-indexed PNG, or TIFF). "
                "Convert colours to ids first, e.g. with np.unique(rgb.reshape(-1, 3), axis=0, "
                "return_inverse=True)."
            )
    if arr.ndim != 2:
        raise ValueError(
            f"label map {p.resolve()} must be 2-D (H, W); got an array of shape {arr.shape}."
        )
    return check_label_map(arr, name=f"label map {p.resolve()}", allow_float_integral=True)


def write_label_map(path, labels, *, overwrite=False):
    """Write a 2-D instance label map to a TIFF or 16-bit PNG file.

    Parameters
    ----------
    path : str or pathlib.Path
        Destination; the suffix picks the format: ``.tif``/``.tiff`` (uncompressed,
        uint16 when ids fit, else uint32) or ``.png`` (16-bit grey; ids must be < 65536).
    labels : array-like of shape (H, W)
        Non-negative integer instance ids.
    overwrite : bool, default=False
        Replace an existing file. By default an existing file is never overwritten.

    Returns
    -------
    path : pathlib.Path
        The written file.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    FileNotFoundError
        If the parent folder does not exist.
    ValueError
        If the suffix is not supported, or ids do not fit a PNG (>= 65536).
    """
    if isinstance(path, bytes):
        path = path.decode()
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or pathlib.Path; got {type(path).__name__} {path!r}"[:300])
    p = Path(path)
    suffix = p.suffix.lower()
    if p.is_dir():
        raise IsADirectoryError(f"path is a folder, not a label map file: {p.resolve()}")
    if suffix not in _TIFF + (".png",):
        raise ValueError(
            f"unsupported label map format {p.suffix!r} for {p}; expected .tif, .tiff or .png."
        )
    labels = check_label_map(labels, "labels")
    if p.exists() and not overwrite:
        raise FileExistsError(f"refusing to overwrite existing file {p.resolve()}; pass overwrite=True.")
    if not p.parent.is_dir():
        raise FileNotFoundError(f"folder for the label map does not exist: {p.parent.resolve()}")
    vmax = int(labels.max())
    if suffix == ".png":
        if vmax > np.iinfo(np.uint16).max:
            raise ValueError(
                f"labels has ids up to {vmax}, which do not fit a 16-bit PNG ({p}); the largest id "
                "must be < 65536. Write a .tif instead or relabel sequentially."
            )
        from PIL import Image

        Image.fromarray(np.ascontiguousarray(labels.astype(np.uint16))).save(p, format="PNG")
    else:
        import tifffile

        dtype = np.uint16 if vmax <= np.iinfo(np.uint16).max else np.uint32
        if vmax > np.iinfo(np.uint32).max:
            dtype = np.uint64
        tifffile.imwrite(p, labels.astype(dtype), photometric="minisblack")
    logger.debug("wrote label map %s (max id %d)", p, vmax)
    return p
