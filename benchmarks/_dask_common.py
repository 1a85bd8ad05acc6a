"""What the sub-commands of ``bench_dask.py`` share: the nuclei mosaics, their ground truth, the model, the results.

The mosaics are made of mirrored copies of the stardist nuclei image
(``stardist_nuclei2d/img2d.tif``, 512x512, DSB2018, BSD-3): every other copy
is flipped (rows and columns), so that the mosaic is continuous across the
copies' seams and no two neighbouring copies are the same.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
DEFAULT_DATA = HERE.parents[1] / "shared" / "data"


def load_nuclei(data):
    """The nuclei image and its label map from the data folder ``data``."""
    import tifffile

    folder = Path(data) / "stardist_nuclei2d"
    if not folder.is_dir():
        sys.exit(f"real data not found at {folder}; pass --data")
    return tifffile.imread(folder / "img2d.tif"), tifffile.imread(folder / "mask2d.tif")


def mirrored(tile, i, j):
    """Copy (i, j) of a mosaic: flipped up-down on odd rows, left-right on odd columns (continuous seams)."""
    return tile[:: -1 if i % 2 else 1, :: -1 if j % 2 else 1]


def mosaic(tile, size):
    """A size x size mosaic of mirrored copies of ``tile`` (in memory)."""
    th, tw = tile.shape[:2]
    rows = [np.concatenate([mirrored(tile, i, j) for j in range(-(-size // tw))], axis=1)
            for i in range(-(-size // th))]
    return np.ascontiguousarray(np.concatenate(rows, axis=0)[:size, :size])


def label_mosaic(labels, size):
    """The ground truth of :func:`mosaic`: the same copies, every copy's ids made unique."""
    th, tw = labels.shape
    n = int(labels.max()) + 1
    cols = -(-size // tw)
    rows = [np.concatenate([np.where(mirrored(labels, i, j) > 0, mirrored(labels, i, j) + (i * cols + j) * n, 0)
                            for j in range(cols)], axis=1) for i in range(-(-size // th))]
    return np.ascontiguousarray(np.concatenate(rows, axis=0)[:size, :size]).astype(np.int64)


def crop_box(size, crop=2048):
    """A central window of at most ``crop`` pixels that starts on a multiple of 1024 (two copies): the mosaic
    and its ground truth there equal the first ``crop`` x ``crop`` pixels of any mosaic."""
    c = min(crop, size)
    y0 = ((size - c) // 2 // 1024) * 1024
    return y0, y0 + c


def ground_truth(tile_truth, size, labels_crop=None):
    """Instances of the ground truth of a ``size`` mosaic, and the F1 of labels over :func:`crop_box`."""
    per_copy = len(np.unique(tile_truth)) - 1
    out = {"instances_per_copy": per_copy, "copies": size * size / tile_truth.size,
           "instances": int(round(per_copy * size * size / tile_truth.size))}
    if labels_crop is not None:
        c = labels_crop.shape[0]
        out["f1_crop"] = f1_against(label_mosaic(tile_truth, c), labels_crop)
    return out


def f1_against(truth, labels):
    """Matching F1 at IoU 0.5 against the ground truth (StarDist's matching)."""
    from harmonic_seg.metrics import matching

    return float(matching(truth, labels, thresh=0.5).f1)


def zarr_mosaic(tile, size, path, chunk):
    """The same mosaic written to a Zarr array row of copies by row of copies (bounded memory)."""
    import zarr

    if Path(path).exists():
        z = zarr.open_array(store=str(path), mode="r")
        if z.shape == (size, size):
            return path
    z = zarr.open_array(store=str(path), mode="w", shape=(size, size), chunks=(chunk, chunk), dtype=tile.dtype)
    th = tile.shape[0]
    for i in range(-(-size // th)):
        row = np.concatenate([mirrored(tile, i, j) for j in range(-(-size // tile.shape[1]))], axis=1)
        y0 = i * th
        z[y0:min(size, y0 + th), :] = row[: min(size, y0 + th) - y0, :size]
    return path


def _bench_common():
    """benchmarks/_common.py, by its path (examples/ has a _common.py of its own)."""
    spec = importlib.util.spec_from_file_location("_bench_common", HERE / "_common.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def machine():
    """The machine's description, with a note that the CPU was shared."""
    info = _bench_common().machine()
    info["note"] = ("2 CPU cores shared with other jobs running at the same time: times are upper bounds and vary "
                    "from run to run")
    return info


def write(results, name, payload):
    """Write ``payload`` to ``<results>/dask_<name>.json`` (``results``: the folder of ``--results``)."""
    path = _bench_common().write_json(Path(results) / f"dask_{name}.json", payload)
    print(f"wrote {path}")


def load_model(path, threads=1):
    """The saved model, on ``threads`` torch threads, in float32 (``amp=False``): blockwise and whole-image
    embeddings are then equal to the last bit (bfloat16 rounds differently where the tiles differ)."""
    from harmonic_seg import HarmonicSegmenter

    seg = HarmonicSegmenter.load(path)
    return seg.set_params(num_threads=threads, amp=False)


def clustering_settings(seg):
    """The model's settings that the results depend on."""
    from harmonic_seg import Tiling

    keys = ("bandwidth_", "min_size_", "metric_", "core_fraction_", "fg_threshold_", "recovery_")
    out = {k: getattr(seg, k, None) for k in keys}
    out.update(split_components=seg.clustering_.split_components, receptive_field=seg.module_.receptive_field,
               depth=seg.module_.depth, base_width=seg.base_width_, loss=seg.loss, scale=getattr(seg, "scale_",
                                                                                                 seg.scale),
               amp=seg.amp, precision="float32" if seg.amp is False else f"amp={seg.amp!r}",
               tile_size=(seg.tiling or Tiling()).size, mode_search_max_points=max_points())
    return out


def max_points():
    """``cluster_embeddings``'s ``max_points``: above it, the mode search runs in each connected component."""
    from harmonic_seg.clustering import cluster_embeddings

    return inspect.signature(cluster_embeddings).parameters["max_points"].default
