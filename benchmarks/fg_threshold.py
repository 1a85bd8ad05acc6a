"""Is the foreground threshold a lever? Sweep ``fg_threshold`` on a model saved by ``reproduce.py``.

    python benchmarks/fg_threshold.py ctc_dic_c2dh_hela out/model_hela_quarter

The network is not retrained. For each foreground threshold, the clustering
(distance, bandwidth, minimum size) is re-tuned at that threshold on the
training images that ``fit`` held out (as ``retune.py --scoring sbd`` does, which
is what ``fit`` does at the default 0.5), so that no threshold is favoured by a
clustering tuned for another; then the pixel Dice of the predicted foreground
and the SBD of the segmentation are measured on the held-out images and, as a
diagnostic only, on the test split. A threshold is only worth tuning if the held-out images would choose one
that also helps the test split. Results:
``benchmarks/out/fg_threshold_<model folder name>.json`` and a markdown table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from _common import machine, write_json
from reproduce import OUT, given_foreground, resolve_train_truth
from retune import held_out
from train_embedding import load

from harmonic_seg import HarmonicSegmenter
from harmonic_seg.metrics import mean_symmetric_best_dice

THRESHOLDS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


def foreground_dice(foregrounds, truths):
    """Pixel Dice of boolean foregrounds against the true ones, pooled over the images."""
    inter = sum(int((fg & truth).sum()) for fg, truth in zip(foregrounds, truths))
    total = sum(int(fg.sum()) + int(truth.sum()) for fg, truth in zip(foregrounds, truths))
    return 2.0 * inter / total if total else 1.0


def segment(seg, embedded, threshold):
    """``predict``'s clustering of embeddings computed once, with another foreground threshold."""
    return seg.predict_from_embeddings(embedded, foreground=[prob > threshold for _, prob in embedded])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", choices=["bbbc010", "bbbc010_brightfield", "cvppp_a1", "ctc_dic_c2dh_hela"])
    p.add_argument("model", type=Path, help="folder written by reproduce.py --save-model")
    p.add_argument("--train-truth", default=None, choices=["gold", "silver"],
                   help="DIC-HeLa: the training frames the model was fitted on (default: the recipe's, silver)")
    args = p.parse_args(argv)
    args.train_truth = resolve_train_truth(p, args.dataset, args.train_truth)

    seg = HarmonicSegmenter.load(args.model)
    train, test = load(args.dataset, "train", truth=args.train_truth), load(args.dataset, "test")
    val = held_out(seg, len(train))
    x_val, y_val = [train.images[i] for i in val], [train.labels[i] for i in val]
    y_test = test.masks if test.masks is not None else test.labels
    fg_val = [np.asarray(lab) > 0 for lab in y_val]
    fg_test = given_foreground(args.dataset, test)  # the one the "ground-truth foreground imposed" rows use
    emb_val, emb_test = seg.predict_embeddings(x_val), seg.predict_embeddings(test.images)
    rows = []
    for t in THRESHOLDS:
        seg.set_params(clustering__fg_threshold=t)
        seg.optimize_postprocessing(x_val, y_val, scoring="sbd")
        rows.append({
            "fg_threshold": t,
            "clustering": dict(metric=seg.metric_, bandwidth=seg.bandwidth_, min_size=seg.min_size_,
                               core_fraction=seg.core_fraction_),
            "fg_dice_validation": foreground_dice([prob > t for _, prob in emb_val], fg_val),
            "fg_dice_test": foreground_dice([prob > t for _, prob in emb_test], fg_test),
            "sbd_validation": mean_symmetric_best_dice(y_val, segment(seg, emb_val, t)),
            "sbd_test": mean_symmetric_best_dice(y_test, segment(seg, emb_test, t)),
        })
        print(rows[-1], flush=True)
    chosen = max(rows, key=lambda r: r["sbd_validation"])
    result = dict(dataset=args.dataset, model=str(args.model), validation_images=val,
                  rows=rows, chosen_on_validation=chosen, machine=machine())
    out = write_json(OUT / f"fg_threshold_{args.model.resolve().name}.json", result)
    print(f"\n{args.dataset}, {args.model}: threshold chosen on the held-out images {chosen['fg_threshold']}\n")
    print("| fg_threshold | clustering tuned at it | fg Dice, held out | fg Dice, test | SBD, held out | SBD, test |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        c = r["clustering"]
        print(f"| {r['fg_threshold']:.1f} | {c['metric']} {c['bandwidth']:.3g}, {c['min_size']} px | "
              f"{r['fg_dice_validation']:.3f} | {r['fg_dice_test']:.3f} | {r['sbd_validation']:.3f} | "
              f"{r['sbd_test']:.3f} |")
    print(f"\n{out}")


if __name__ == "__main__":
    main()
