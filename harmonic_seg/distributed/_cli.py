"""``harmonic-seg predict MODEL IMAGE.zarr --out LABELS.zarr``: the command line's blockwise branch.

Kept here so that :mod:`harmonic_seg.cli` only adds its options and a call;
printing stays in :mod:`harmonic_seg.cli` (dask's progress bar prints itself).
"""

from __future__ import annotations

import logging
from pathlib import Path

logger = logging.getLogger(__name__)


def is_zarr(path):
    """Whether ``path`` names a Zarr array (a ``.zarr`` folder or URL) rather than a folder or glob of images."""
    return str(path).rstrip("/\\").lower().endswith(".zarr")


def predict_zarr(args):
    """Segment the Zarr image ``args.images`` into the Zarr array ``args.out`` on a dask cluster.

    The cluster is the scheduler at ``args.scheduler`` or, without one, a
    ``LocalCluster`` of ``args.workers`` processes (all cores by default)
    with one thread each, closed at the end. The network of every worker runs
    one torch thread per worker thread unless the model sets ``num_threads``.

    Returns
    -------
    summary : dict
        ``n_instances``, ``shape``, ``chunks``, ``workers`` and the stitching figures.
    """
    from ..segmenter import HarmonicSegmenter
    from .blockwise import _require, predict_to_zarr

    src, dst = Path(args.images), Path(args.out)
    if "://" not in str(args.images) and not src.exists():
        raise FileNotFoundError(f"{src} does not exist (a Zarr array: a folder ending in .zarr)")
    if dst.exists() and not args.overwrite:
        raise FileExistsError(f"{dst} exists; pass --overwrite to replace it")
    seg = HarmonicSegmenter.load(args.model, device=args.device)
    if args.tile_size is not None:
        seg.set_params(tiling__size=args.tile_size)
    distributed = _require("distributed")
    cluster = None
    if args.scheduler:
        client = distributed.Client(args.scheduler)
    else:
        cluster = distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                                           dashboard_address=":0")
        client = distributed.Client(cluster)
    try:
        threads = client.nthreads()
        if seg.num_threads is None:
            seg.set_params(num_threads=max(1, min(threads.values(), default=1)))
        logger.info("dask cluster: %d worker(s), %d thread(s)", len(threads), sum(threads.values()))
        out = predict_to_zarr(seg, str(src) if "://" not in str(args.images) else args.images, str(dst),
                              chunks=args.chunk_size, overlap=args.overlap, stitch=args.stitch,
                              overwrite=args.overwrite, progress=True)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return {"n_instances": int(out.attrs["n_instances"]), "shape": tuple(out.shape), "chunks": tuple(out.chunks),
            "workers": len(threads), "stitching": dict(out.attrs["stitching"])}
