"""Training throughput of HarmonicSegmenter on a CPU: this checkout beside an earlier commit, in one run.

Trains ``HarmonicSegmenter(depth=4, base_width=16, crop_size=192, batch_size=4)``
(the CPU configuration; ``amp`` and ``loss`` as each version's defaults unless
``--amp`` / ``--loss`` set them for both) for ``--epochs`` epochs of
``--steps`` optimiser steps, with no validation images and no post-processing
tuning, and reads the seconds of every epoch from ``history_`` (``dur``): the
steps per second of an epoch are ``--steps / dur``; the first epoch (warm-up)
is left out. The data are the shipped worm sample (``load_worm_sample``, its
16 training wells; ``--data synthetic``: ``make_instances``), at ``scale=1``,
drawn once and given to both versions as the same arrays.

The earlier commit (``--base``, 589e6ec by default) is checked out into a
temporary ``git worktree`` under the system's temporary folder; every
measurement runs in a fresh Python process whose ``PYTHONPATH`` is the version's
tree, through the public API only. The versions alternate (ABBA order) over
``--repeats`` repeats, so that a drift of the machine's speed touches both
alike. Writes ``--out`` (benchmarks/results/train_throughput.json) with the
machine, the settings each version resolved, every epoch's steps/s and the
medians and their ratio.

Examples
--------
python benchmarks/bench_train_throughput.py --repeats 4 --epochs 4 --steps 20
python benchmarks/bench_train_throughput.py --quick --out /tmp/train_throughput.json   (a smoke run)
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = dict(depth=4, base_width=16, crop_size=192, batch_size=4)


# ------------------------------------------------------------------------------ one measurement
def measure(args):
    """Train once with the harmonic_seg on ``PYTHONPATH``; a dict of what it took (the worker's output)."""
    import numpy as np

    import harmonic_seg
    from harmonic_seg import GuideFunctionFitter, HarmonicSegmenter

    where = Path(harmonic_seg.__file__).resolve().parents[1]
    if where != Path(args.expect_root).resolve():
        raise SystemExit(f"imported harmonic_seg from {where}, not from {args.expect_root}")
    with np.load(args.data_file) as npz:
        n = int(npz["n"])
        X = [npz[f"image_{i}"] for i in range(n)]
        y = [npz[f"labels_{i}"] for i in range(n)]
    params = dict(CONFIG, epochs=args.epochs, steps_per_epoch=args.steps, validation_fraction=0.0,
                  tune_postprocessing=False, scale=1.0, num_threads=args.threads, random_state=0,
                  guides=GuideFunctionFitter(max_iter=args.guide_iters))
    if args.amp != "default":
        params["amp"] = {"none": None, "true": True, "false": False, "auto": "auto"}[args.amp]
    if args.loss != "default":
        params["loss"] = args.loss
    if "network" in inspect.signature(HarmonicSegmenter).parameters:  # versions with a nested Network
        from harmonic_seg import Network

        params["network"] = Network(depth=params.pop("depth"), base_width=params.pop("base_width"))
    seg = HarmonicSegmenter(**params)
    t0 = time.perf_counter()
    seg.fit(X, y)
    wall = time.perf_counter() - t0
    durations = [float(rec["dur"]) for rec in seg.history_]
    resolved = {k.removeprefix("network__"): v for k, v in seg.get_params(deep=True).items()
                if k.removeprefix("network__") in ("amp", "loss", "learning_rate", "norm", "variant", "num_threads",
                                                   "device", "scale")}
    return {"harmonic_seg": harmonic_seg.__version__, "resolved_params": resolved,
            "epoch_seconds": durations, "steps_per_second": [args.steps / d for d in durations],
            "fit_seconds": wall}


# ------------------------------------------------------------------------------------ the driver
def _git(*cmd, cwd=ROOT):
    return subprocess.run(["git", *cmd], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def _data(kind, path):
    """Draw the training data once (with this checkout's harmonic_seg) and store it for both versions."""
    import numpy as np

    if kind == "worms":
        from harmonic_seg.io import load_worm_sample

        d = load_worm_sample()
        X, y = d.images[:16], d.labels[:16]
    else:
        from harmonic_seg.synthetic import make_instances

        d = make_instances(n_images=16, shape=(384, 384), random_state=0)
        X, y = d.images, d.labels
    arrays = {f"image_{i}": im for i, im in enumerate(X)}
    arrays.update({f"labels_{i}": lab for i, lab in enumerate(y)})
    np.savez(path, n=len(X), **arrays)
    return {"kind": kind, "n_images": len(X), "shapes": sorted({tuple(int(s) for s in im.shape) for im in X})}


def _run(tree, args, data_file):
    """One measurement in a fresh process with ``tree`` first on ``PYTHONPATH``."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--expect-root", str(tree),
           "--data-file", str(data_file), "--epochs", str(args.epochs), "--steps", str(args.steps),
           "--guide-iters", str(args.guide_iters), "--amp", args.amp, "--loss", args.loss]
    if args.threads is not None:
        cmd += ["--threads", str(args.threads)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tree)
    if proc.returncode != 0:
        raise RuntimeError(f"the measurement in {tree} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _median(values):
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else 0.5 * (values[mid - 1] + values[mid])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", default="589e6ec", help="the earlier commit to compare with")
    p.add_argument("--repeats", type=int, default=4, help="measurements of each version (alternating)")
    p.add_argument("--epochs", type=int, default=4, help="epochs per measurement (the first is left out)")
    p.add_argument("--steps", type=int, default=20, help="optimiser steps per epoch")
    p.add_argument("--threads", type=int, default=None, help="num_threads (default: the library's choice)")
    p.add_argument("--amp", choices=["default", "none", "auto", "true", "false"], default="default",
                   help="amp of both versions (default: each version's own default)")
    p.add_argument("--loss", choices=["default", "harmonic", "discriminative"], default="default",
                   help="loss of both versions (default: each version's own default)")
    p.add_argument("--data", choices=["worms", "synthetic"], default="worms")
    p.add_argument("--guide-iters", type=int, default=100, help="iterations of the guide search (not timed)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "train_throughput.json"))
    p.add_argument("--quick", action="store_true", help="a smoke run: 1 repeat, 2 epochs of 2 steps, 64-pixel data")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--expect-root", help=argparse.SUPPRESS)
    p.add_argument("--data-file", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(measure(args)))
        return 0
    if args.quick:
        args.repeats, args.epochs, args.steps, args.guide_iters = 1, 2, 2, 5
    if args.epochs < 2:
        p.error("--epochs must be at least 2: the first epoch is a warm-up and is left out")

    sys.path.insert(0, str(ROOT))  # this checkout's harmonic_seg for the data and the machine's description
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from _common import machine, write_json

    base_commit = _git("rev-parse", args.base)
    with tempfile.TemporaryDirectory(prefix="harmonic_seg_throughput_") as tmp:
        tmp = Path(tmp)
        base_tree = tmp / f"base-{args.base}"
        _git("worktree", "add", "--detach", str(base_tree), base_commit)
        try:
            data_file = tmp / "data.npz"
            data = _data("synthetic" if args.quick else args.data, data_file)
            if args.quick:  # tiny images for a smoke run of seconds
                import numpy as np

                with np.load(data_file) as npz:
                    small = {k: (v[:64, :64] if v.ndim >= 2 else v) for k, v in npz.items()}
                np.savez(data_file, **small)
                data["shapes"] = [(64, 64)]
            trees = {"current": ROOT, args.base: base_tree}
            runs = {name: [] for name in trees}
            for r in range(args.repeats):
                order = list(trees) if r % 2 == 0 else list(trees)[::-1]
                for name in order:
                    result = _run(trees[name], args, data_file)
                    result["repeat"] = r
                    runs[name].append(result)
                    per_run = _median(result["steps_per_second"][1:])
                    print(f"repeat {r} {name:>10}: {per_run:.3f} steps/s (median of epochs 2..{args.epochs})",
                          flush=True)
        finally:
            _git("worktree", "remove", "--force", str(base_tree))
    summary = {name: _median([_median(run["steps_per_second"][1:]) for run in rs]) for name, rs in runs.items()}
    summary["ratio_current_to_base"] = summary["current"] / summary[args.base]
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    payload = {
        "command": "python benchmarks/bench_train_throughput.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine(),
        "config": {**CONFIG, "epochs": args.epochs, "steps_per_epoch": args.steps, "scale": 1.0,
                   "validation_fraction": 0.0, "tune_postprocessing": False, "num_threads": args.threads,
                   "amp": args.amp, "loss": args.loss, "guide_max_iter": args.guide_iters},
        "data": data,
        "versions": {"current": {"commit": _git("rev-parse", "HEAD"), "uncommitted_changes": dirty},
                     args.base: {"commit": base_commit}},
        "runs": runs,
        "median_steps_per_second": summary,
    }
    path = write_json(args.out, payload)
    print(f"current {summary['current']:.3f} steps/s, {args.base} {summary[args.base]:.3f} steps/s "
          f"(ratio {summary['ratio_current_to_base']:.3f}); wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
