"""Model selection on a dask cluster: ``GridSearchCV`` under joblib's dask backend, checked against a sequential run.

What it shows
-------------
* ``GridSearchCV(HarmonicSegmenter(...), {"guides__margin": [...],
  "guides__n_guides": [...]}, cv=2)``: 4 settings x 2 folds of the 12
  training tiles of the nuclei sample, every fit a guide fitting and a
  (deliberately tiny) network training, scored by the mean symmetric best
  Dice on the other fold.
* The same search twice: sequentially in this process (``n_jobs=1``), then
  spread over the workers of a ``dask.distributed.LocalCluster`` with
  ``joblib.parallel_backend("dask")`` (``n_jobs=-1``). Each worker runs one
  thread, and every fit is pinned to one torch thread with
  ``num_threads=1``, so that the workers do not compete for cores and a fit
  computes the same numbers wherever it runs: with ``random_state`` fixed,
  both searches report the same scores and the same best parameters. On a
  real cluster, point ``Client`` at its scheduler instead of a
  ``LocalCluster``; nothing else changes.

Needs ``pip install 'harmonic_seg[dask]'``.

Budget: 2 x 9 fits of a tiny network (depth 2, base width 8, 12 minibatches
each), about a minute on a 2-core CPU (the scores are low: the point is the
mechanics and the agreement; the budget is just large enough for the four
settings to score differently, so that agreeing on the best one means
something).

Outputs (in ``--out``; existing files are never overwritten, a free name
``-1``, ``-2``, ... is chosen): ``dask_sweep.json`` (both searches' scores,
best parameters, timings).

Usage::

    python examples/dask_sweep.py              # under a minute on a 2-core CPU
    python examples/dask_sweep.py --workers 4  # more workers (one thread each)
    python examples/dask_sweep.py --quick      # seconds: a smoke test
"""

from __future__ import annotations

import sys
import time

from _common import make_parser, nuclei_split, output_folder, write_json


def parse_args(argv=None):
    parser = make_parser(__doc__, quick_help="smaller still: 8 tiles, a depth-1 network, 2 epochs of 3 steps")
    parser.add_argument("--workers", type=int, default=2, help="workers of the LocalCluster (one thread each)")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers must be at least 1; got {args.workers}.")
    return args


def make_search(quick):
    """The estimator, the grid and the search (``n_jobs`` is set by the caller)."""
    from sklearn.model_selection import GridSearchCV

    from harmonic_seg import GuideFunctionFitter, HarmonicSegmenter, Network

    budget = dict(epochs=2, steps_per_epoch=3) if quick else dict(epochs=3, steps_per_epoch=4)
    est = HarmonicSegmenter(
        guides=GuideFunctionFitter(max_iter=30),
        network=Network(depth=1 if quick else 2, base_width=8), crop_size=64, batch_size=4, learning_rate=1e-2,
        validation_fraction=0, device="cpu", loss="harmonic", scale=1.0, amp=False, tune_postprocessing=False,
        num_threads=1,  # one torch thread per fit: no oversubscription, the same numbers everywhere
        random_state=0, **budget,
    )
    grid = {"guides__margin": [0.5, 1.0], "guides__n_guides": [4, 8]}
    return GridSearchCV(est, grid, cv=2, refit=True)


def summary(search, seconds):
    return {
        "seconds": seconds,
        "best_params": search.best_params_,
        "best_score": float(search.best_score_),
        "mean_test_score": [float(s) for s in search.cv_results_["mean_test_score"]],
        "params": [dict(p) for p in search.cv_results_["params"]],
    }


def main(argv=None):
    args = parse_args(argv)
    out = output_folder(args.out)
    try:
        import joblib
        from dask.distributed import Client, LocalCluster
    except ImportError:
        sys.exit("this example needs dask.distributed: pip install 'harmonic_seg[dask]'")
    import numpy as np

    split = nuclei_split()
    X, y = split.X_train, split.y_train
    if args.quick:
        X, y = X[:8], y[:8]
    print(f"{len(X)} tiles of 128x128; grid of 4 settings x cv=2 (+ the refit)")

    t0 = time.perf_counter()
    seq = make_search(args.quick).set_params(n_jobs=1).fit(X, y)
    seq_s = time.perf_counter() - t0
    print(f"sequential: {seq_s:.1f} s, best {seq.best_params_} (SBD {seq.best_score_:.4f})")

    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        print(f"LocalCluster: {len(client.nthreads())} workers x 1 thread")
        t0 = time.perf_counter()
        with joblib.parallel_backend("dask"):
            par = make_search(args.quick).set_params(n_jobs=-1).fit(X, y)
        par_s = time.perf_counter() - t0
    print(f"dask:       {par_s:.1f} s, best {par.best_params_} (SBD {par.best_score_:.4f})")

    scores = seq.cv_results_["mean_test_score"]
    diff = float(np.max(np.abs(np.subtract(scores, par.cv_results_["mean_test_score"]))))
    same = seq.best_params_ == par.best_params_
    unique = int(np.sum(scores == scores.max())) == 1  # a tie would make any agreement trivial
    print(f"same best parameters: {same}; largest difference of the mean fold scores: {diff:.2e}; "
          f"the best setting is {'unique' if unique else 'tied'} ({np.round(scores, 4).tolist()})")
    report = {
        "tiles": len(X),
        "workers": args.workers,
        "sequential": summary(seq, seq_s),
        "dask": summary(par, par_s),
        "same_best_params": same,
        "best_is_unique": unique,
        "max_abs_score_difference": diff,
    }
    path = write_json(out, "dask_sweep.json", report)
    print(f"wrote {path}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
