"""Where the segmentation is lost: stage 1 (guides) or stage 2 (network)?

    python benchmarks/oracle.py bbbc010 cvppp_a1 ctc_dic_c2dh_hela

For each data set, guide functions are fitted on the training label maps by
the paper's search (12 guides, margin 0.5, ``init_range`` "auto", seed 0, as
``reproduce.py`` fitted them before its recipes chose other starting ranges;
see ``RECIPE_GUIDES`` there); then the *target* embeddings of the test label maps (what a
perfect network would predict) are clustered by the library's mean shift with
bandwidth eps over the ground-truth foreground, and scored with the same
metrics as the reproduction tables, beside the trivial floor (connected
components of the same foreground). A high oracle score and a low harmonic
score put the defect in stage 2 (training); a low oracle score puts it in the
guides. Results: ``benchmarks/out/oracle.json``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import machine, write_json
from reproduce import OUT, scores
from skimage.measure import label as connected_components
from train_embedding import load

from harmonic_seg import GuideFunctionFitter
from harmonic_seg.embeddings import embedding_map
from harmonic_seg.nn.cluster import cluster_embeddings


def oracle(dataset, seed=0):
    train, test = load(dataset, "train"), load(dataset, "test")
    t0 = time.perf_counter()
    fitter = GuideFunctionFitter(n_guides=12, margin=0.5, random_state=seed).fit(train.labels)
    fit_s = time.perf_counter() - t0
    guides = fitter.guides_
    pred, conf = [], []
    for truth in test.labels:
        # overlap pixels (BBBC010) carry label 0 and stay background, like any non-overlapping prediction
        lab, conf_i = cluster_embeddings(embedding_map(truth, guides), truth > 0, fitter.margin)
        pred.append(lab)
        conf.append(conf_i)
    gt = test.masks if test.masks is not None else test.labels
    floor = [connected_components(lab > 0, connectivity=1).astype(np.int32) for lab in test.labels]
    return {
        "guide_fit_seconds": fit_s,
        "rows": {
            "oracle: mean shift of the target embeddings": scores(gt, pred, conf),
            "floor: connected components of the same foreground": scores(gt, floor),
        },
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("datasets", nargs="+", choices=["bbbc010", "cvppp_a1", "ctc_dic_c2dh_hela"])
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    results = {}
    for name in args.datasets:
        results[name] = oracle(name, args.seed)
        rows = results[name]["rows"]
        keys = list(next(iter(rows.values())))
        print(f"\n{name} (test split; guides fitted in {results[name]['guide_fit_seconds']:.0f} s)")
        print("| | " + " | ".join(keys) + " |")
        print("|---" * (len(keys) + 1) + "|")
        for row, r in rows.items():
            print(f"| {row} | " + " | ".join(f"{r[k]:.3f}" for k in keys) + " |", flush=True)
    path = write_json(OUT / "oracle.json", {"benchmark": "oracle", "machine": machine(), "results": results})
    print(f"\nJSON written to {path}")


if __name__ == "__main__":
    main()
