"""The small real samples shipped inside the package.

The nuclei image is BSD-3 (see ``data/NUCLEI2D_LICENSE.txt``); the worm wells are from BBBC010, CC BY 3.0
(see ``data/WORMS_BBBC010_LICENSE.txt``).
"""

from __future__ import annotations

from importlib import resources

import numpy as np

from .datasets import Dataset

__all__ = ["load_nuclei_sample", "load_worm_sample"]


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


def load_worm_sample():
    """20 wells of the BBBC010 C. elegans assay: binary foreground masks and the worms in them.

    The paper's BBBC010 protocol: the input is the binary foreground of a
    well, and the task is to tell the worms in it apart, where they touch and
    cross. Connected components of the mask merge every clump of worms into
    one instance, which is what the embedding has to undo. The first 16 wells
    are the first 16 of the data set's fixed training split, the last 4 the
    first 4 of its test split (chosen by their order in the split file, not by
    their content). Broad Bioimage Benchmark Collection, BBBC010v1 (Ljosa,
    Sokolnicki & Carpenter, Nature Methods 9(7):637, 2012), CC BY 3.0; see
    ``harmonic_seg/data/WORMS_BBBC010_LICENSE.txt``.

    Returns
    -------
    Dataset
        ``images``: uint8 (520, 696) masks (255 = worm); ``labels``: int32
        label maps of the worms (0 where two worms overlap); ``ignore``: bool
        maps of the overlap pixels; ``names``: the wells (e.g. ``"A02"``).
        ``images[:16]`` are for training, ``images[16:]`` for testing.
    """
    with resources.files("harmonic_seg").joinpath("data/worms_bbbc010.npz").open("rb") as f:
        with np.load(f) as npz:
            height, width = (int(v) for v in npz["shape"])
            fg = np.unpackbits(npz["foreground"], axis=-1)[..., :width].astype(bool)
            ignore = np.unpackbits(npz["ignore"], axis=-1)[..., :width].astype(bool)
            labels = npz["labels"].astype(np.int32)
            names = [str(n) for n in npz["names"]]
    images = [np.where(m, 255, 0).astype(np.uint8) for m in fg]
    return Dataset(images, list(labels), names, ignore=list(ignore))
