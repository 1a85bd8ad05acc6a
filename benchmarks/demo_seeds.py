"""The demo with three seeds: does the embedding beat the floor whatever the seed?

    python benchmarks/demo_seeds.py                    # seeds 0 1 2 -> benchmarks/results/demo_seeds.json
    python benchmarks/demo_seeds.py --seeds 0 --out /tmp/d.json

Runs what ``harmonic-seg demo`` runs (:func:`harmonic_seg.demo.train_and_score`: the demo's pinned
settings, 16 training wells of the shipped BBBC010 sample, 4 held-out wells, the given mask as the
foreground) once per seed, and records the scores of the harmonic segmentation beside the floor
(connected components of the mask) with the fit's wall time.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _common import machine, write_json

from harmonic_seg.demo import train_and_score

HERE = Path(__file__).resolve().parent


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--max-time", type=float, default=None, help="seconds per fit instead of --epochs")
    p.add_argument("--out", type=Path, default=HERE / "results" / "demo_seeds.json")
    args = p.parse_args(argv)
    runs = []
    for seed in args.seeds:
        report, _ = train_and_score(epochs=args.epochs, max_time=args.max_time, random_state=seed, verbose=0)
        report["seed"] = seed
        runs.append(report)
        h, f = report["harmonic"], report["floor (connected components of the mask)"]
        print(f"seed {seed}: " + ", ".join(f"{k} {h[k]:.3f} (floor {f[k]:.3f})" for k in
                                           ("SBD", "AP@0.5 (TP/(TP+FP+FN))", "COCO AP"))
              + f"; fit {report['fit_seconds']:.0f} s", flush=True)
    command = "python benchmarks/demo_seeds.py" + (f" --max-time {args.max_time:g}" if args.max_time else "")
    path = write_json(args.out, dict(command=command, max_time=args.max_time,
                                     epochs=None if args.max_time else args.epochs, runs=runs,
                                     machine=machine()))
    print(f"-> {path}")


if __name__ == "__main__":
    main()
