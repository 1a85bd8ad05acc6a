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
    512x512 block over its context against the whole image's (maximum
    absolute difference).
``equivalence``
    A 2048x2048 mosaic: ``HarmonicSegmenter.predict`` on the whole image
    against ``predict_blockwise`` (512x512 blocks, default overlap; the blocks
    are segmented once, as its tasks do, and joined by each stitching rule, and
    the embedding rule's labels are checked against ``predict_blockwise``
    itself): adjusted Rand index over the foreground pixels of either,
    instance counts, whole-image instances that cross a block border and are
    split (two or more blockwise labels holding at least 10 % of it each) and
    blockwise labels that merge two whole-image instances, with ``predict``'s
    clustering as configured (above 20000 foreground pixels, a mode search
    in each connected component with all of its pixels); the whole image is
    also clustered with another mean-shift seed, the clustering's own
    variability. ``--clustering exact`` adds a run with one mode search over
    every foreground pixel of the image in float64 (patched in this process
    only; slow on large images).
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
    clustering: mode search and instances, the rest of the block, stitching)
    on one mosaic (``--size``, ``--chunk``), in one process with dask's
    synchronous scheduler.
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
not replace the committed results).

Long runs belong in the background with a log (``nohup ... > log 2>&1 &``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
DEFAULT_DATA = HERE.parents[1] / "shared" / "data"


def load_nuclei(data):
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
    import importlib.util

    spec = importlib.util.spec_from_file_location("_bench_common", HERE / "_common.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def machine():
    info = _bench_common().machine()
    info["note"] = ("2 CPU cores shared with other jobs running at the same time: times are upper bounds and vary "
                    "from run to run")
    return info


def write(name, payload):
    path = _bench_common().write_json(RESULTS / f"dask_{name}.json", payload)  # RESULTS: --results
    print(f"wrote {path}")


def load_model(path, threads=1):
    """The saved model, on ``threads`` torch threads, in float32 (``amp=False``): blockwise and whole-image
    embeddings are then equal to the last bit (bfloat16 rounds differently where the tiles differ)."""
    from harmonic_seg import HarmonicSegmenter

    seg = HarmonicSegmenter.load(path)
    return seg.set_params(num_threads=threads, amp=False)


def clustering_settings(seg):
    keys = ("bandwidth_", "min_size_", "metric_", "core_fraction_", "fg_threshold_", "recovery_")
    out = {k: getattr(seg, k, None) for k in keys}
    out.update(split_components=seg.split_components, receptive_field=seg.module_.receptive_field,
               depth=seg.depth, base_width=seg.base_width, loss=seg.loss, scale=getattr(seg, "scale_", seg.scale),
               amp=seg.amp, precision="float32" if seg.amp is False else f"amp={seg.amp!r}",
               tile_size=seg.tile_size, mode_search_max_points=_max_points())
    return out


def _max_points():
    """The size of the random foreground sample in which ``predict``'s clustering searches the modes."""
    import inspect

    from harmonic_seg.clustering import cluster_embeddings

    return inspect.signature(cluster_embeddings).parameters["max_points"].default


# ----------------------------------------------------------------------------- train
def cmd_train(args):
    from harmonic_seg import HarmonicSegmenter

    image, labels = load_nuclei(args.data)
    tiles = [(image[y:y + 128, x:x + 128], labels[y:y + 128, x:x + 128]) for y in range(0, 512, 128)
             for x in range(0, 512, 128)]
    # the settings the results were measured with, pinned against later defaults: the harmonic loss, scale 1
    # (blockwise prediction needs it), float32 (blockwise and whole-image embeddings equal to the last bit)
    seg = HarmonicSegmenter(depth=3, base_width=8, crop_size=128, batch_size=8, steps_per_epoch=10, epochs=30,
                            learning_rate=3e-3, validation_fraction=0.17, tune_postprocessing=True,
                            split_components=True, loss="harmonic", scale=1.0, amp=False, num_threads=1,
                            random_state=0)
    t0 = time.perf_counter()
    seg.fit([t[0] for t in tiles], [t[1] for t in tiles])
    seconds = time.perf_counter() - t0
    seg.save(args.model, overwrite=True)
    print(f"trained in {seconds:.0f} s; saved to {args.model}")
    write("train", {"machine": machine(), "fit_seconds": seconds, "model": clustering_settings(seg),
                    "command": "python benchmarks/bench_dask.py train --model MODEL"})


# ----------------------------------------------------------------------------- equivalence
def compare(whole, blocks, chunk):
    """Agreement of a blockwise label map with the whole image's."""
    from sklearn.metrics import adjusted_rand_score

    fg = (whole > 0) | (blocks > 0)
    a, b = whole[fg].astype(np.int64), blocks[fg].astype(np.int64)
    pairs, counts = np.unique(np.stack([a, b]), axis=1, return_counts=True)
    area_a = np.bincount(a, minlength=int(a.max()) + 1)
    area_b = np.bincount(b, minlength=int(b.max()) + 1)
    real = (pairs[0] > 0) & (pairs[1] > 0)
    big_a = real & (counts >= 0.1 * area_a[pairs[0]])  # a blockwise label holds >= 10 % of a whole instance
    big_b = real & (counts >= 0.1 * area_b[pairs[1]])
    n_parts = np.bincount(pairs[0][big_a], minlength=area_a.size)
    n_merged = np.bincount(pairs[1][big_b], minlength=area_b.size)
    # whole-image instances that cross a block border
    ys, xs = np.nonzero(whole)
    ids = whole[ys, xs]
    cell = (ys // chunk) * (whole.shape[1] // chunk + 1) + xs // chunk
    lo = np.full(area_a.size, np.iinfo(np.int64).max)
    hi = np.full(area_a.size, -1)
    np.minimum.at(lo, ids, cell)
    np.maximum.at(hi, ids, cell)
    crossing = hi > lo
    return {
        "adjusted_rand_index_foreground": float(adjusted_rand_score(a, b)),
        "instances_whole": int(np.count_nonzero(area_a[1:])),
        "instances_blockwise": int(np.count_nonzero(area_b[1:])),
        "whole_instances_crossing_block_borders": int(crossing.sum()),
        "split_at_block_borders": int(((n_parts >= 2) & crossing).sum()),
        "split_elsewhere": int(((n_parts >= 2) & ~crossing).sum()),
        "blockwise_labels_merging_instances": int((n_merged >= 2).sum()),
        "differing_foreground_pixels": int(((whole > 0) != (blocks > 0)).sum()),
    }


@contextlib.contextmanager
def clustering_mode(mode, seed=0):
    """The clustering of ``predict``, as configured (``"default"``, with the mean-shift seed ``seed``), or made
    local and deterministic (``"exact"``): every foreground pixel in the mode search (``max_points=None``), no
    random coarse levels (``coarse_to_fine=False``) and float64 distances. Patches this process only (the
    blockwise runs use dask's synchronous scheduler)."""
    import torch

    import harmonic_seg.clustering._embedding as cluster
    import harmonic_seg.clustering._meanshift_ops as ops
    import harmonic_seg.clustering.meanshift as meanshift

    original = cluster.cluster_embeddings
    dtypes = [(m, m._DTYPE) for m in (cluster, meanshift, ops) if hasattr(m, "_DTYPE")]

    def patched(*a, **k):
        k["random_state"] = seed
        if mode == "exact":
            k.update(max_points=None, coarse_to_fine=False)
        return original(*a, **k)

    cluster.cluster_embeddings = patched
    if mode == "exact":
        for m, _ in dtypes:
            m._DTYPE = torch.float64
    try:
        yield
    finally:
        cluster.cluster_embeddings = original
        for m, d in dtypes:
            m._DTYPE = d


def cmd_equivalence(args):
    import dask
    import dask.array as da

    from harmonic_seg.distributed import predict_blockwise
    from harmonic_seg.distributed._stitch import apply_table, relabel_table

    seg = load_model(args.model)
    tile, tile_truth = load_nuclei(args.data)
    image = mosaic(tile, args.size)
    truth = label_mosaic(tile_truth, args.size)
    report, previous = {}, RESULTS / "dask_equivalence.json"
    if args.append and previous.exists():  # the modes of an earlier run, for modes not run now
        report = {k: v for k, v in json.loads(previous.read_text())["results"].items() if k not in args.clustering}
    for mode in args.clustering:
        with clustering_mode(mode):
            t0 = time.perf_counter()
            whole = seg.predict([image])[0]
            whole_s = time.perf_counter() - t0
        print(f"{mode}: whole image {image.shape}: {int(whole.max())} instances in {whole_s:.0f} s", flush=True)
        runs = {"whole_image_seconds": whole_s, "whole_image_f1_vs_ground_truth": f1_against(truth, whole),
                "command": f"python benchmarks/bench_dask.py equivalence --model MODEL --size {args.size} "
                           f"--chunk {args.chunk} --clustering {mode}{' --append' if args.append else ''}"}
        if mode == "default":  # "exact" draws nothing at random: another seed gives the same labels
            with clustering_mode(mode, seed=1):
                again = seg.predict([image])[0]
            runs["whole_image_other_seed"] = compare(whole, again, args.chunk)
            print(mode, "other seed", json.dumps(runs["whole_image_other_seed"]), flush=True)
        # the blocks are segmented once (what predict_blockwise's block tasks do); the rules differ only in
        # how the blocks' labels are joined
        t0 = time.perf_counter()
        with clustering_mode(mode):
            blocks, plan = segment_blocks(seg, image, args.chunk)
        runs["blocks_seconds"] = time.perf_counter() - t0
        for stitch in args.stitch:
            t0 = time.perf_counter()
            table, offsets, stats = relabel_table([m for _, m in blocks], plan.grid, stitch, bandwidth=seg.bandwidth_,
                                                  metric=seg.metric_, iou_threshold=0.5)
            lab = np.zeros(image.shape, np.int32)
            for (core, _), b, offset in zip(blocks, plan.blocks, offsets):
                lab[b.core[0]:b.core[1], b.core[2]:b.core[3]] = apply_table(core, table, offset)
            runs[stitch] = {"stitch_seconds": time.perf_counter() - t0, "stitching": stats,
                            "f1_vs_ground_truth": f1_against(truth, lab), **compare(whole, lab, args.chunk)}
            if stitch == "embedding" and mode == "default":  # the same labels as the public function
                with clustering_mode(mode), dask.config.set(scheduler="synchronous"):
                    direct = predict_blockwise(seg, da.from_array(image, chunks=args.chunk)).compute()
                runs[stitch]["equals_predict_blockwise"] = bool(np.array_equal(direct, lab))
            print(mode, stitch, json.dumps(runs[stitch]), flush=True)
        report[mode] = runs
        write_equivalence(args, seg, report)


def segment_blocks(seg, image, chunk):
    """Every block of ``image`` segmented as ``predict_blockwise``'s tasks do (strips included), in one process."""
    import dask
    import dask.array as da

    from harmonic_seg.distributed._block import segment_block
    from harmonic_seg.distributed.blockwise import MAX_SAMPLES, _prepare

    _, plan, value_range = _prepare(seg, da.from_array(image, chunks=chunk), None, None, "iou", 0.5, None, MAX_SAMPLES)
    if value_range is not None:
        (value_range,) = dask.compute(value_range, scheduler="synchronous")
    out = []
    for b in plan.blocks:
        y0, y1, x0, x1 = b.input
        out.append(segment_block(seg, image[y0:y1, x0:x1], value_range, b, plan, strips=True))
    return out, plan


def write_equivalence(args, seg, report):
    rf = seg.module_.receptive_field
    write("equivalence", {
        "machine": machine(),
        "command": f"python benchmarks/bench_dask.py equivalence --model MODEL --size {args.size} --chunk {args.chunk}",
        "image": f"{args.size}x{args.size} mosaic of mirrored copies of stardist_nuclei2d/img2d.tif",
        "blocks": f"{args.chunk}x{args.chunk}",
        "overlap": rf, "network_margin": rf // 2,
        "model": clustering_settings(seg),
        "clustering": {"default": "predict's clustering as configured (above 20000 foreground pixels, a mode "
                                  "search in each connected component with all of its pixels, float32)",
                       "exact": "the same with every foreground pixel, no random coarse levels, float64 "
                                "distances (local and deterministic)",
                       "whole_image_other_seed": "whole-image prediction with the mean-shift seed 1 "
                                                 "against seed 0: the clustering's own variability"},
        "results": report,
    })


def cmd_embedding(args):
    """Every block's embedding and foreground probability over its context against the whole image's."""
    from harmonic_seg.distributed._block import embed_region, intensity_range, normalise
    from harmonic_seg.distributed._geometry import local_slices, plan_blocks

    seg = load_model(args.model)
    tile, _ = load_nuclei(args.data)
    image = mosaic(tile, args.size)
    (emb_w, prob_w), = seg.predict_embeddings([image])
    value_range = intensity_range(image, seg.percentiles)
    rf = seg.module_.receptive_field
    n = args.size // args.chunk
    plan = plan_blocks(image.shape, ((args.chunk,) * n, (args.chunk,) * n), rf, rf // 2, seg.module_.size_multiple)
    worst = {"embedding": 0.0, "fg_prob": 0.0}
    whole_box = (0, args.size, 0, args.size)
    for b in plan.blocks:
        y0, y1, x0, x1 = b.input
        emb, prob = embed_region(seg, normalise(image[y0:y1, x0:x1], value_range), (y0, x0))
        cs, ws = local_slices(b.context, b.input), local_slices(b.context, whole_box)
        worst["embedding"] = max(worst["embedding"], float(np.abs(emb[:, cs[0], cs[1]] - emb_w[:, ws[0], ws[1]]).max()))
        worst["fg_prob"] = max(worst["fg_prob"], float(np.abs(prob[cs] - prob_w[ws]).max()))
    print(json.dumps(worst))
    write("embedding", {"machine": machine(), "command": f"python benchmarks/bench_dask.py embedding --model MODEL "
                        f"--size {args.size} --chunk {args.chunk}", "blocks": len(plan.blocks),
                        "max_abs_difference_over_contexts": worst})


# ----------------------------------------------------------------------------- memory
class RSSPoller(threading.Thread):
    """Peak resident memory of some processes, polled every ``interval`` seconds."""

    def __init__(self, pids, interval=0.2):
        super().__init__(daemon=True)
        import psutil

        self.procs = {pid: psutil.Process(pid) for pid in pids}
        self.peak = {pid: 0 for pid in pids}
        self.interval = interval
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            for pid, p in self.procs.items():
                try:
                    self.peak[pid] = max(self.peak[pid], p.memory_info().rss)
                except Exception:  # noqa: BLE001 - a worker that restarted
                    pass
            self.done.wait(self.interval)

    def stop(self):
        self.done.set()
        self.join()
        return {str(pid): round(v / 2**20, 1) for pid, v in self.peak.items()}


def worker_environ(malloc_trim):
    """The environment dask's nannies give their workers; without ``MALLOC_TRIM_THRESHOLD_`` unless asked.

    dask sets ``MALLOC_TRIM_THRESHOLD_=65536`` in every worker so that glibc returns freed memory to the
    system at once; it also turns off glibc's adaptive mmap threshold, so every array above 128 KiB gets fresh
    pages. Blockwise prediction allocates large arrays in every layer of the network and every step of the
    clustering: in one process with that setting it took 1.7x the CPU time (system time 0.7 s -> 4.1 s, page
    faults 0.44 M -> 2.82 M, a 1024x1024 mosaic in 512x512 blocks)."""
    import dask

    env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {})
    if not malloc_trim:
        env.pop("MALLOC_TRIM_THRESHOLD_", None)
    return env


def run_cluster(model_path, src, dst, chunk, workers, tile_truth, malloc_trim=False):
    import dask
    from dask.distributed import Client, LocalCluster

    from harmonic_seg.distributed import predict_to_zarr

    seg = load_model(model_path)
    env = worker_environ(malloc_trim)
    with dask.config.set({"distributed.nanny.pre-spawn-environ": env}), \
            LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        pids = list(client.run(os.getpid).values())
        poller = RSSPoller(pids)
        baseline = {str(p): round(v / 2**20, 1) for p, v in zip(pids, client.run(
            lambda: __import__("psutil").Process().memory_info().rss).values())}
        poller.start()
        t0 = time.perf_counter()
        z = predict_to_zarr(seg, src, dst, chunks=chunk, overwrite=True)
        seconds = time.perf_counter() - t0
        peaks = poller.stop()
    n = z.shape[0] * z.shape[1]
    y0, y1 = crop_box(z.shape[0])
    return {"seconds": seconds, "pixels_per_second": n / seconds, "n_instances": z.attrs["n_instances"],
            "instances_per_copy": z.attrs["n_instances"] * tile_truth.size / n,
            "f1_vs_ground_truth_crop": ground_truth(tile_truth, z.shape[0], z[y0:y1, y0:y1])["f1_crop"],
            "worker_peak_rss_mib": peaks, "worker_rss_at_start_mib": baseline,
            "worker_environ": env, "stitching": z.attrs["stitching"]}


def child_in_memory(args):
    """Runs in a child process: predict() on the whole mosaic in memory; prints JSON."""
    import torch
    import zarr

    torch.set_num_threads(1)
    seg = load_model(args.model)
    image = zarr.open_array(store=args.src, mode="r")[...]
    t0 = time.perf_counter()
    labels = seg.predict([image])[0]
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    _, tile_truth = load_nuclei(args.data)
    y0, y1 = crop_box(image.shape[0])
    fg = int(np.count_nonzero(labels))
    print(json.dumps({"seconds": seconds, "pixels_per_second": image.size / seconds,
                      "n_instances": int(labels.max()), "instances_per_copy": int(labels.max()) * tile_truth.size
                      / image.size, "f1_vs_ground_truth_crop": ground_truth(tile_truth, image.shape[0],
                                                                            labels[y0:y1, y0:y1])["f1_crop"],
                      "foreground_pixels": fg,
                      "peak_rss_mib": round(peak, 1)}))


def cmd_memory(args):
    tile, tile_truth = load_nuclei(args.data)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    rows, previous = [], RESULTS / "dask_memory.json"
    if args.append and previous.exists():  # the rows of an earlier run, for sizes not run now
        rows = [r for r in json.loads(previous.read_text())["rows"] if r["size"] not in args.sizes]
    for size in args.sizes:
        src = zarr_mosaic(tile, size, work / f"mosaic_{size}.zarr", args.chunk)
        row = {"size": size, "pixels": size * size, "ground_truth": ground_truth(tile_truth, size),
               "command": f"python benchmarks/bench_dask.py memory --model MODEL --workdir DIR --chunk {args.chunk} "
                          f"--workers {args.workers} --sizes {size} --in-memory "
                          f"{size if size in args.in_memory else ''}{' --append' if args.append else ''}"
                          f"{' --malloc-trim' if args.malloc_trim else ''}".strip()}
        print(f"{size}x{size}: blockwise on a LocalCluster of {args.workers} workers ...", flush=True)
        row["blockwise"] = run_cluster(args.model, str(src), str(work / f"labels_{size}.zarr"), args.chunk,
                                       args.workers, tile_truth, args.malloc_trim)
        print(json.dumps(row["blockwise"]), flush=True)
        if size in args.in_memory:
            print(f"{size}x{size}: predict in memory ...", flush=True)
            env = dict(os.environ, OMP_NUM_THREADS="1")
            proc = subprocess.run([sys.executable, __file__, "child", "--model", args.model, "--src", str(src),
                                   "--data", args.data],
                                  capture_output=True, text=True, env=env)
            if proc.returncode == 0:
                row["in_memory"] = json.loads(proc.stdout.strip().splitlines()[-1])
            else:
                row["in_memory"] = {"failed": proc.stderr.strip().splitlines()[-1:]}
            print(json.dumps(row["in_memory"]), flush=True)
        rows.append(row)
        rows.sort(key=lambda r: r["size"])
        write("memory", {"machine": machine(), "command": "python benchmarks/bench_dask.py memory --model MODEL "
                         f"--workdir DIR --chunk {args.chunk} --sizes {' '.join(map(str, args.sizes))} --in-memory "
                         f"{' '.join(map(str, args.in_memory))}", "chunks": args.chunk, "workers": args.workers,
                         "threads_per_worker": 1, "model": clustering_settings(load_model(args.model)), "rows": rows})


# ----------------------------------------------------------------------------- stages
@contextlib.contextmanager
def stage_timers():
    """Seconds spent in each stage of ``predict_to_zarr`` in this process (synchronous scheduler): wraps the
    functions of each stage for the duration of the block."""
    import collections

    import harmonic_seg.distributed._block as block
    import harmonic_seg.distributed.blockwise as blockwise
    import harmonic_seg.clustering._embedding as cluster
    from harmonic_seg import HarmonicSegmenter

    seconds = collections.Counter()
    targets = [(block, "normalise", "normalise"), (block, "embed_region", "network"),
               (cluster, "_modes", "clustering: mode search (mean shift, assignment)"),
               (cluster, "_instances", "clustering: instances (splits, ids, scores)"),
               (HarmonicSegmenter, "_cluster", "clustering"),
               (blockwise, "segment_block", "block"), (blockwise, "relabel_table", "stitching: global ids"),
               (blockwise, "_relabel_store", "stitching: renumbering the chunks")]

    def timed(name, f):
        def wrapper(*a, **k):
            t0 = time.perf_counter()
            try:
                return f(*a, **k)
            finally:
                seconds[name] += time.perf_counter() - t0
        return wrapper

    saved = [(owner, attr, getattr(owner, attr)) for owner, attr, _ in targets]
    for owner, attr, name in targets:
        setattr(owner, attr, timed(name, getattr(owner, attr)))
    try:
        yield seconds
    finally:
        for owner, attr, f in saved:
            setattr(owner, attr, f)


def cmd_stages(args):
    """Per-stage times of ``predict_to_zarr`` on one mosaic, in one process (dask's synchronous scheduler)."""
    import dask

    from harmonic_seg.distributed import predict_to_zarr

    seg = load_model(args.model)
    tile, tile_truth = load_nuclei(args.data)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    src = zarr_mosaic(tile, args.size, work / f"mosaic_{args.size}.zarr", args.chunk)
    runs = []
    for _ in range(args.repeats):
        with stage_timers() as seconds, dask.config.set(scheduler="synchronous"):
            t0 = time.perf_counter()
            z = predict_to_zarr(seg, str(src), str(work / f"labels_{args.size}.zarr"), chunks=args.chunk,
                                overwrite=True)
            total = time.perf_counter() - t0
        stages = {k: round(v, 3) for k, v in seconds.items()}
        stages["block: other (ids, faces, mean embeddings)"] = round(
            seconds["block"] - seconds["normalise"] - seconds["network"] - seconds["clustering"], 3)
        stages["total"] = round(total, 3)
        runs.append({"seconds": stages, "pixels_per_second": args.size ** 2 / total,
                     "n_instances": z.attrs["n_instances"],
                     "instances_per_copy": z.attrs["n_instances"] * tile_truth.size / args.size ** 2})
        print(json.dumps(runs[-1]), flush=True)
    write("stages", {"machine": machine(), "command": f"python benchmarks/bench_dask.py stages --model MODEL "
                     f"--workdir DIR --size {args.size} --chunk {args.chunk} --repeats {args.repeats}",
                     "scheduler": "synchronous (one process, one torch thread)", "model": clustering_settings(seg),
                     "runs": runs})


# ----------------------------------------------------------------------------- sweep
def cmd_sweep(args):
    sys.path.insert(0, str(HERE.parent / "examples"))
    import tempfile

    import dask_sweep

    with tempfile.TemporaryDirectory() as tmp:
        code = dask_sweep.main(["--out", tmp, "--workers", str(args.workers)])
        report = json.loads((Path(tmp) / "dask_sweep.json").read_text())
    write("sweep", {"machine": machine(), "command": f"python benchmarks/bench_dask.py sweep --workers {args.workers}",
                    **report})
    return code


def main(argv=None):
    global RESULTS
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
            p.add_argument("--clustering", nargs="+", default=["default"], choices=["default", "exact"])
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
                           help="keep dask's MALLOC_TRIM_THRESHOLD_=65536 in the workers (slower: see worker_environ)")
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
    RESULTS = Path(args.results)
    commands = {"train": cmd_train, "embedding": cmd_embedding, "equivalence": cmd_equivalence,
                "memory": cmd_memory, "stages": cmd_stages, "child": child_in_memory, "sweep": cmd_sweep}
    return commands[args.command](args) or 0


if __name__ == "__main__":
    sys.exit(main())
