"""Evaluation: instance segmentation metrics of predictions against ground truth, and the scorers.

What it shows
-------------
Two segmentations of the 4 held-out 128x128 tiles of the embedded nuclei
sample, compared with the ground truth by :mod:`harmonic_seg.metrics`:

* ``HarmonicSegmenter``, trained briefly on the 12 other tiles (its
  per-instance confidences from ``predict(..., return_scores=True)`` feed
  COCO AP);
* a baseline written here as a tiny scikit-learn estimator (threshold learned
  with Otsu's method, then connected components): the metrics and scorers
  work with any estimator whose ``predict`` returns label maps.

Then:

* per image: ``matching`` at IoU 0.5 (TP, FP, FN, precision, recall, AP =
  TP / (TP + FP + FN), F1, PQ), ``symmetric_best_dice``,
  ``difference_in_count`` and ``coco_average_precision``;
* pooled over the images: ``matching_dataset`` at IoU thresholds 0.1 ... 0.9
  (counts pooled, ``by_image=False``, as in StarDist; and the per-image mean,
  ``by_image=True``), ``mean_symmetric_best_dice``,
  ``mean_abs_difference_in_count`` and COCO AP / AP50 / AP75;
* a sanity check: the ground truth against itself scores 1 (|DiC| 0);
* the scorers: ``cross_val_score(estimator, X, y, cv=3, scoring=SCORERS[...])``
  with ``SCORERS["sbd"]``, ``["ap50"]``, ``["ap75"]`` and
  ``make_ap_scorer(0.6)`` on all 16 tiles for the baseline, and
  ``SCORERS["sbd"]`` for the harmonic segmenter (3 more trainings).

Budget: under a minute on a 2-core CPU. The harmonic network is trained for
seconds only, so it scores low (see ``quickstart.py``); the point here is
reading the metrics.

Outputs (in ``--out``; existing files are never overwritten, a free name
``-1``, ``-2``, ... is chosen): ``evaluation.json`` (every number printed).

Usage::

    python examples/evaluation.py            # under a minute on a 2-core CPU
    python examples/evaluation.py --quick    # seconds: a smoke test
"""

from __future__ import annotations

import dataclasses
import sys
import time

import numpy as np
from sklearn.base import BaseEstimator

from _common import add_device_option, make_parser, nuclei_split, output_folder, quick_budget, write_json


def parse_args(argv=None):
    parser = make_parser(__doc__)
    add_device_option(parser)
    return parser.parse_args(argv)


class ThresholdComponents(BaseEstimator):
    """Baseline: percentile-normalise, threshold (Otsu on the training pixels), connected components.

    Parameters
    ----------
    min_size : int, default=10
        Components with fewer pixels are dropped.
    """

    def __init__(self, min_size=10):
        self.min_size = min_size

    def fit(self, X, y=None):
        from skimage.filters import threshold_otsu

        from harmonic_seg import PercentileNormalizer

        pixels = np.concatenate([im.ravel() for im in PercentileNormalizer().fit_transform(X)])
        self.threshold_ = float(threshold_otsu(pixels))
        return self

    def predict(self, X):
        from skimage.measure import label
        from skimage.segmentation import relabel_sequential

        from harmonic_seg import PercentileNormalizer

        out = []
        for im in PercentileNormalizer().fit_transform(X):
            lab = label(im > self.threshold_, connectivity=1)
            sizes = np.bincount(lab.ravel())
            lab[sizes[lab] < self.min_size] = 0
            out.append(relabel_sequential(lab)[0].astype(np.int32))
        return out


def per_image_table(name, names, y_true, y_pred, scores):
    from harmonic_seg.metrics import coco_average_precision, difference_in_count, matching, symmetric_best_dice

    rows = []
    for i, (t, p) in enumerate(zip(y_true, y_pred)):
        m = matching(t, p, thresh=0.5)
        s = None if scores is None else [scores[i]]
        rows.append({
            "image": names[i],
            "n_true": m.n_true,
            "n_pred": m.n_pred,
            "tp": m.tp,
            "fp": m.fp,
            "fn": m.fn,
            "precision": m.precision,
            "recall": m.recall,
            "ap50": m.accuracy,
            "f1": m.f1,
            "pq": m.panoptic_quality,
            "sbd": symmetric_best_dice(t, p),
            "dic": difference_in_count(t, p),
            "coco_ap": coco_average_precision([t], [p], s)["AP"],
        })
    print(f"\n{name}, per image (matching at IoU 0.5; dic = predicted - true count):")
    cols = ["n_true", "n_pred", "tp", "fp", "fn", "precision", "recall", "ap50", "f1", "pq", "sbd", "dic", "coco_ap"]
    print(f"  {'image':<26}" + "".join(f"{c:>10}" for c in cols))
    for r in rows:
        print(f"  {r['image']:<26}"
              + "".join(f"{r[c]:>10.3f}" if isinstance(r[c], float) else f"{r[c]:>10}" for c in cols))
    return rows


def pooled(y_true, y_pred, scores):
    from harmonic_seg.metrics import (
        coco_average_precision,
        matching_dataset,
        mean_abs_difference_in_count,
        mean_symmetric_best_dice,
    )

    thresholds = [round(0.1 * k, 1) for k in range(1, 10)]
    pooled_counts = matching_dataset(y_true, y_pred, thresh=thresholds, by_image=False)
    by_image = matching_dataset(y_true, y_pred, thresh=thresholds, by_image=True)
    coco = coco_average_precision(y_true, y_pred, scores)
    return {
        "matching": [dataclasses.asdict(m) for m in pooled_counts],
        "ap_by_image": [m.accuracy for m in by_image],
        "sbd": mean_symmetric_best_dice(y_true, y_pred),
        "abs_dic": mean_abs_difference_in_count(y_true, y_pred),
        "coco": coco,
    }


def main(argv=None):
    args = parse_args(argv)
    out = output_folder(args.out)

    from sklearn.model_selection import cross_val_score

    from harmonic_seg import GuideFunctionFitter, HarmonicSegmenter, Network
    from harmonic_seg.metrics import SCORERS, make_ap_scorer

    if args.quick:
        budget = quick_budget()  # a tiny network, one torch thread
        cv_budget = budget
        guides = GuideFunctionFitter(max_iter=30)
    else:
        budget = dict(network=Network(depth=3, base_width=8), epochs=10, steps_per_epoch=10, crop_size=64, batch_size=8)
        cv_budget = dict(network=Network(depth=2, base_width=8), epochs=4, steps_per_epoch=5, crop_size=64,
                         batch_size=4)
        guides = GuideFunctionFitter(max_iter=200)

    split = nuclei_split()  # 12 training and 4 test tiles of 128x128
    data, test = split.data, split.test
    X, y = split.X_train, split.y_train
    X_test, y_test = split.X_test, split.y_test

    t0 = time.perf_counter()
    seg = HarmonicSegmenter(guides=guides, learning_rate=5e-3, validation_fraction=0, device=args.device,
                            random_state=0, **budget).fit(X, y)
    pred_h, scores_h = seg.predict(X_test, return_scores=True)
    print(f"harmonic segmenter trained and applied in {time.perf_counter() - t0:.1f} s")
    base = ThresholdComponents().fit(X, y)
    pred_b = base.predict(X_test)
    print(f"baseline: threshold {base.threshold_:.3f} on percentile-normalised intensities")

    methods = {
        "harmonic": (pred_h, scores_h),
        "baseline": (pred_b, None),
        "truth": (y_test, None),  # the ground truth against itself: a sanity check
    }
    names = [data.names[i] for i in test]
    report = {"test_tiles": names, "per_image": {}, "pooled": {}}
    report["per_image"]["harmonic"] = per_image_table("harmonic segmenter", names, y_test, pred_h, scores_h)
    report["per_image"]["baseline"] = per_image_table("baseline (threshold + connected components)", names,
                                                      y_test, pred_b, None)
    for name, (pred, scores) in methods.items():
        report["pooled"][name] = pooled(y_test, pred, scores)

    print("\npooled over the 4 test tiles ('truth': the ground truth against itself, a sanity check):")
    print(f"  {'':<10}" + "".join(f"{n:>10}" for n in methods))
    for key, get in [
        ("SBD", lambda r: r["sbd"]),
        ("|DiC|", lambda r: r["abs_dic"]),
        ("COCO AP", lambda r: r["coco"]["AP"]),
        ("COCO AP50", lambda r: r["coco"]["AP50"]),
        ("COCO AP75", lambda r: r["coco"]["AP75"]),
    ]:
        print(f"  {key:<10}" + "".join(f"{get(report['pooled'][n]):>10.3f}" for n in methods))

    print("\nmatching_dataset at several IoU thresholds: AP = TP / (TP + FP + FN) from counts pooled over the"
          "\nimages (by_image=False), the mean of the per-image APs (by_image=True), and F1 (pooled):")
    print(f"  {'':>4}   {'harmonic':^26}   {'baseline':^26}")
    print(f"  {'IoU':>4}" + f"   {'AP':>8}{'by image':>10}{'F1':>8}" * 2)
    for k in range(9):
        line = f"  {report['pooled']['harmonic']['matching'][k]['thresh']:>4.1f}"
        for n in ("harmonic", "baseline"):
            r = report["pooled"][n]
            line += f"   {r['matching'][k]['accuracy']:>8.3f}{r['ap_by_image'][k]:>10.3f}{r['matching'][k]['f1']:>8.3f}"
        print(line)

    # --- scorers -----------------------------------------------------------------
    X_all, y_all = list(data.images), list(data.labels)
    scorers = {"sbd": SCORERS["sbd"], "ap50": SCORERS["ap50"], "ap75": SCORERS["ap75"], "ap60": make_ap_scorer(0.6)}
    print(f"\ncross_val_score on all {len(X_all)} tiles, cv=3:")
    report["cross_val_score"] = {}
    for name, scorer in scorers.items():
        s = cross_val_score(ThresholdComponents(), X_all, y_all, cv=3, scoring=scorer)
        report["cross_val_score"][f"baseline {name}"] = s.tolist()
        print(f"  baseline, scoring={name:<5} folds {np.round(s, 3)}  mean {s.mean():.3f}")
    t0 = time.perf_counter()
    cv_seg = HarmonicSegmenter(guides=guides, learning_rate=5e-3, validation_fraction=0, device=args.device,
                               random_state=0, **cv_budget)
    s = cross_val_score(cv_seg, X_all, y_all, cv=3, scoring=SCORERS["sbd"])
    report["cross_val_score"]["harmonic sbd"] = s.tolist()
    print(f"  harmonic, scoring=sbd   folds {np.round(s, 3)}  mean {s.mean():.3f}  ({time.perf_counter() - t0:.1f} s, "
          "3 short trainings)")

    path = write_json(out, "evaluation.json", report, default=float)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
