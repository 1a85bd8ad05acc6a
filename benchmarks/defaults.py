"""What a user gets with the defaults: ``HarmonicSegmenter(max_time=..., random_state=seed)`` and nothing else.

    python benchmarks/defaults.py                                   # 720 s, 3 data sets x 3 seeds (108 min)
    python benchmarks/defaults.py --max-time 30 --seeds 0 --datasets bbbc010    # a smoke run

Every other parameter keeps its default (automatic scale, width and mixed
precision, the discriminative loss, tuned post-processing). Trains on the train split of the shared data
(``splits.json``: CVPPP A1 96 plants; BBBC010 50 wells with the binary mask
as input, the paper's protocol; DIC-HeLa the silver truth of sequence 01, the hand recipe's)
and scores the test split as ``predict`` segments it (predicted foreground),
with the given foreground beside it, and the connected-component floors
(:func:`reproduce.evaluate`). Writes
``benchmarks/results/defaults_<dataset>_seed<k>.json`` with SBD,
COCO AP, the fit's wall time and its ``time_budget_``, and prints a table.
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
DATASETS = ("cvppp_a1", "bbbc010", "ctc_dic_c2dh_hela")


def run(dataset, seed, max_time, threads=None, save_dir=None):
    """Fit with the defaults on the train split, score the test split; the result row.

    The training images are the hand recipe's (DIC-HeLa: the silver truth of sequence 01, as in
    ``reproduce.py``), so that the two are compared on the same data. ``save_dir``: the fitted model is
    saved there (``<dataset>_seed<k>``), for re-clustering without retraining.
    """
    truth = RECIPE_TRAIN_TRUTH.get(dataset, "gold")
    train, test = load(dataset, "train", truth=truth), load(dataset, "test")
    params = dict(max_time=max_time, random_state=seed)
    if threads is not None:
        params["num_threads"] = threads
    seg = HarmonicSegmenter(**params)
    print(f"{dataset} seed {seed}: fitting on {len(train)} images, max_time={max_time:g} s", flush=True)
    t0 = time.perf_counter()
    seg.fit(train.images, train.labels, ignore=train.ignore)
    fit_s = time.perf_counter() - t0
    print(f"  fit took {fit_s:.1f} s ({seg.n_epochs_} epochs); scoring the {len(test)} test images", flush=True)
    if save_dir is not None:
        seg.save(Path(save_dir) / f"{dataset}_seed{seed}")
    rows, _, _, predict_s = evaluate(seg, dataset, test)
    predicted = rows["harmonic, predicted foreground"]
    return dict(
        dataset=dataset, seed=seed, params=dict(params), train_truth=truth,
        loss=seg.loss, recovery=seg.recovery_,
        n_train=len(train), n_test=len(test), max_time=max_time, fit_seconds=fit_s, predict_seconds=predict_s,
        SBD=predicted["SBD"], COCO_AP=predicted["COCO AP"], time_budget=seg.time_budget_, n_epochs=seg.n_epochs_,
        scale=seg.scale_, base_width=seg.base_width_, fitted_postprocessing=dict(
            bandwidth=seg.bandwidth_, metric=seg.metric_, min_size=seg.min_size_, core_fraction=seg.core_fraction_,
            fg_threshold=seg.fg_threshold_),
        rows=rows, machine=machine(),
    )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--max-time", type=float, default=720.0, help="HarmonicSegmenter(max_time=...), seconds")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    p.add_argument("--threads", type=int, default=None, help="num_threads (default: the library's choice)")
    p.add_argument("--out", type=Path, default=RESULTS, help="folder of the result files")
    p.add_argument("--save-models", type=Path, default=None, metavar="DIR",
                   help="save each fitted model to DIR/<dataset>_seed<k> (a new folder per model)")
    args = p.parse_args(argv)
    table = []
    for dataset in args.datasets:
        for seed in args.seeds:
            row = run(dataset, seed, args.max_time, args.threads, args.save_models)
            path = write_json(args.out / f"defaults_{dataset}_seed{seed}.json", row)
            table.append(row)
            print(f"{dataset} seed {seed}: SBD {row['SBD']:.3f}, COCO AP {row['COCO_AP']:.3f}, fit "
                  f"{row['fit_seconds']:.0f} s of {args.max_time:g} ({row['n_epochs']} epochs) -> {path}", flush=True)
    print("\n| data set | seed | SBD | COCO AP | fit seconds | epochs |\n|---|---|---|---|---|---|")
    for r in table:
        print(f"| {r['dataset']} | {r['seed']} | {r['SBD']:.3f} | {r['COCO_AP']:.3f} | {r['fit_seconds']:.0f} | "
              f"{r['n_epochs']} |")


if __name__ == "__main__":
    main()
