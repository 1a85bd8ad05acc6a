"""Where the segmentation is lost: stage 1 (guides) or stage 2 (network)?

    python benchmarks/oracle.py bbbc010 cvppp_a1 ctc_dic_c2dh_hela

For each data set, guide functions are fitted on the training label maps by
the paper's search (12 guides, margin 0.5, ``init_range`` "auto", seed 0, as
``reproduce.py`` fitted them before its recipes chose other starting ranges;
see ``RECIPE_GUIDES`` there); then the *target* embeddings of the test label maps (what a
perfect network would predict) are clustered by the library's mean shift with
bandwidth eps over the ground-truth foreground, and scored with the same
metrics as the reproduction tables, beside the trivial floor (connected
components of the same foreground). ``--scales 1 0.5`` adds the ceiling of a
recipe that halves the images: guides fitted on the halved training label maps,
target embeddings of the halved test label maps brought back to full size
bilinearly (as ``HarmonicSegmenter`` brings back its predictions; the
background first takes its nearest instance's embedding, as a network trained
on the foreground only may predict there), clustered at
full size over the full-size foreground, once with the default clustering, once with
fragments below 10 % of the median test instance area merged into a touching
instance (``merge_small``) and once with the modes sought by the 80 % of the
pixels where the embedding changes least (``core_fraction=0.8``); ``--guides`` picks the search as
``reproduce.py`` does. A high oracle score and a low harmonic
score put the defect in stage 2 (training); a low oracle score puts it in the
guides. Results: ``benchmarks/out/oracle.json``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import machine, write_json
from reproduce import GUIDE_CHOICES, OUT, scores
from scipy.ndimage import distance_transform_edt
from skimage.measure import label as connected_components
from train_embedding import load

from harmonic_seg import GuideFunctionFitter
from harmonic_seg.clustering.tuning import median_instance_area
from harmonic_seg.guides import embedding_map
from harmonic_seg.clustering import cluster_embeddings
from harmonic_seg.preprocessing import rescale_channels_first, rescale_labels, scaled_shape


def _reduce(labels, scale):
    return [lab if scale == 1 else rescale_labels(lab, scaled_shape(lab.shape, scale)) for lab in labels]


def oracle_at_scale(train, test, scale, guides="optimize", seed=0):
    """Rows of the oracle with guides and targets at ``scale``, clustered at full size."""
    t0 = time.perf_counter()
    fitter = GuideFunctionFitter(n_guides=12, margin=0.5, random_state=seed, **GUIDE_CHOICES[guides])
    fitter.fit(_reduce(train.labels, scale))
    fit_s = time.perf_counter() - t0
    gt = test.masks if test.masks is not None else test.labels
    merge_size = int(0.1 * median_instance_area(test.labels))
    settings = {"": {}} if scale == 1 else {
        "": {},
        f", fragments < {merge_size} px merged": dict(min_size=merge_size, merge_small=True),
        ", modes sought by the 80 % smoothest pixels": dict(core_fraction=0.8),
    }
    preds = {tag: ([], []) for tag in settings}  # per setting: label maps, confidences
    for truth, small in zip(test.labels, _reduce(test.labels, scale)):  # each target once, clustered per setting
        emb = embedding_map(small, fitter.guides_)
        if scale != 1 and small.any():  # the background takes its nearest instance's embedding, as a network trained on
            # the foreground only is free to predict there, so that bringing the map back to full size
            # blends touching instances only, not instances with the background's zeros
            rows_idx, cols_idx = distance_transform_edt(small == 0, return_distances=False, return_indices=True)
            emb = emb[:, rows_idx, cols_idx]
        emb = rescale_channels_first(emb, truth.shape)
        for tag, options in settings.items():
            # overlap pixels (BBBC010) carry label 0 and stay background, like any non-overlapping prediction
            lab, conf_i = cluster_embeddings(emb, truth > 0, fitter.margin, **options)
            preds[tag][0].append(lab)
            preds[tag][1].append(conf_i)
    rows = {}
    for tag, (pred, conf) in preds.items():
        name = "oracle: mean shift of the target embeddings" if scale == 1 else f"oracle at scale {scale:g}{tag}"
        rows[name] = scores(gt, pred, conf)
    return rows, fit_s


def oracle(dataset, seed=0, scales=(1.0,), guides="optimize"):
    train, test = load(dataset, "train"), load(dataset, "test")
    rows, fit_seconds = {}, {}
    for scale in scales:
        scale_rows, fit_seconds[f"{scale:g}"] = oracle_at_scale(train, test, scale, guides, seed)
        rows.update(scale_rows)
    gt = test.masks if test.masks is not None else test.labels
    floor = [connected_components(lab > 0, connectivity=1).astype(np.int32) for lab in test.labels]
    rows["floor: connected components of the same foreground"] = scores(gt, floor)
    return {"guides": guides, "guide_fit_seconds": fit_seconds, "rows": rows}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("datasets", nargs="+", choices=["bbbc010", "cvppp_a1", "ctc_dic_c2dh_hela"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scales", type=float, nargs="+", default=[1.0],
                   help="resize factors of the guides' and targets' label maps (the recipes use 0.5)")
    p.add_argument("--guides", default="optimize", choices=list(GUIDE_CHOICES),
                   help="the guide search, as reproduce.py --guides (default: the paper's, from init_range='auto')")
    p.add_argument("--out", default=None, help="default: benchmarks/out/oracle.json")
    args = p.parse_args(argv)
    results = {}
    for name in args.datasets:
        results[name] = oracle(name, args.seed, args.scales, args.guides)
        rows = results[name]["rows"]
        keys = list(next(iter(rows.values())))
        fit_s = ", ".join(f"{t:.0f} s" for t in results[name]["guide_fit_seconds"].values())
        print(f"\n{name} (test split; guides {args.guides}, fitted in {fit_s})")
        print("| | " + " | ".join(keys) + " |")
        print("|---" * (len(keys) + 1) + "|")
        for row, r in rows.items():
            print(f"| {row} | " + " | ".join(f"{r[k]:.3f}" for k in keys) + " |", flush=True)
    path = write_json(args.out or OUT / "oracle.json", {"benchmark": "oracle", "machine": machine(), "results": results})
    print(f"\nJSON written to {path}")


if __name__ == "__main__":
    main()
