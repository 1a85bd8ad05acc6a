"""The mode search of large images: per connected component (now) against the sampled search (before).

    python benchmarks/bench_mode_search.py --model /tmp/dask_bench/model     # -> results/mode_search.json

``cluster_embeddings`` (``recovery="split"``) on the embeddings that one fitted model predicts for
the stardist nuclei image of the shared data (512 x 512, 125 nuclei) and for mosaics of its
mirrored copies (1024 and 2048 pixels a side; ``bench_dask.py`` makes them the same way), three
ways, side by side in one process on one thread:

* ``current``: the library as installed: above ``max_points`` (20000) searching pixels, every
  connected component searched on its own with all of its pixels;
* ``previous``: the package as it was at ``--previous`` (a git commit; default b4fff53, the last
  one with the old rule), extracted from this repository's history and timed through its public
  ``cluster_embeddings`` in a child process on the same embeddings: one mean shift over a random
  sample of 20000 foreground pixels of the whole image, the components' embeddings moved apart;
* ``every_pixel``: the previous rule without the sample (``max_points=None``): one mean shift over
  every foreground pixel, what a user would run to get rid of the sample (up to
  ``--every-pixel-max`` pixels a side: its cost grows with the square of the pixels).

Each: the best wall time of ``--repeats``, the number of instances, and against the ground truth
(the copies' label maps) SBD and AP@0.5. The model of ``bench_dask.py train`` was fitted on tiles
of this image: the scores compare the three rules on the same embeddings, not the model. Needs the
git history (``git show``) for ``previous``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import machine, write_json
from _dask_common import DEFAULT_DATA, label_mosaic, load_nuclei, mosaic

from harmonic_seg import HarmonicSegmenter
from harmonic_seg.clustering import cluster_embeddings
from harmonic_seg.metrics import matching_dataset, mean_symmetric_best_dice

HERE = Path(__file__).resolve().parent
#: Run by the child process: time ``cluster_embeddings`` of the package on its path, on one thread.
CHILD = """
import json, sys, time
import numpy as np, torch
torch.set_num_threads(1)
from harmonic_seg.clustering import cluster_embeddings
d = np.load(sys.argv[1])
kw = json.loads(sys.argv[2])
best = float("inf")
for _ in range(int(sys.argv[3])):
    t0 = time.perf_counter()
    labels, _ = cluster_embeddings(d["emb"], d["fg"], float(d["bandwidth"]), fg_prob=d["prob"], **kw)
    best = min(best, time.perf_counter() - t0)
np.savez(sys.argv[4], labels=labels, seconds=best)
"""


def previous_package(commit):
    """A folder holding the ``harmonic_seg`` package of ``commit``, extracted from this repository's history."""
    data = subprocess.run(["git", "archive", "--format=tar", commit, "harmonic_seg"], cwd=HERE.parent, check=True,
                          capture_output=True).stdout
    folder = Path(tempfile.mkdtemp(prefix="harmonic_seg_previous_"))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(folder, filter="data")
    return folder


def timed_in_child(package, emb, fg, prob, bandwidth, kw, repeats):
    """Best wall time of ``repeats`` calls and the labels of the ``cluster_embeddings`` of ``package``."""
    with tempfile.TemporaryDirectory() as tmp:
        inp, out = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        np.savez(inp, emb=emb, fg=fg, prob=prob, bandwidth=bandwidth)
        env = {**os.environ, "PYTHONPATH": str(package), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        subprocess.run([sys.executable, "-c", CHILD, str(inp), json.dumps(kw), str(repeats), str(out)], env=env,
                       cwd=tmp, check=True)
        res = np.load(out)
        return float(res["seconds"]), res["labels"]


def timed(fn, repeats):
    best, out = np.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="/tmp/dask_bench/model", help="a saved HarmonicSegmenter")
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048])
    p.add_argument("--previous", default="b4fff53")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--every-pixel-max", type=int, default=1024,
                   help="largest size timed with every_pixel (its cost grows with the square of the pixels)")
    p.add_argument("--results", type=Path, default=HERE / "results")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    previous = previous_package(args.previous)
    seg = HarmonicSegmenter.load(args.model)
    seg.set_params(num_threads=1)
    image, truth = load_nuclei(args.data)
    kw = dict(min_size=seg.min_size_, metric=seg.metric_, core_fraction=seg.core_fraction_, recovery="split")
    rows = []
    for size in args.sizes:
        img = mosaic(image, size).astype(np.float32) if size != image.shape[0] else image.astype(np.float32)
        gt = label_mosaic(truth, size) if size != truth.shape[0] else truth
        (emb, prob), = seg.predict_embeddings([img])
        fg = prob > seg.fg_threshold_
        variants = {
            "current": lambda: timed(lambda: cluster_embeddings(emb, fg, seg.bandwidth_, fg_prob=prob, **kw)[0],
                                     args.repeats),
            "previous": lambda: timed_in_child(previous, emb, fg, prob, seg.bandwidth_, kw, args.repeats),
            "every_pixel": lambda: timed(lambda: cluster_embeddings(emb, fg, seg.bandwidth_, fg_prob=prob,
                                                                    max_points=None, **kw)[0], args.repeats),
        }
        if size > args.every_pixel_max:
            del variants["every_pixel"]
        for name, fn in variants.items():
            seconds, labels = fn()
            row = dict(size=size, variant=name, seconds=seconds, foreground_pixels=int(fg.sum()),
                       n_instances=int(labels.max()), n_true=int(len(np.unique(gt)) - 1),
                       SBD=mean_symmetric_best_dice([gt], [labels]),
                       AP50=matching_dataset([gt], [labels], 0.5).accuracy)
            rows.append(row)
            print(f"{size}^2 {name:12s} {seconds:7.2f} s  {row['n_instances']:5d} instances (truth "
                  f"{row['n_true']})  SBD {row['SBD']:.3f}  AP@0.5 {row['AP50']:.3f}", flush=True)
    path = write_json(args.results / "mode_search.json", dict(
        command="python benchmarks/bench_mode_search.py --model MODEL", previous_commit=args.previous,
        model=dict(path_note="bench_dask.py train", bandwidth_=seg.bandwidth_, min_size_=seg.min_size_,
                   metric_=seg.metric_, core_fraction_=seg.core_fraction_, fg_threshold_=seg.fg_threshold_),
        threads=1, repeats=args.repeats, rows=rows, machine=machine()))
    print(f"-> {path}")


if __name__ == "__main__":
    main()
