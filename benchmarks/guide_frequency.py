"""Stage 2 against the frequency range of the guides, on the embedded nuclei sample.

Stage 1 only asks that the embeddings of neighbouring instances be eps apart,
which guides of any frequency manage; stage 2 has to regress them. This script
trains the demo's network (depth 3, width 16, 128x128 crops, batch 8,
``--epochs`` x 10 minibatches, learning rate 3e-3, one CPU thread) on the 12
training tiles of the shipped nuclei sample with guides searched from several
initial frequency ranges, and scores the 4 test tiles (``harmonic_seg.demo``'s
split). Reported per range: the guides' periods relative to the median nucleus
diameter, the separation of stage 1, the test embedding L1 beside that of the
best constant, SBD, AP@0.5 and COCO AP.

Usage::

    python benchmarks/guide_frequency.py                    # all ranges, ~5 min each
    python benchmarks/guide_frequency.py --ranges auto 0,50 --jobs 2

Results: ``benchmarks/out/guide_frequency.json`` and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_json  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"


def _range(text):
    if text == "auto":
        return "auto"
    lo, hi = (float(v) for v in text.split(","))
    return (lo, hi)


def run(init_range, epochs, seed):
    """Train and score one configuration; returns a dict of figures."""
    from harmonic_seg import GuideFunctionFitter, HarmonicSegmenter, Network
    from harmonic_seg.demo import TEST_TILES, evaluate
    from harmonic_seg.guides import embedding_map
    from harmonic_seg.io.sample import load_nuclei_sample

    data = load_nuclei_sample(tile=128)
    train = [i for i in range(len(data)) if i not in TEST_TILES]
    Xtr, ytr = [data.images[i] for i in train], [data.labels[i] for i in train]
    Xte, yte = [data.images[i] for i in TEST_TILES], [data.labels[i] for i in TEST_TILES]
    seg = HarmonicSegmenter(
        guides=GuideFunctionFitter(init_range=init_range, random_state=seed),
        network=Network(depth=3, base_width=16),
        crop_size=128,
        batch_size=8,
        steps_per_epoch=10,
        epochs=epochs,
        learning_rate=3e-3,
        validation_fraction=0.17,
        tune_postprocessing=True,
        num_threads=1,
        random_state=seed,
    )
    t0 = time.perf_counter()
    seg.fit(Xtr, ytr)
    fit_s = time.perf_counter() - t0
    pred, scores = seg.predict(Xte, return_scores=True)
    guides = seg.guides_.guides_
    l1, const = [], []
    for (emb, _), y in zip(seg.predict_embeddings(Xte), yte):
        target = embedding_map(y, guides)
        fg = y > 0
        l1.append(np.abs(emb[:, fg] - target[:, fg]).mean())
        const.append(np.abs(target[:, fg] - np.median(target[:, fg], axis=1, keepdims=True)).mean())
    areas = np.concatenate([np.bincount(y.ravel())[1:] for y in ytr])
    diameter = 2 * np.sqrt(np.median(areas[areas > 0]) / np.pi)
    periods = 2 * np.pi / np.abs(guides.frequencies).max(axis=1)  # shortest axis period of each guide
    return {
        "init_range": init_range,
        "median_period_over_diameter": float(np.median(periods) / diameter),
        "min_period_over_diameter": float(periods.min() / diameter),
        "separation": seg.guides_.separation_,
        "test_l1": float(np.mean(l1)),
        "constant_l1": float(np.mean(const)),
        "bandwidth": seg.bandwidth_,
        "metric": seg.metric_,
        "fit_seconds": fit_s,
        **evaluate(yte, pred, scores),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ranges", nargs="+", default=["auto", "0,50", "0,20", "0,10", "0,5"],
                    help='"auto" or LOW,HIGH in paper units (radians per tile side)')
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2, help="configurations trained at once (one thread each)")
    ap.add_argument("--out", default=str(OUT / "guide_frequency.json"))
    args = ap.parse_args(argv)
    ranges = [_range(r) for r in args.ranges]
    with ProcessPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(run, ranges, [args.epochs] * len(ranges), [args.seed] * len(ranges)))
    write_json(args.out, {"machine": machine(), "epochs": args.epochs, "seed": args.seed, "rows": rows})
    print("| init_range | period / diameter (median, min) | separation | test L1 | constant L1 | SBD | AP@0.5 | COCO AP |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['init_range']} | {r['median_period_over_diameter']:.1f}, {r['min_period_over_diameter']:.1f} "
            f"| {r['separation']:.3f} | {r['test_l1']:.3f} | {r['constant_l1']:.3f} | {r['SBD']:.3f} "
            f"| {r['AP@0.5 (TP/(TP+FP+FN))']:.3f} | {r['COCO AP']:.3f} |"
        )
    print(f"\n{args.out}")


if __name__ == "__main__":
    main()
