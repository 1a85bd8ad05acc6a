"""Blockwise prediction on dask: equivalence with whole-image prediction, memory and speed, the dask sweep.

Data
----
Real images only: the stardist nuclei image (``stardist_nuclei2d/img2d.tif``,
512x512, DSB2018, BSD-3) of the shared data folder (``--data``), tiled into
mosaics of any size with every other copy mirrored (rows and columns), so
that the mosaic is continuous across the copies' seams and no two
neighbouring copies are the same. Nothing is written to the repository but
the JSON results.

Sub-commands (each writes ``benchmarks/results/dask_<name>.json``)
--------------------------------------------------------------------
``train``
    A small network (depth 3, base width 8, 30 epochs of 10 minibatches of
    8 crops of 128x128, the harmonic loss, scale 1, float32) on the 16 tiles
    of 128x128 of the image, with the post-processing tuned on 3 of them;
    saved to ``--model``. Every sub-command runs the model in float32
    (``amp=False``), where blockwise and whole-image embeddings are equal to
    the last bit; the results say so (``model.precision``).
``embedding``
    A 2048x2048 mosaic: the embedding and foreground probability of every
    512x512 block over its context (the network run on the block's input
    region with its origin in the whole image) against the whole image's
    (maximum absolute difference).
``equivalence``
    A 2048x2048 mosaic: ``HarmonicSegmenter.predict`` on the whole image
    against ``predict_to_zarr`` (512x512 blocks, default overlap, dask's
    synchronous scheduler) with each stitching rule, the embedding rule's
    labels also checked against ``predict_blockwise``: adjusted Rand index
    over the foreground pixels of either, instance counts, whole-image
    instances that cross a block border and are split (two or more blockwise
    labels holding at least 10 % of it each) and blockwise labels that merge
    two whole-image instances, with ``predict``'s clustering as configured
    (above 20000 foreground pixels, a mode search in each connected component
    with all of its pixels); the whole image is also clustered with another
    mean-shift seed, the clustering's own variability.
``memory``
    Zarr mosaics of 4096^2, 8192^2 and 16384^2 (``--sizes``, written to
    ``--workdir``), each segmented by ``predict_to_zarr`` on a
    ``LocalCluster`` of 2 worker processes with one thread each (one torch
    thread per worker), 2048x2048 chunks (``--chunk``): total time, pixels per second and
    the peak resident memory of each worker process (psutil, polled every
    0.2 s). Beside them, ``predict`` in memory (one process, one torch thread)
    on the sizes of ``--in-memory``, its peak resident memory read from
    ``getrusage`` in a child process. Both with their instance counts per
    copy of the 512x512 image beside the ground truth's (125) and the F1
    against the ground truth over a central 2048x2048 window.
``stages``
    Seconds per stage of ``predict_to_zarr`` (normalisation, network,
    clustering, the rest of the block, stitching), as its output's
    ``attrs["seconds"]`` gives them, on one mosaic (``--size``, ``--chunk``),
    in one process with dask's synchronous scheduler.
``sweep``
    ``examples/dask_sweep.py``: the 4-setting, cv=2 grid search, sequential
    and on a ``LocalCluster``, best parameters compared.

Usage::

    python benchmarks/bench_dask.py train --model /tmp/dask_bench/model
    python benchmarks/bench_dask.py embedding --model /tmp/dask_bench/model
    python benchmarks/bench_dask.py equivalence --model /tmp/dask_bench/model
    python benchmarks/bench_dask.py memory --model /tmp/dask_bench/model --workdir /tmp/dask_bench
    python benchmarks/bench_dask.py stages --model /tmp/dask_bench/model --workdir /tmp/dask_bench
    python benchmarks/bench_dask.py sweep

``--results DIR`` writes the JSON files elsewhere (a smoke run that should
not replace the committed results). The sub-commands are in ``dask_equivalence.py``
(``embedding``, ``equivalence``) and ``dask_memory.py`` (``memory``), what they share
in ``_dask_common.py``; all of them use the public API of harmonic_seg only.

Long runs belong in the background with a log (``nohup ... > log 2>&1 &``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from _dask_common import DEFAULT_DATA, HERE, RESULTS, clustering_settings, load_model, load_nuclei, machine, write, \
    zarr_mosaic


def cmd_train(args):
    from harmonic_seg import HarmonicSegmenter, Network
    from harmonic_seg.clustering import EmbeddingClusterer

    image, labels = load_nuclei(args.data)
    tiles = [(image[y:y + 128, x:x + 128], labels[y:y + 128, x:x + 128]) for y in range(0, 512, 128)
             for x in range(0, 512, 128)]
    # the settings the results were measured with, pinned against later defaults: the harmonic loss, scale 1
    # (blockwise prediction needs it), float32 (blockwise and whole-image embeddings equal to the last bit)
    seg = HarmonicSegmenter(network=Network(depth=3, base_width=8), crop_size=128, batch_size=8, steps_per_epoch=10,
                            epochs=30,
                            learning_rate=3e-3, validation_fraction=0.17, tune_postprocessing=True,
                            clustering=EmbeddingClusterer(split_components=True), loss="harmonic", scale=1.0,
                            amp=False, num_threads=1, random_state=0)
    t0 = time.perf_counter()
    seg.fit([t[0] for t in tiles], [t[1] for t in tiles])
    seconds = time.perf_counter() - t0
    seg.save(args.model, overwrite=True)
    print(f"trained in {seconds:.0f} s; saved to {args.model}")
    write(args.results, "train", {"machine": machine(), "fit_seconds": seconds, "model": clustering_settings(seg),
                                  "command": "python benchmarks/bench_dask.py train --model MODEL"})


def cmd_stages(args):
    """Per-stage times of ``predict_to_zarr`` on one mosaic, in one process (dask's synchronous scheduler), from
    its output's ``attrs["seconds"]``."""
    import dask

    from harmonic_seg.distributed import predict_to_zarr

    seg = load_model(args.model)
    tile, tile_truth = load_nuclei(args.data)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    src = zarr_mosaic(tile, args.size, work / f"mosaic_{args.size}.zarr", args.chunk)
    names = {"normalise": "normalise", "network": "network", "clustering": "clustering", "blocks": "block",
             "stitching": "stitching: global ids", "renumbering": "stitching: renumbering the chunks"}
    runs = []
    for _ in range(args.repeats):
        with dask.config.set(scheduler="synchronous"):
            t0 = time.perf_counter()
            z = predict_to_zarr(seg, str(src), str(work / f"labels_{args.size}.zarr"), chunks=args.chunk,
                                overwrite=True)
            total = time.perf_counter() - t0
        seconds = z.attrs["seconds"]
        stages = {names[k]: round(v, 3) for k, v in seconds.items()}
        stages["block: other (ids, faces, mean embeddings)"] = round(
            seconds["blocks"] - seconds["normalise"] - seconds["network"] - seconds["clustering"], 3)
        stages["total"] = round(total, 3)
        runs.append({"seconds": stages, "pixels_per_second": args.size ** 2 / total,
                     "n_instances": z.attrs["n_instances"],
                     "instances_per_copy": z.attrs["n_instances"] * tile_truth.size / args.size ** 2})
        print(json.dumps(runs[-1]), flush=True)
    write(args.results, "stages", {
        "machine": machine(), "command": f"python benchmarks/bench_dask.py stages --model MODEL --workdir DIR "
        f"--size {args.size} --chunk {args.chunk} --repeats {args.repeats}",
        "scheduler": "synchronous (one process, one torch thread)", "model": clustering_settings(seg), "runs": runs})


def cmd_sweep(args):
    sys.path.insert(0, str(HERE.parent / "examples"))
    import tempfile

    import dask_sweep

    with tempfile.TemporaryDirectory() as tmp:
        code = dask_sweep.main(["--out", tmp, "--workers", str(args.workers)])
        report = json.loads((Path(tmp) / "dask_sweep.json").read_text())
    write(args.results, "sweep", {"machine": machine(),
                                  "command": f"python benchmarks/bench_dask.py sweep --workers {args.workers}",
                                  **report})
    return code


def cmd_embedding(args):
    from dask_equivalence import cmd_embedding as run

    return run(args)


def cmd_equivalence(args):
    from dask_equivalence import cmd_equivalence as run

    return run(args)


def cmd_memory(args):
    from dask_memory import cmd_memory as run

    return run(args)


def child_in_memory(args):
    from dask_memory import child_in_memory as run

    return run(args)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("train", "embedding", "equivalence", "memory", "stages", "child", "sweep"):
        p = sub.add_parser(name)
        p.add_argument("--data", default=str(DEFAULT_DATA))
        p.add_argument("--model", default="/tmp/dask_bench/model")
        p.add_argument("--results", default=str(RESULTS), help="folder of the JSON results (default: %(default)s)")
        if name in ("equivalence", "embedding"):
            p.add_argument("--size", type=int, default=2048)
            p.add_argument("--chunk", type=int, default=512)
            p.add_argument("--stitch", nargs="+", default=["embedding", "iou", "touch"])
            p.add_argument("--clustering", nargs="+", default=["default"], choices=["default"],
                           help="predict's clustering as configured (the only one)")
            p.add_argument("--append", action="store_true",
                           help="keep the other clustering's results from the last results/dask_equivalence.json")
        if name == "memory":
            p.add_argument("--workdir", required=True)
            p.add_argument("--sizes", type=int, nargs="+", default=[4096, 8192, 16384])
            p.add_argument("--in-memory", type=int, nargs="*", default=[4096, 8192])
            p.add_argument("--chunk", type=int, default=2048)
            p.add_argument("--workers", type=int, default=2)
            p.add_argument("--append", action="store_true",
                           help="keep the rows of other sizes from the last results/dask_memory.json")
            p.add_argument("--malloc-trim", action="store_true",
                           help="keep dask's MALLOC_TRIM_THRESHOLD_=65536 in the workers (slower: see "
                                "dask_memory.worker_environ)")
        if name == "stages":
            p.add_argument("--workdir", required=True)
            p.add_argument("--size", type=int, default=2048)
            p.add_argument("--chunk", type=int, default=1024)
            p.add_argument("--repeats", type=int, default=1)
        if name == "child":
            p.add_argument("--src", required=True)
        if name == "sweep":
            p.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    commands = {"train": cmd_train, "embedding": cmd_embedding, "equivalence": cmd_equivalence,
                "memory": cmd_memory, "stages": cmd_stages, "child": child_in_memory, "sweep": cmd_sweep}
    return commands[args.command](args) or 0


if __name__ == "__main__":
    sys.exit(main())
