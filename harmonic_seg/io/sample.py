"""The small real sample shipped inside the package (BSD-3, see data/NUCLEI2D_LICENSE.txt)."""

from __future__ import annotations

from importlib import resources

import numpy as np

from .datasets import Dataset

__all__ = ["load_nuclei_sample"]


def load_nuclei_sample(tile=256):
    """A 512x512 fluorescence nuclei image (DSB2018, via stardist) with 125 labelled nuclei.

    Parameters
    ----------
    tile : int or None, default=256
        Split the image into non-overlapping ``tile x tile`` tiles (a divisor
        of 512), giving several small training/test images; None keeps the
        whole image.

    Returns
    -------
    Dataset
        ``images`` uint16 (h, w), ``labels`` int32 label maps, ``names`` like
        ``"nuclei2d[0:256,256:512]"``.
    """
    with resources.files("harmonic_seg").joinpath("data/nuclei2d.npz").open("rb") as f:
        with np.load(f) as npz:
            image, labels = npz["image"], npz["labels"].astype(np.int32)
    if tile is None:
        return Dataset([image], [labels], ["nuclei2d"])
    tile = int(tile)
    if tile <= 0 or 512 % tile:
        raise ValueError(f"tile must be a positive divisor of 512 or None; got {tile!r}.")
    images, labs, names = [], [], []
    for y in range(0, 512, tile):
        for x in range(0, 512, tile):
            images.append(image[y : y + tile, x : x + tile].copy())
            labs.append(labels[y : y + tile, x : x + tile].copy())
            names.append(f"nuclei2d[{y}:{y + tile},{x}:{x + tile}]")
    return Dataset(images, labs, names)
