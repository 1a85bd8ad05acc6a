"""The networks of the defaults figures, re-clustered (no retraining): the current recovery beside the earlier ones.

    python benchmarks/run.py defaults --save-models benchmarks/out/defaults_models   # trains, saves
    python benchmarks/recluster.py --models benchmarks/out/defaults_models   # -> results/recluster_defaults.json

For every model that ``run.py defaults --save-models`` saved (``<dataset>_seed<k>``) the test split's
embeddings are predicted once and clustered three ways, each scored with the predicted foreground
(``fg_prob > fg_threshold_``) and with the given one:

* ``current``: ``predict`` as the library does it now (the fitted post-processing);
* ``recorded``: the scores that ``run.py`` recorded for the same model when it was trained
  (``defaults_<dataset>_seed<k>.json``): the library's clustering of that time;
* ``mean_shift``: the recovery the paper describes, mean shift of all foreground pixels at once
  with each cluster cut into its connected components (``EmbeddingClusterer(recovery="mean_shift",
  split_components=True)``), at the model's fitted window, metric, minimum size and core fraction;
* ``floor``: the connected components of the same foreground.

With ``--retune`` the post-processing is first tuned again by the library as installed
(``optimize_postprocessing``) on the held-out training images that the fit tuned on (the same
subset when the time budget held fewer: spread over the foreground areas, as ``fit`` picks them), so
that ``current`` is what a fit with this library would give with the same network; ``retuned``
then records the setting chosen at training and the one chosen now.

The three are paired: the same network, embeddings and foreground. Prints a table and writes
``benchmarks/results/recluster_defaults.json``.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import numpy as np
from _common import machine, write_json
from reproduce import RECIPE_TRAIN_TRUTH, evaluate, given_foreground, scores
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


SETTING = ("recovery", "metric", "bandwidth", "core_fraction", "min_size", "min_share", "fg_threshold")


def tuned_subset(labels, n):
    """The ``n`` label maps ``fit`` tunes on when its time budget holds fewer than all held-out images:
    spread evenly over the range of their foreground areas (one: the median), in their order."""
    order = np.argsort([np.count_nonzero(lab) for lab in labels], kind="stable")
    if n is None or n >= len(order):
        return list(range(len(order)))
    picks = [(len(order) - 1) // 2] if n == 1 else np.round(np.linspace(0, len(order) - 1, n)).astype(int)
    return sorted(int(order[p]) for p in picks)


def retune(seg, dataset):
    """Tune ``seg``'s post-processing again on the held-out images its fit tuned on; the two settings."""
    train = load(dataset, "train", truth=RECIPE_TRAIN_TRUTH.get(dataset, "gold"))
    val = list(seg.validation_indices_)
    n = (seg.time_budget_ or {}).get("tuning_images")
    tuned = [val[i] for i in tuned_subset([train.labels[i] for i in val], n)]
    before = {k: getattr(seg, k + "_") for k in SETTING}
    t0 = time.perf_counter()
    seg.optimize_postprocessing([train.images[i] for i in tuned], [train.labels[i] for i in tuned])
    checked = [{k: r[k] for k in ("recovery", "min_size", "check_sbd", "check_coco_ap")}
               for r in seg.tuning_results_ if "check_sbd" in r]
    return dict(at_training=before, now={k: getattr(seg, k + "_") for k in SETTING}, images=tuned,
                seconds=time.perf_counter() - t0, floor_check=checked)


def recluster(model_dir, results, do_retune=False):
    """The paired rows of one saved model."""
    m = re.fullmatch(r"(.+)_seed(\d+)", model_dir.name)
    dataset, seed = m.group(1), int(m.group(2))
    recorded = json.loads((results / f"defaults_{dataset}_seed{seed}.json").read_text())
    seg = HarmonicSegmenter.load(model_dir)
    retuned = retune(seg, dataset) if do_retune else None
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
                fitted_postprocessing=recorded["fitted_postprocessing"], recovery=seg.recovery_, retuned=retuned,
                rows=out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", type=Path, required=True, help="the folder of run.py defaults --save-models")
    p.add_argument("--results", type=Path, default=RESULTS, help="folder of the defaults_*.json files and the output")
    p.add_argument("--retune", action="store_true",
                   help="tune the post-processing again with this library on the images the fit tuned on")
    args = p.parse_args(argv)
    runs = []
    for model_dir in sorted(d for d in args.models.iterdir() if d.is_dir()):
        print(f"{model_dir.name}: predicting and clustering the test split", flush=True)
        runs.append(recluster(model_dir, args.results, args.retune))
    path = write_json(args.results / "recluster_defaults.json", dict(
        command="python benchmarks/recluster.py --models DIR" + (" --retune" if args.retune else ""), runs=runs,
        machine=machine()))
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
