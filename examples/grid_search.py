"""Model selection: ``GridSearchCV`` over the guide parameters of a normaliser + segmenter pipeline.

What it shows
-------------
* A :class:`sklearn.pipeline.Pipeline` of ``PercentileNormalizer`` (per-image
  intensity scaling; the segmenter's own normalisation is switched off with
  ``percentiles=None``) and ``HarmonicSegmenter``. The stage-1 parameters are
  reached through the pipeline as ``segment__guides__margin`` and
  ``segment__guides__n_guides``.
* ``GridSearchCV(..., cv=3, scoring=SCORERS["sbd"])``: every candidate and
  fold fits guide functions and trains a network on two thirds of the 12
  training tiles of the nuclei sample and scores the mean symmetric best Dice
  of its predictions on the other third (``SCORERS["ap50"]`` /
  ``SCORERS["ap75"]`` score the DSB2018 AP instead). With the clustering's
  ``bandwidth=None`` the mean-shift bandwidth follows the margin, so the margin also moves the
  clustering.
* A summary of ``cv_results_`` (mean and spread of the fold scores, fit times,
  ranks), the best parameters, and the refitted best pipeline scored on the 4
  held-out tiles.

Budget: 4 candidates x 3 folds + the refit = 13 fits of a deliberately tiny
network (20 minibatches each), under a minute on a 2-core CPU. The scores are
therefore low and the ranking says little about the method; the point is the
mechanics. A real search trains each candidate properly (hours on a CPU,
minutes on a GPU).

Outputs (in ``--out``; existing files are never overwritten, a free name
``-1``, ``-2``, ... is chosen): ``grid_search.json`` (the summary of
``cv_results_``, the best parameters and the held-out score).

Usage::

    python examples/grid_search.py            # under a minute on a 2-core CPU
    python examples/grid_search.py --quick    # seconds: a smoke test
"""

from __future__ import annotations

import sys
import time

from _common import add_device_option, make_parser, nuclei_split, output_folder, quick_budget, write_json


def parse_args(argv=None):
    parser = make_parser(__doc__)
    add_device_option(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    out = output_folder(args.out)

    import numpy as np
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import Pipeline

    from harmonic_seg import GuideFunctionFitter, HarmonicSegmenter, Network, PercentileNormalizer
    from harmonic_seg.metrics import SCORERS

    if args.quick:
        budget = quick_budget()  # a tiny network, one torch thread
        search_iter = 10
    else:
        budget = dict(network=Network(depth=2, base_width=8), epochs=4, steps_per_epoch=5, crop_size=64, batch_size=4)
        search_iter = 200  # cap the stage-1 search: some (margin, N) pairs cannot be fully separated

    split = nuclei_split()  # 12 training and 4 test tiles of 128x128
    test = split.test
    X, y = split.X_train, split.y_train
    X_test, y_test = split.X_test, split.y_test

    pipe = Pipeline([
        ("normalize", PercentileNormalizer(1.0, 99.8)),
        ("segment", HarmonicSegmenter(
            guides=GuideFunctionFitter(max_iter=search_iter),  # its random_state comes from the segmenter's
            percentiles=None,  # already normalised by the pipeline
            learning_rate=5e-3,
            validation_fraction=0,  # the folds hold data out already
            device=args.device,
            random_state=0,
            **budget,
        )),
    ])
    grid = {"segment__guides__margin": [0.3, 0.7], "segment__guides__n_guides": [4, 12]}
    search = GridSearchCV(pipe, grid, cv=3, scoring=SCORERS["sbd"], error_score="raise", n_jobs=1)
    n_fits = len(grid["segment__guides__margin"]) * len(grid["segment__guides__n_guides"]) * 3 + 1
    print(f"grid search: {n_fits} fits on {len(X)} tiles of the nuclei sample ...")
    t0 = time.perf_counter()
    search.fit(X, y)
    search_s = time.perf_counter() - t0

    res = search.cv_results_
    order = np.argsort(res["rank_test_score"], kind="stable")
    print(f"\ncv_results_ ({search_s:.0f} s), mean symmetric best Dice over 3 folds:")
    print(f"{'rank':>4}  {'margin':>6}  {'N':>3}  {'SBD mean':>8}  {'std':>6}  {'folds':<20}  {'fit s':>6}")
    rows = []
    for i in order:
        params = res["params"][i]
        folds = [float(res[f"split{k}_test_score"][i]) for k in range(3)]
        row = {
            "margin": params["segment__guides__margin"],
            "n_guides": params["segment__guides__n_guides"],
            "mean_test_score": float(res["mean_test_score"][i]),
            "std_test_score": float(res["std_test_score"][i]),
            "split_test_scores": folds,
            "rank_test_score": int(res["rank_test_score"][i]),
            "mean_fit_time": float(res["mean_fit_time"][i]),
            "mean_score_time": float(res["mean_score_time"][i]),
        }
        rows.append(row)
        print(f"{row['rank_test_score']:>4}  {row['margin']:>6}  {row['n_guides']:>3}  "
              f"{row['mean_test_score']:>8.3f}  {row['std_test_score']:>6.3f}  "
              f"{' '.join(f'{s:.3f}' for s in folds):<20}  {row['mean_fit_time']:>6.1f}")

    best = search.best_estimator_.named_steps["segment"]
    test_score = search.score(X_test, y_test)  # the scorer: SCORERS["sbd"]
    print(f"\nbest parameters: {search.best_params_} (cross-validated SBD {search.best_score_:.3f})")
    print(f"refitted on all {len(X)} tiles: guides separate {best.guides_.separation_:.1%} of the training pairs, "
          f"mean-shift bandwidth {best.bandwidth_:.2f}")
    ap50 = SCORERS["ap50"](search.best_estimator_, X_test, y_test)
    print(f"held-out tiles {test}: SBD {test_score:.3f}, AP@0.5 {ap50:.3f}")

    report = {
        "budget": budget,
        "grid": grid,
        "cv": 3,
        "scoring": "SCORERS['sbd'] (mean symmetric best Dice)",
        "search_seconds": search_s,
        "cv_results": rows,
        "best_params": search.best_params_,
        "best_score": float(search.best_score_),
        "held_out_sbd": float(test_score),
        "held_out_ap50": float(ap50),
    }
    path = write_json(out, "grid_search.json", report)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
