"""Quick start: ``HarmonicSegmenter().fit(X, y).predict(X_new)`` on the embedded nuclei sample.

What it shows
-------------
The scikit-learn workflow of harmonic_seg on the 512x512 fluorescence nuclei
image shipped with the package (no download), cut into 16 tiles of 128x128:

1. ``HarmonicSegmenter(...).fit(X, y)`` on 12 tiles and their label maps: fits
   the guide functions (stage 1) and trains the embedding U-Net (stage 2);
2. ``predict(X_new, return_scores=True)`` on the 4 held-out tiles: mean-shift
   clustering of the predicted embeddings gives one label map per tile and one
   confidence per instance;
3. ``harmonic_seg.demo.evaluate(y_true, y_pred, scores)``: symmetric best Dice
   (SBD), |DiC|, AP = TP / (TP + FP + FN) at IoU 0.5 and 0.75, F1, PQ and COCO
   AP, next to a trivial floor: the connected components of the predicted
   foreground;
4. a picture (needs matplotlib): image | ground truth | prediction | predicted
   embedding of one held-out tile (``harmonic_seg.plotting.plot_comparison``).

Budget: the default (200 minibatches of 8 crops of 64x64 for a 3-level U-Net
of base width 16) takes about a minute on a 2-core CPU. That is far too short
for the embedding network to separate touching nuclei well (the paper trains
for hundreds of epochs): expect low scores, often below the floor. Train
longer with ``--epochs`` (each epoch is 10 minibatches), ideally on a GPU,
for a real result.

Outputs (in ``--out``; existing files are never overwritten, a free name
``-1``, ``-2``, ... is chosen): ``quickstart.json`` (metrics and timings) and
``quickstart_comparison.png``.

Usage::

    python examples/quickstart.py                 # about a minute on a 2-core CPU
    python examples/quickstart.py --epochs 300    # a real training run (use a GPU)
    python examples/quickstart.py --quick         # seconds: a smoke test
"""

from __future__ import annotations

import sys
import time

from _common import (
    add_device_option, has_matplotlib, make_parser, nuclei_split, output_folder, quick_budget, save_figure, write_json,
)


def parse_args(argv=None):
    parser = make_parser(__doc__)
    parser.add_argument("--epochs", type=int, default=None, help="training epochs of 10 minibatches (default 20)")
    add_device_option(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    out = output_folder(args.out)

    import numpy as np
    from skimage.measure import label as connected_components

    from harmonic_seg import GuideFunctionFitter, HarmonicSegmenter, Network
    from harmonic_seg.demo import evaluate

    if args.quick:
        budget = quick_budget()  # a tiny network, one torch thread
        guides = GuideFunctionFitter(max_iter=30)
    else:
        budget = dict(network=Network(depth=3, base_width=16), epochs=20, steps_per_epoch=10, crop_size=64,
                      batch_size=8)
        guides = None  # the default GuideFunctionFitter: 12 guides, margin 0.5
    if args.epochs is not None:
        budget["epochs"] = args.epochs

    # 16 tiles of 128x128; the demo's 4 test tiles are held out.
    split = nuclei_split()
    data, train, test = split.data, split.train, split.test
    X, y = split.X_train, split.y_train
    X_new, y_new = split.X_test, split.y_test
    print(f"nuclei sample: {len(X)} training tiles, {len(X_new)} test tiles of {X[0].shape}, dtype {X[0].dtype}")

    seg = HarmonicSegmenter(
        guides=guides,
        learning_rate=5e-3,
        validation_fraction=0,  # train on all 12 tiles
        device=args.device,
        random_state=0,
        verbose=0 if args.quick else 1,
        **budget,
    )
    t0 = time.perf_counter()
    seg.fit(X, y)
    fit_s = time.perf_counter() - t0
    print(f"fit: {fit_s:.1f} s; {seg.guides_.n_guides_} guide functions separating "
          f"{seg.guides_.separation_:.1%} of the training pairs; final training L1 "
          f"{seg.history_[-1]['train_l1']:.3f}")

    t0 = time.perf_counter()
    y_pred, scores = seg.predict(X_new, return_scores=True)
    predict_s = time.perf_counter() - t0
    counts = [(len(np.unique(t)) - 1, len(np.unique(p)) - 1) for t, p in zip(y_new, y_pred)]
    print(f"predict: {predict_s:.2f} s; nuclei per test tile (true, predicted): {counts}")

    # The floor: connected components of the predicted foreground.
    embeddings = seg.predict_embeddings(X_new)
    floor = [connected_components(p > seg.fg_threshold_, connectivity=1).astype(np.int32) for _, p in embeddings]

    metrics = {"harmonic": evaluate(y_new, y_pred, scores), "floor": evaluate(y_new, floor)}
    print(f"\n{'metric':<26} {'harmonic':>9} {'floor':>9}")
    for key in metrics["harmonic"]:
        print(f"{key:<26} {metrics['harmonic'][key]:>9.3f} {metrics['floor'][key]:>9.3f}")
    print("(floor = connected components of the predicted foreground; SBD, AP, F1, PQ: higher is "
          "better, |DiC|: lower is better)")
    if metrics["harmonic"]["SBD"] <= metrics["floor"]["SBD"]:
        print("This short training has not taught the network to separate touching nuclei yet: "
              "train longer with --epochs (ideally on a GPU).")

    report = {
        "budget": budget,
        "train_tiles": train,
        "test_tiles": test,
        "fit_seconds": fit_s,
        "predict_seconds": predict_s,
        "instances_true_pred": counts,
        "metrics": metrics,
    }
    path = write_json(out, "quickstart.json", report, default=float)
    print(f"\nwrote {path}")

    if not has_matplotlib():
        return 0
    from harmonic_seg.plotting import plot_comparison

    k = 0  # the first test tile
    fig = plot_comparison(X_new[k], y_new[k], y_pred[k], embedding=embeddings[k][0])
    fig.suptitle(f"held-out tile {data.names[test[k]]}: SBD {evaluate([y_new[k]], [y_pred[k]])['SBD']:.2f}")
    path = save_figure(fig, out, "quickstart_comparison.png")
    print(f"wrote {path} (test tile {data.names[test[k]]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
