"""Speed of the post-processing tuning: this checkout beside an earlier commit, on one trained network.

Trains the demo's network once with this checkout (:func:`harmonic_seg.demo.train_and_score`, the
shipped worm sample, ``--epochs`` epochs, no tuning) and saves it in a temporary folder. Each
measurement then loads that model in a fresh Python process whose ``PYTHONPATH`` is one version's
tree and times ``optimize_postprocessing`` on the network's own held-out wells
(``validation_indices_``, as ``fit(tune_postprocessing=True)`` tunes), through the public API only.
The versions alternate (ABBA order) over ``--repeats`` repeats. Every measurement also predicts the
4 test wells with the tuned clustering: the versions must choose the same setting and give the same
label maps and scores (checked; the run fails otherwise). Writes ``--out``
(benchmarks/results/tuning_speed.json) with the machine, every time and the medians' ratio.

The earlier commit (``--base``) is checked out into a temporary ``git worktree``.

Examples
--------
python benchmarks/bench_tuning.py --repeats 3
python benchmarks/bench_tuning.py --quick --out /tmp/tuning_speed.json   (a smoke run)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import git, machine, run_worker, write_json

ROOT = Path(__file__).resolve().parents[1]


def measure(args):
    """Tune the saved model with the harmonic_seg on ``PYTHONPATH``; a dict of what it took (the worker's output)."""
    import numpy as np

    import harmonic_seg
    from harmonic_seg import HarmonicSegmenter
    from harmonic_seg.io import load_worm_sample

    where = Path(harmonic_seg.__file__).resolve().parents[1]
    if where != Path(args.expect_root).resolve():
        raise SystemExit(f"imported harmonic_seg from {where}, not from {args.expect_root}")
    seg = HarmonicSegmenter.load(args.model)
    data = load_worm_sample()
    val = list(seg.validation_indices_)
    t0 = time.perf_counter()
    seg.optimize_postprocessing([data.images[i] for i in val], [data.labels[i] for i in val])
    seconds = time.perf_counter() - t0
    test = data.images[16:]
    labels, scores = seg.predict(test, foreground=[im > 0 for im in test], return_scores=True)
    digest = hashlib.sha256()
    for arr in (*labels, *scores):
        digest.update(np.ascontiguousarray(arr).tobytes())
    chosen = {k: getattr(seg, k) for k in ("recovery_", "metric_", "bandwidth_", "min_size_", "core_fraction_",
                                             "fg_threshold_")}
    return {"tuning_seconds": seconds, "validation_wells": val, "chosen": chosen,
            "prediction_sha256": digest.hexdigest()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", default="dd08168", help="the earlier commit to compare with")
    p.add_argument("--repeats", type=int, default=3, help="measurements of each version (alternating)")
    p.add_argument("--epochs", type=int, default=30, help="training epochs of the network that is tuned")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "tuning_speed.json"))
    p.add_argument("--quick", action="store_true", help="a smoke run: 1 repeat of a network trained for 1 epoch")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--expect-root", help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(measure(args), default=float))
        return 0
    if args.quick:
        args.repeats, args.epochs = 1, 1

    sys.path.insert(0, str(ROOT))  # this checkout's harmonic_seg trains the network and describes the machine
    from harmonic_seg.demo import train_and_score

    base_commit = git("rev-parse", args.base, cwd=ROOT)
    with tempfile.TemporaryDirectory(prefix="harmonic_seg_tuning_") as tmp:
        tmp = Path(tmp)
        model = tmp / "model"
        train_and_score(max_time=None, epochs=args.epochs, verbose=0, save_model=model,
                        params={"tune_postprocessing": False})
        base_tree = tmp / f"base-{args.base}"
        git("worktree", "add", "--detach", str(base_tree), base_commit, cwd=ROOT)
        try:
            trees = {"current": ROOT, args.base: base_tree}
            runs = {name: [] for name in trees}
            for r in range(args.repeats):
                for name in (list(trees) if r % 2 == 0 else list(trees)[::-1]):
                    result = run_worker(__file__, trees[name], ["--model", model])
                    result["repeat"] = r
                    runs[name].append(result)
                    print(f"repeat {r} {name:>10}: {result['tuning_seconds']:.1f} s", flush=True)
        finally:
            git("worktree", "remove", "--force", str(base_tree), cwd=ROOT)
    outcomes = {(json.dumps(run["chosen"], sort_keys=True), run["prediction_sha256"]) for rs in runs.values()
                for run in rs}
    if len(outcomes) != 1:
        raise SystemExit(f"the versions tuned or predicted differently: {sorted(outcomes)}")
    summary = {name: statistics.median([run["tuning_seconds"] for run in rs]) for name, rs in runs.items()}
    summary["speedup_base_over_current"] = summary[args.base] / summary["current"]
    payload = {
        "command": "python benchmarks/bench_tuning.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine(),
        "config": {"model": f"the demo's network, {args.epochs} epochs, random_state=0", "images":
                   "its held-out wells of the shipped worm sample (validation_indices_)"},
        "versions": {"current": {"commit": git("rev-parse", "HEAD", cwd=ROOT), "uncommitted_changes":
                                 bool(git("status", "--porcelain", "--untracked-files=no", cwd=ROOT))},
                     args.base: {"commit": base_commit}},
        "same_outcome": True,
        "runs": runs,
        "median_tuning_seconds": summary,
    }
    path = write_json(args.out, payload)
    print(f"current {summary['current']:.1f} s, {args.base} {summary[args.base]:.1f} s "
          f"({summary['speedup_base_over_current']:.2f}x); wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
