"""``bench_dask.py embedding`` and ``bench_dask.py equivalence``: blocks against the whole image (public API only)."""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _dask_common import clustering_settings, f1_against, label_mosaic, load_model, load_nuclei, machine, mosaic, write


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


def cluster_with_seed(seg, emb, prob, seed):
    """``predict``'s clustering of one embedding (the fitted values of ``seg.clustering_``) with the mean-shift
    seed ``seed`` (``predict`` uses 0)."""
    from harmonic_seg.clustering import cluster_embeddings

    c = seg.clustering_
    labels, _ = cluster_embeddings(
        emb, prob > c.fg_threshold_, c.bandwidth_, recovery=c.recovery_, metric=c.metric_, min_size=c.min_size_,
        min_share=c.min_share_, split_components=c.split_components, merge_small=c.merge_small, fg_prob=prob,
        core_threshold=c.core_threshold, core_fraction=c.core_fraction_, random_state=seed)
    return labels


def cmd_equivalence(args):
    """Whole-image labels against ``predict_to_zarr``'s for each stitching rule, and against ``predict_blockwise``."""
    import dask
    import dask.array as da

    from harmonic_seg.distributed import predict_blockwise, predict_to_zarr

    seg = load_model(args.model)
    tile, tile_truth = load_nuclei(args.data)
    image = mosaic(tile, args.size)
    truth = label_mosaic(tile_truth, args.size)
    report, previous = {}, Path(args.results) / "dask_equivalence.json"
    if args.append and previous.exists():  # the modes of an earlier run, for modes not run now
        report = {k: v for k, v in json.loads(previous.read_text())["results"].items() if k not in args.clustering}
    for mode in args.clustering:
        t0 = time.perf_counter()
        (emb, prob), = seg.predict_embeddings([image])  # predict(X) is predict_from_embeddings(predict_embeddings(X))
        whole = seg.predict_from_embeddings([(emb, prob)])[0]
        whole_s = time.perf_counter() - t0
        print(f"{mode}: whole image {image.shape}: {int(whole.max())} instances in {whole_s:.0f} s", flush=True)
        if not np.array_equal(cluster_with_seed(seg, emb, prob, 0), whole):
            sys.exit("the clustering with seed 0 differs from predict's: cluster_with_seed no longer calls "
                     "cluster_embeddings as EmbeddingClusterer.segment does")
        runs = {"whole_image_seconds": whole_s, "whole_image_f1_vs_ground_truth": f1_against(truth, whole),
                "command": f"python benchmarks/bench_dask.py equivalence --model MODEL --size {args.size} "
                           f"--chunk {args.chunk} --clustering {mode}{' --append' if args.append else ''}",
                "whole_image_other_seed": compare(whole, cluster_with_seed(seg, emb, prob, 1), args.chunk)}
        print(mode, "other seed", json.dumps(runs["whole_image_other_seed"]), flush=True)
        del emb, prob
        src = da.from_array(image, chunks=args.chunk)
        with tempfile.TemporaryDirectory() as tmp, dask.config.set(scheduler="synchronous"):
            for stitch in args.stitch:
                z = predict_to_zarr(seg, src, Path(tmp) / f"labels_{stitch}.zarr", chunks=args.chunk, stitch=stitch)
                lab, seconds = z[...], z.attrs["seconds"]
                runs.setdefault("blocks_seconds", seconds["blocks"])  # the blocks' segmentation, summed
                runs[stitch] = {"stitch_seconds": seconds["stitching"] + seconds["renumbering"],
                                "stitching": dict(z.attrs["stitching"]), "f1_vs_ground_truth": f1_against(truth, lab),
                                **compare(whole, lab, args.chunk)}
                if stitch == "embedding":  # the same labels as the lazy function
                    direct = predict_blockwise(seg, src).compute()
                    runs[stitch]["equals_predict_blockwise"] = bool(np.array_equal(direct, lab))
                print(mode, stitch, json.dumps(runs[stitch]), flush=True)
        report[mode] = runs
        write_equivalence(args, seg, report)


def write_equivalence(args, seg, report):
    rf = seg.module_.receptive_field
    write(args.results, "equivalence", {
        "machine": machine(),
        "command": f"python benchmarks/bench_dask.py equivalence --model MODEL --size {args.size} --chunk {args.chunk}",
        "image": f"{args.size}x{args.size} mosaic of mirrored copies of stardist_nuclei2d/img2d.tif",
        "blocks": f"{args.chunk}x{args.chunk}",
        "overlap": rf, "network_margin": rf // 2,
        "model": clustering_settings(seg),
        "clustering": {"default": "predict's clustering as configured (above 20000 foreground pixels, a mode "
                                  "search in each connected component with all of its pixels, float32)",
                       "whole_image_other_seed": "whole-image prediction with the mean-shift seed 1 "
                                                 "against seed 0: the clustering's own variability"},
        "results": report,
    })


def block_boxes(size, chunk, overlap, margin, multiple):
    """The (context, input) boxes ``(y0, y1, x0, x1)`` of the blocks of a ``size`` x ``size`` image in
    ``chunk`` x ``chunk`` blocks, as ``predict_blockwise`` places them (docs/large_images.md): the context is the
    block grown by ``overlap`` on every side, the input the context grown by ``margin`` (half the receptive
    field), its start moved down to a multiple of ``multiple`` (the network's pooling grid), clipped to the image."""
    out = []
    for y in range(0, size, chunk):
        for x in range(0, size, chunk):
            ctx = (max(0, y - overlap), min(size, y + chunk + overlap),
                   max(0, x - overlap), min(size, x + chunk + overlap))
            y0 = max(0, ctx[0] - margin) // multiple * multiple
            x0 = max(0, ctx[2] - margin) // multiple * multiple
            out.append((ctx, (y0, min(size, ctx[1] + margin), x0, min(size, ctx[3] + margin))))
    return out


def cmd_embedding(args):
    """Every block's embedding and foreground probability over its context against the whole image's.

    Each block's input region is cut from the whole image's normalised pixels and given its origin in the
    whole image (``harmonic_seg.nn.predict_embeddings(..., origin=...)``), as the blocks of
    ``predict_blockwise`` are; the whole image's normalisation of the blocks is checked by the tests."""
    import torch

    from harmonic_seg import Tiling
    from harmonic_seg.nn import predict_embeddings
    from harmonic_seg.preprocessing import percentile_normalize, to_channels_first

    seg = load_model(args.model)
    # the torch threads of the model's predict (num_threads=1): more threads sum in another order, which rounds
    # float32 differently
    torch.set_num_threads(seg.num_threads)
    tile, _ = load_nuclei(args.data)
    image = mosaic(tile, args.size)
    (emb_w, prob_w), = seg.predict_embeddings([image])
    pixels = image.astype(np.float32) if seg.percentiles is None else percentile_normalize(image, *seg.percentiles)
    chw = to_channels_first(pixels)
    rf = seg.module_.receptive_field
    tiling = seg.tiling or Tiling()
    tile_overlap = tiling.overlap if tiling.overlap is not None else 2 * (rf // 2)
    boxes = block_boxes(args.size, args.chunk, rf, rf // 2, seg.module_.size_multiple)
    worst = {"embedding": 0.0, "fg_prob": 0.0}
    for (cy0, cy1, cx0, cx1), (y0, y1, x0, x1) in boxes:
        emb, prob = predict_embeddings(seg.module_, chw[:, y0:y1, x0:x1], tile_size=tiling.size,
                                       overlap=tile_overlap, amp=seg.amp, origin=(y0, x0))
        local = slice(cy0 - y0, cy1 - y0), slice(cx0 - x0, cx1 - x0)
        whole = slice(cy0, cy1), slice(cx0, cx1)
        worst["embedding"] = max(worst["embedding"], float(np.abs(emb[(slice(None), *local)]
                                                                  - emb_w[(slice(None), *whole)]).max()))
        worst["fg_prob"] = max(worst["fg_prob"], float(np.abs(prob[local] - prob_w[whole]).max()))
    print(json.dumps(worst))
    write(args.results, "embedding", {"machine": machine(), "command": "python benchmarks/bench_dask.py embedding "
                                      f"--model MODEL --size {args.size} --chunk {args.chunk}", "blocks": len(boxes),
          "max_abs_difference_over_contexts": worst})
