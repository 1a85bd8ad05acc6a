"""Instance recovery on the shipped nuclei sample: the floor, the previous recovery and the current one.

    python benchmarks/recovery.py                       # seeds 0 1 2 -> benchmarks/results/recovery_demo.json
    python benchmarks/recovery.py --seeds 0 --out /tmp/r.json

For every seed the nuclei demo's segmenter (the configuration ``harmonic-seg demo`` trained on
:func:`harmonic_seg.io.load_nuclei_sample` tiles: 12 training tiles of 128 px, 2 of them held out
for tuning, 4 test tiles) is trained once, without tuning, and saved under ``--models``; a later
run loads it instead of training again. The same network's embeddings of the held-out and the test
tiles are then post-processed several ways, all scored on the 4 test tiles:

* ``floor``: connected components of the predicted foreground (probability > 0.5), no minimum
  size, every instance scored 1 (as the demo reports it: COCO AP then ranks the instances in
  raster order); ``floor_scored``: the same instances with the library's scores (mean foreground
  probability times the share of pixels within eps of the instance's mean embedding: what
  ``recovery="components"`` returns).
* ``new``: ``optimize_postprocessing`` on the held-out tiles, then the clustering ``predict`` runs
  (``recovery_``, the pooled grid choice, the floor among the candidates).
* ``old``: the tuning and the recovery as they were: mean shift of all foreground pixels
  (``recovery="mean_shift"``, with the demo's ``split_components=True``), the best grid point of
  the same grid by its own score (first in grid order among equal scores), then the threshold with
  the best score (the configured one among equal scores).
* ``selection``: the grid of the new tuning re-read three ways: the best raw score among the
  clusterings only (the old rules, clustering and threshold, with the new recovery), the best raw
  score with the floor among the candidates, and the shipped choice (pooled, simplest within
  noise, the configured threshold unless another is better beyond noise).

Timing (``timing``): the clustering alone, old recovery against new, on the same embeddings and
settings (window eps, ``min_size=10``): the 4 test tiles and the whole 512 x 512 image, best of
``--repeats``; and the wall time of the two tunings on the 2 held-out tiles.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _common import machine, write_json
from skimage.measure import label as connected_components

from harmonic_seg import HarmonicSegmenter, Network
from harmonic_seg import postprocess as pp
from harmonic_seg.clustering import EmbeddingClusterer, segment_embeddings
from harmonic_seg.clustering import tuning as grid_search
from harmonic_seg.demo import TEST_TILES
from harmonic_seg.io import load_nuclei_sample
from harmonic_seg.metrics import coco_average_precision, matching_dataset, mean_symmetric_best_dice

HERE = Path(__file__).resolve().parent
#: The nuclei demo's segmenter (``harmonic_seg.demo.run_demo`` before the demo moved to worms), tuning off.
NUCLEI_DEMO = dict(
    network=Network(depth=3,
                    base_width=16), crop_size=128, batch_size=8, steps_per_epoch=10, epochs=40, learning_rate=3e-3,
    validation_fraction=0.17, tune_postprocessing=False, clustering=EmbeddingClusterer(split_components=True),
    device="cpu",
)


def metrics(y_true, y_pred, scores=None):
    m50 = matching_dataset(y_true, y_pred, 0.5)
    return {
        "SBD": round(mean_symmetric_best_dice(y_true, y_pred), 4),
        "AP@0.5": round(m50.accuracy, 4),
        "COCO AP": round(coco_average_precision(y_true, y_pred, scores)["AP"], 4),
        "instances": int(sum(int(p.max()) for p in y_pred)),
    }


def train(seed, folder, train_x, train_y):
    if (folder / "config.json").is_file():
        return HarmonicSegmenter.load(folder), None
    seg = HarmonicSegmenter(**NUCLEI_DEMO, random_state=seed)
    t0 = time.perf_counter()
    seg.fit(train_x, train_y)
    fit_s = time.perf_counter() - t0
    seg.save(folder)
    return seg, fit_s


def fixed(seg):
    """``seg``'s clustering parameters that no tuning chooses."""
    clu = seg.clustering_
    return dict(core_threshold=clu.core_threshold, split_components=clu.split_components,
                merge_small=clu.merge_small)


def cluster(seg, preds, setting, *, recovery=None, threshold=None):
    """Labels and scores of ``seg``'s clustering at ``setting`` (dict) on predictions ``(emb, prob)``."""
    t = setting["fg_threshold"] if threshold is None else threshold
    share = setting.get("min_share")
    out = [segment_embeddings(e, p, bandwidth=setting["bandwidth"], min_size=setting["min_size"],
                              metric=setting["metric"], core_fraction=setting["core_fraction"],
                              recovery=recovery or setting["recovery"], fg_threshold=t,
                              min_share=seg.min_share_ if share is None else share, **fixed(seg))
           for e, p in preds]
    return [o[0] for o in out], [o[1] for o in out]


def old_tuning(seg, preds, labels):
    """The previous ``optimize_postprocessing``: mean shift of all foreground pixels, argmax of the grid."""
    clu = seg.clustering_
    drop = pp.merge_small_instances if clu.merge_small else pp.remove_small_instances

    def clustered(pred, bw, metric, cf):  # every instance kept; the sizes are dropped afterwards
        emb, prob = pred
        return segment_embeddings(emb, prob, bandwidth=bw, metric=metric, min_size=0, core_fraction=cf,
                                  core_threshold=clu.core_threshold, split_components=clu.split_components,
                                  recovery="mean_shift", fg_threshold=clu.fg_threshold)[0]

    _, results = grid_search.grid_search_clustering(
        grid_search.size_filtered(clustered, lambda lab, size: drop(lab, size)), preds, labels, clu.bandwidth,
        clu.min_size, preds[0][0].shape[0], "sbd", typical_area=grid_search.median_instance_area(labels),
        core_fractions=grid_search.core_fraction_grid(clu.core_fraction), recovery="mean_shift",
    )
    best = max(results, key=lambda r: r["score"])  # first in grid order among equal scores
    return threshold_search(seg, preds, labels, best, old=True), results


def threshold_search(seg, preds, labels, row, old=False):
    """The threshold search after the clustering ``row``: the current rule (the configured threshold
    unless another is better beyond noise) or, ``old=True``, the previous one (the best score, the
    configured threshold among equal ones)."""
    setting = {k: row.get(k) for k in ("recovery", "metric", "bandwidth", "core_fraction", "min_size", "min_share")}
    if setting["recovery"] == "components":
        setting.update(metric="euclidean", bandwidth=seg.clustering_.bandwidth, core_fraction=None, min_share=None)
    best_t, rows = grid_search.grid_search_threshold(
        lambda pred, t: cluster(seg, [pred], setting, threshold=t)[0][0], preds, labels,
        grid_search.fg_threshold_grid(seg.clustering_.fg_threshold), "sbd",
    )
    if old:
        best_t = max(rows, key=lambda r: r["score"])  # the first (configured) among equal scores
    return {**setting, "fg_threshold": best_t["fg_threshold"], "validation_score": round(row["score"], 4),
            "validation_score_at_threshold": round(best_t["score"], 4)}


def best_of(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def timing(seg, preds, full, repeats):
    bw = seg.clustering_.bandwidth
    out = {}
    for name, items in (("4 test tiles (128 x 128)", preds), ("whole 512 x 512 image", full)):
        row = {"foreground_pixels": int(sum(int((p > 0.5).sum()) for _, p in items))}
        for recovery in ("mean_shift", "split", "components"):
            s = best_of(lambda: [segment_embeddings(e, p, bandwidth=bw, min_size=10, recovery=recovery,
                                                    min_share=seg.min_share_, **fixed(seg))
                                 for e, p in items], repeats)
            row[f"{recovery}_ms"] = round(1e3 * s, 1)
        out[name] = row
    return out


def run_seed(seed, args, data):
    test = [i for i in range(len(data)) if i in TEST_TILES]
    train_idx = [i for i in range(len(data)) if i not in TEST_TILES]
    train_x, train_y = [data.images[i] for i in train_idx], [data.labels[i] for i in train_idx]
    test_x, test_y = [data.images[i] for i in test], [data.labels[i] for i in test]
    seg, fit_s = train(seed, args.models / f"seed{seed}", train_x, train_y)
    val = list(seg.validation_indices_)
    val_x, val_y = [train_x[i] for i in val], [train_y[i] for i in val]
    val_preds, test_preds = seg.predict_embeddings(val_x), seg.predict_embeddings(test_x)
    full = seg.predict_embeddings(load_nuclei_sample(tile=None).images)
    report = {"seed": seed, "fit_seconds": None if fit_s is None else round(fit_s, 1),
              "validation_tiles": [train_idx[i] for i in val]}

    floor = [connected_components(p > 0.5, connectivity=1).astype(np.int32) for _, p in test_preds]
    report["floor"] = metrics(test_y, floor)
    eps = seg.clustering_.bandwidth
    scored = [segment_embeddings(e, p, bandwidth=eps, min_size=0, recovery="components", min_share=seg.min_share_,
                                 core_fraction=seg.core_fraction_, metric=seg.metric_, **fixed(seg))
              for e, p in test_preds]
    assert all(np.array_equal(f, s[0]) for f, s in zip(floor, scored))
    report["floor_scored"] = metrics(test_y, floor, [s[1] for s in scored])

    t0 = time.perf_counter()
    old, old_grid = old_tuning(seg, val_preds, val_y)
    old_tune_s = time.perf_counter() - t0
    report["old"] = {**metrics(test_y, *cluster(seg, test_preds, old)), "setting": old}

    t0 = time.perf_counter()
    seg.optimize_postprocessing(val_x, val_y)
    new_tune_s = time.perf_counter() - t0
    new = {"recovery": seg.recovery_, "metric": seg.metric_, "bandwidth": seg.bandwidth_,
           "core_fraction": seg.core_fraction_, "min_size": seg.min_size_, "min_share": seg.min_share_,
           "fg_threshold": seg.fg_threshold_}
    grid = [r for r in seg.tuning_results_ if "pooled_score" in r]
    plain = next(r for r in grid if r["recovery"] == "components" and r["min_size"] == 0)
    chosen = next(r for r in grid if all(r[k] == new[k] for k in ("recovery", "min_size"))
                  and (new["recovery"] == "components" or all(r[k] == new[k] for k in ("metric", "bandwidth",
                                                                                        "core_fraction", "min_share"))))
    new_pred = seg.predict(test_x, return_scores=True)  # labels and scores as a user gets them
    assert all(np.array_equal(a, b) for a, b in zip(new_pred[0], cluster(seg, test_preds, new)[0]))
    report["new"] = {**metrics(test_y, *new_pred), "setting": new,
                     "validation_score": round(chosen["score"], 4), "validation_pooled": round(chosen["pooled_score"], 4),
                     "validation_floor": round(plain["score"], 4)}
    split_rows = [r for r in grid if r["recovery"] == "split"]
    report["selection"] = {}
    for name, row in (("best raw score, clusterings only", max(split_rows, key=lambda r: r["score"])),
                      ("best raw score, floor among the candidates", max(grid, key=lambda r: r["score"]))):
        setting = threshold_search(seg, val_preds, val_y, row, old=True)
        report["selection"][name] = {**metrics(test_y, *cluster(seg, test_preds, setting)), "setting": setting}
    report["selection"]["pooled, simplest within noise (shipped)"] = report["new"]

    report["timing"] = timing(seg, test_preds, full, args.repeats)
    report["timing"]["tuning_seconds"] = {"old": round(old_tune_s, 1), "new": round(new_tune_s, 1)}
    return report


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--models", type=Path, default=HERE / "out" / "recovery_models")
    p.add_argument("--out", type=Path, default=HERE / "results" / "recovery_demo.json")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    data = load_nuclei_sample(tile=128)
    seeds = []
    for seed in args.seeds:
        r = run_seed(seed, args, data)
        seeds.append(r)
        print(f"seed {seed}: " + "  ".join(
            f"{k} SBD {r[k]['SBD']:.3f} AP@0.5 {r[k]['AP@0.5']:.3f} COCO {r[k]['COCO AP']:.3f}"
            for k in ("floor", "old", "new")) + f"  new setting {r['new']['setting']}", flush=True)
    keys = ("SBD", "AP@0.5", "COCO AP")
    summary = {k: {m: round(float(np.mean([r[k][m] for r in seeds])), 4) for m in keys}
               for k in ("floor", "floor_scored", "old", "new")}
    summary["new_at_or_above_floor"] = {m: [r["new"][m] >= r["floor"][m] for r in seeds] for m in keys}
    summary["new_at_or_above_floor_scored"] = {m: [r["new"][m] >= r["floor_scored"][m] for r in seeds] for m in keys}
    write_json(args.out, {"description": __doc__.split("\n\n")[0], "machine": machine(), "segmenter": NUCLEI_DEMO,
                          "summary": summary, "seeds": seeds})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
