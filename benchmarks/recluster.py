"""The networks of the defaults figures, re-clustered (no retraining): the current recovery beside the earlier ones.

    python benchmarks/defaults.py --threads 2 --save-models benchmarks/out/defaults_models   # trains, saves
    python benchmarks/recluster.py --models benchmarks/out/defaults_models   # -> results/recluster_defaults.json

For every model that ``defaults.py --save-models`` saved (``<dataset>_seed<k>``) the test split's
embeddings are predicted once and clustered three ways, each scored with the predicted foreground
(``fg_prob > fg_threshold_``) and with the given one:

* ``current``: ``predict`` as the library does it now (the fitted post-processing);
* ``recorded``: the scores that ``defaults.py`` recorded for the same model when it was trained
  (``defaults_<dataset>_seed<k>.json``): the library's clustering of that time;
* ``mean_shift``: the recovery the paper describes, mean shift of all foreground pixels at once
  with each cluster cut into its connected components (``EmbeddingClusterer(recovery="mean_shift",
  split_components=True)``), at the model's fitted window, metric, minimum size and core fraction;
* ``floor``: the connected components of the same foreground.

The three are paired: the same network, embeddings and foreground. Prints a table and writes
``benchmarks/results/recluster_defaults.json``.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

from _common import machine, write_json
from reproduce import evaluate, given_foreground, scores
from train_embedding import load

from harmonic_seg import HarmonicSegmenter
from harmonic_seg.clustering import EmbeddingClusterer

RESULTS = Path(__file__).resolve().parent / "results"
METRICS = ("SBD", "AP@0.5 (TP/(TP+FP+FN))", "COCO AP")


def paper_recovery(seg, embedded, foregrounds):
    """Mean shift of all foreground pixels, clusters cut into components, at the model's fitted settings."""
    clusterer = EmbeddingClusterer(
        bandwidth=seg.bandwidth_, metric=seg.metric_, min_size=seg.min_size_, core_fraction=seg.core_fraction_,
        recovery="mean_shift", split_components=True, fg_threshold=seg.fg_threshold_,
    ).fit()
    out = [clusterer.segment(emb, prob, foreground=fg) for (emb, prob), fg in zip(embedded, foregrounds)]
    return [lab for lab, _ in out], [sc for _, sc in out]


def recluster(model_dir, results):
    """The paired rows of one saved model."""
    m = re.fullmatch(r"(.+)_seed(\d+)", model_dir.name)
    dataset, seed = m.group(1), int(m.group(2))
    recorded = json.loads((results / f"defaults_{dataset}_seed{seed}.json").read_text())
    seg = HarmonicSegmenter.load(model_dir)
    test = load(dataset, "test")
    t0 = time.perf_counter()
    rows, _, embedded, _ = evaluate(seg, dataset, test)
    seconds = time.perf_counter() - t0
    gt = test.masks if test.masks is not None else test.labels
    out = {}
    for fg_name, fgs in (("predicted", [prob > seg.fg_threshold_ for _, prob in embedded]),
                         ("given", given_foreground(dataset, test))):
        labels, inst_scores = paper_recovery(seg, embedded, fgs)
        out[fg_name] = {
            "current": rows[f"harmonic, {fg_name} foreground"],
            "recorded": recorded["rows"][f"harmonic, {fg_name} foreground"],
            "mean_shift": scores(gt, labels, inst_scores),
            "floor": rows[f"floor: connected components of the {fg_name} foreground"],
        }
    return dict(dataset=dataset, seed=seed, n_test=len(test), seconds=seconds,
                fitted_postprocessing=recorded["fitted_postprocessing"], recovery=seg.recovery_, rows=out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", type=Path, required=True, help="the folder of defaults.py --save-models")
    p.add_argument("--results", type=Path, default=RESULTS, help="folder of the defaults_*.json files and the output")
    args = p.parse_args(argv)
    runs = []
    for model_dir in sorted(d for d in args.models.iterdir() if d.is_dir()):
        print(f"{model_dir.name}: predicting and clustering the test split", flush=True)
        runs.append(recluster(model_dir, args.results))
    path = write_json(args.results / "recluster_defaults.json", dict(
        command="python benchmarks/recluster.py --models DIR", runs=runs, machine=machine()))
    print("\n| data set | seed | foreground | " + " | ".join(
        f"{w} {k.split()[0]}" for w in ("current", "recorded", "mean shift", "floor") for k in METRICS) + " |")
    print("|---" * (3 + 4 * len(METRICS)) + "|")
    for r in runs:
        for fg_name, v in r["rows"].items():
            cells = [f"{v[w][k]:.3f}" for w in ("current", "recorded", "mean_shift", "floor") for k in METRICS]
            print(f"| {r['dataset']} | {r['seed']} | {fg_name} | " + " | ".join(cells) + " |")
    print(f"-> {path}")


if __name__ == "__main__":
    main()
