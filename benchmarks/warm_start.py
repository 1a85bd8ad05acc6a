"""Refine a model on new images with ``warm_start=True``: half a training split, then the other half.

    python benchmarks/warm_start.py                       # BBBC010 (mask input), 2 x 300 s, seed 0
    python benchmarks/warm_start.py --dataset cvppp_a1 --max-time 240 --seed 1

A user annotates some images, fits, annotates more and refines. This script fits
``HarmonicSegmenter(max_time=T, random_state=seed)`` (every other parameter at its default) on the
first half of the train split, scores the test split, then sets ``warm_start=True`` and fits the same
model on the second half with the same budget, and scores the test split again. Writes
``benchmarks/results/warm_start_<dataset>_seed<k>.json`` with both models' SBD, AP@0.5 and COCO AP
on the test split (predicted foreground), the fits' wall times and epochs.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from _common import machine, write_json
from reproduce import RECIPE_TRAIN_TRUTH, evaluate
from train_embedding import load

from harmonic_seg import HarmonicSegmenter

RESULTS = Path(__file__).resolve().parent / "results"


def half(data, which):
    """The first (``which=0``) or second half of a data set's images, labels and ignore masks."""
    n = len(data.images) // 2
    part = slice(0, n) if which == 0 else slice(n, None)
    ignore = None if data.ignore is None else data.ignore[part]
    return data.images[part], data.labels[part], ignore


def scored(seg, dataset, test):
    rows = evaluate(seg, dataset, test)[0]
    r = rows["harmonic, predicted foreground"]
    return {"SBD": r["SBD"], "AP@0.5": r["AP@0.5 (TP/(TP+FP+FN))"], "COCO AP": r["COCO AP"], "rows": rows}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="bbbc010", choices=["bbbc010", "cvppp_a1", "ctc_dic_c2dh_hela"])
    p.add_argument("--max-time", type=float, default=300.0, help="budget of each of the two fits, seconds")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    train = load(args.dataset, "train", truth=RECIPE_TRAIN_TRUTH.get(args.dataset, "gold"))
    test = load(args.dataset, "test")
    seg = HarmonicSegmenter(max_time=args.max_time, random_state=args.seed)
    fits = []
    for which in (0, 1):
        images, labels, ignore = half(train, which)
        if which == 1:
            seg.set_params(warm_start=True)
        t0 = time.perf_counter()
        seg.fit(images, labels, ignore=ignore)
        fit_s = time.perf_counter() - t0
        fits.append(dict(images=len(images), fit_seconds=fit_s, n_epochs=seg.n_epochs_,
                         history_length=len(seg.history_), **scored(seg, args.dataset, test)))
        print(f"{'first half' if which == 0 else 'warm start on the second half'}: {len(images)} images, "
              f"{fit_s:.0f} s, SBD {fits[-1]['SBD']:.3f}, COCO AP {fits[-1]['COCO AP']:.3f}", flush=True)
    row = dict(dataset=args.dataset, seed=args.seed, max_time=args.max_time, n_test=len(test),
               first=fits[0], warm_started=fits[1], machine=machine(),
               command=f"python benchmarks/warm_start.py --dataset {args.dataset} --max-time {args.max_time:g} "
                       f"--seed {args.seed}")
    path = write_json(args.out / f"warm_start_{args.dataset}_seed{args.seed}.json", row)
    print(f"-> {path}")


if __name__ == "__main__":
    main()
