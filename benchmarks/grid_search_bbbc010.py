"""GridSearchCV over the margin eps and the number of guides N on the BBBC010 train split.

The paper's protocol (binary foreground mask as input); 3-fold cross-validation
scored by mean symmetric best Dice; a small CPU budget per fit (``--steps``
minibatches of a small network). Prints cv_results_ as a markdown table and
writes JSON.

    python benchmarks/grid_search_bbbc010.py --steps 60
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _common import machine, write_json
from sklearn.model_selection import GridSearchCV, KFold

from harmonic_seg import GuideFunctionFitter, HarmonicSegmenter, Network
from harmonic_seg.io import load_bbbc010
from harmonic_seg.metrics import SCORERS


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=60, help="training minibatches per fit")
    p.add_argument("--width", type=int, default=8)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--n-jobs", type=int, default=1)
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "out" / "grid_search_bbbc010.json"))
    args = p.parse_args(argv)

    data = load_bbbc010(split="train", input="mask")
    seg = HarmonicSegmenter(
        guides=GuideFunctionFitter(),
        network=Network(depth=args.depth, base_width=args.width), crop_size=args.crop, batch_size=4,
        epochs=1, steps_per_epoch=args.steps, learning_rate=3e-3, validation_fraction=0.0,
        device="cpu", num_threads=2 if args.n_jobs == 1 else 1, random_state=0,
    )
    grid = {"guides__margin": [0.3, 0.5, 0.7], "guides__n_guides": [8, 12]}
    gs = GridSearchCV(seg, grid, cv=KFold(3, shuffle=True, random_state=0), scoring={"sbd": SCORERS["sbd"], "ap50": SCORERS["ap50"]},
                      refit="sbd", n_jobs=args.n_jobs, error_score=np.nan)
    t0 = time.perf_counter()
    gs.fit(data.images, data.labels)
    wall = time.perf_counter() - t0
    res = gs.cv_results_
    rows = []
    for i, params in enumerate(res["params"]):
        rows.append(dict(margin=params["guides__margin"], n_guides=params["guides__n_guides"],
                         sbd=res["mean_test_sbd"][i], sbd_std=res["std_test_sbd"][i],
                         ap50=res["mean_test_ap50"][i], rank=int(res["rank_test_sbd"][i]),
                         fit_s=res["mean_fit_time"][i], score_s=res["mean_score_time"][i]))
    info = machine()
    print(f"GridSearchCV, 3-fold, BBBC010 train split (50 wells, mask input), {args.steps} steps of 4 crops "
          f"{args.crop}x{args.crop}, depth {args.depth}, width {args.width}; total {wall:.0f} s on {info.get('cpu')}, "
          f"{info['cpu_count']} cores, {info['date']}\n")
    print("| margin eps | N guides | mean SBD (± sd) | mean AP@0.5 | rank | fit (s) | score (s) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['margin']} | {r['n_guides']} | {r['sbd']:.3f} ± {r['sbd_std']:.3f} | {r['ap50']:.3f} | {r['rank']} "
              f"| {r['fit_s']:.0f} | {r['score_s']:.0f} |")
    print(f"\nbest: {gs.best_params_}")
    write_json(args.out, {"machine": info, "args": vars(args), "wall_seconds": wall, "rows": rows, "best": gs.best_params_})


if __name__ == "__main__":
    main()
