"""The peer of the reproduction tables: Cellpose 3.1 trained from scratch on the same split.

Cellpose is an optional benchmark dependency, never a runtime one. It pins
numpy below the version this project uses elsewhere, so install it in its own
environment that still sees this project::

    python -m venv --system-site-packages .cpenv
    .cpenv/bin/pip install cellpose==3.1.1.2
    .cpenv/bin/python benchmarks/run.py cellpose          # the results page's rows (configs/cellpose/)
    .cpenv/bin/python benchmarks/peer_cellpose.py bbbc010 --budget 12   # one run, any budget

Trains ``CellposeModel(pretrained_model=False)`` (no weights can be
downloaded here) on the train split of ../shared/data with the same input as
``reproduce.py`` (the binary foreground mask for the BBBC010 paper protocol),
for ``--budget`` minutes of training: the number of epochs comes from a timed
calibration (after a warm-up call, two and six epochs, so that the fixed
cost of a ``train_seg`` call is not counted as training time). As
``reproduce.py`` does for the harmonic network, 10 % of the training images are
held out to tune Cellpose's post-processing (``flow_threshold``,
``cellprob_threshold``) by SBD; Cellpose's own documentation tells users to
tune these two. The minimum mask size is tuned with them, on the grid the
harmonic tuning uses, built around Cellpose's default 15 px
(``harmonic_seg.clustering.tuning.min_size_grid``: 15, 40, 100 px and 2-50 % of the
median instance area of the held-out images): masks below
it are dropped after Cellpose's own clean-up (hole filling, masks < 15 px), the
same way on the held-out and the test images. Cellpose's targets (flows) are computed once beforehand,
outside the budget (reproduce.py's calibration likewise counts only training
steps, not the guide fitting). The test split is segmented and scored with the
library's metrics (``reproduce.scores``, per-worm masks where they overlap),
beside the trivial floor. Cellpose gives no per-instance confidence, so its
COCO AP ranks all instances equally. Results: ``run.py cellpose`` writes
``benchmarks/results/cellpose_<dataset>_seed<k>.json``; this script alone,
``benchmarks/out/results_peer_cellpose_<dataset>.json`` and a markdown table.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from _common import machine, write_json
from reproduce import OUT, RECIPE_TRAIN_TRUTH, given_foreground, resolve_train_truth, scores
from skimage.measure import label as connected_components
from train_embedding import load

from harmonic_seg.clustering.tuning import median_instance_area, min_size_grid
from harmonic_seg.metrics import mean_symmetric_best_dice
from harmonic_seg.postprocess import remove_small_instances

#: Cellpose's channel argument: grey input for all our data sets but CVPPP (RGB: green, none).
CHANNELS = {"cvppp_a1": [2, 0]}
#: Cellpose's post-processing thresholds tried on the held-out training images (defaults: 0.4 and 0.0;
#: flow_threshold 0 switches the flow-error check off).
FLOW_THRESHOLDS = (0.4, 0.8, 0.0)
CELLPROB_THRESHOLDS = (0.0, -2.0)
#: Cellpose's own minimum mask size (its default): the tuned minimum size is never below it.
CELLPOSE_MIN_SIZE = 15
CALIBRATION_EPOCHS = (2, 6)  # timed train_seg calls after the warm-up: per epoch = difference / 4


def _prepare(images):
    return [np.asarray(im, dtype=np.float32) for im in images]


def _flows(labels, device):
    """Cellpose's training targets, computed once (train_seg skips label maps that carry them)."""
    from cellpose import dynamics

    return dynamics.labels_to_flows([np.asarray(lab, dtype=np.int32) for lab in labels], device=device)


def _train(model, images, flows, channels, epochs, save_path, args):
    from cellpose import train as cp_train

    return cp_train.train_seg(
        model.net,
        train_data=images,
        train_labels=flows,
        channels=channels,
        n_epochs=epochs,
        learning_rate=args.lr,
        batch_size=args.batch_size,
        bsize=args.bsize,
        nimg_per_epoch=args.batch_size,
        min_train_masks=1,
        save_path=save_path,
        model_name="peer",
    )


def _calibrate(make, images, flows, channels, tmp, args):
    """Epochs that fit in ``args.budget`` minutes, seconds per epoch and fixed seconds per train_seg call."""
    times = {}
    _train(make(), images, flows, channels, 1, tmp, args)  # warm-up: the first call in a process is slower
    for n in CALIBRATION_EPOCHS:
        t0 = time.perf_counter()
        _train(make(), images, flows, channels, n, tmp, args)
        times[n] = time.perf_counter() - t0
    short, long = CALIBRATION_EPOCHS
    per_epoch = (times[long] - times[short]) / (long - short)
    overhead = max(0.0, times[short] - short * per_epoch)
    epochs = max(2, int((args.budget * 60 - overhead) / per_epoch))
    print(f"calibration: {per_epoch:.2f} s per epoch + {overhead:.1f} s per call -> {epochs} epochs "
          f"for {args.budget} min", flush=True)
    return epochs, per_epoch, overhead


def peer(dataset, seed=0, *, budget=12.0, epochs=None, lr=0.005, batch_size=8, bsize=224, device="cpu",
         threads=None, train_truth="gold"):
    """Train Cellpose from scratch on the train split of ``dataset``, tune it on held-out training images,
    score the test split; the result (``rows`` and the run's settings and times).

    ``budget``: minutes of training (the epochs from a timed calibration) unless ``epochs`` is given.
    """
    args = SimpleNamespace(dataset=dataset, seed=seed, budget=budget, epochs=epochs, lr=lr, batch_size=batch_size,
                           bsize=bsize, device=device, threads=threads, train_truth=train_truth)
    import torch
    from cellpose import models
    from cellpose.version import version as cellpose_version

    logging.getLogger("cellpose").setLevel(logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    train, test = load(args.dataset, "train", truth=args.train_truth), load(args.dataset, "test")
    channels = CHANNELS.get(args.dataset, [0, 0])
    gpu = args.device.startswith("cuda")
    make = lambda: models.CellposeModel(gpu=gpu, pretrained_model=False, diam_mean=30.0)  # noqa: E731
    t0 = time.perf_counter()
    flows = _flows(train.labels, torch.device("cuda" if gpu else "cpu"))
    flows_s = time.perf_counter() - t0
    images = _prepare(train.images)
    held = np.random.default_rng(args.seed).permutation(len(images))[: max(1, len(images) // 10)]
    fit_idx = sorted(set(range(len(images))) - set(held.tolist()))
    images_fit, flows_fit = [images[i] for i in fit_idx], [flows[i] for i in fit_idx]
    with tempfile.TemporaryDirectory() as tmp:
        if args.epochs is None:
            epochs, per_epoch, overhead = _calibrate(make, images_fit, flows_fit, channels, tmp, args)
        else:
            epochs, per_epoch, overhead = args.epochs, None, None
        model = make()
        t0 = time.perf_counter()
        _train(model, images_fit, flows_fit, channels, epochs, tmp, args)
        train_s = time.perf_counter() - t0
    # the mean object diameter of the training labels, which train_seg stores in the network
    diameter = float(model.net.diam_labels.item())
    t0 = time.perf_counter()
    val_images = [images[i] for i in held]
    val_gt = [np.asarray(train.labels[i]) for i in held]
    sizes = [s for s in min_size_grid(CELLPOSE_MIN_SIZE, median_instance_area(val_gt)) if s >= CELLPOSE_MIN_SIZE]
    tuning = []
    for ft, ct in itertools.product(FLOW_THRESHOLDS, CELLPROB_THRESHOLDS):
        masks = model.eval(val_images, channels=channels, diameter=diameter, flow_threshold=ft,
                           cellprob_threshold=ct, min_size=CELLPOSE_MIN_SIZE)[0]
        masks = [np.asarray(m, dtype=np.int32) for m in masks]
        for size in sizes:
            filtered = [remove_small_instances(m, size) for m in masks]
            tuning.append({"flow_threshold": ft, "cellprob_threshold": ct, "min_size": size,
                           "sbd": mean_symmetric_best_dice(val_gt, filtered)})
    # first best wins: ties go to Cellpose's defaults (listed first) and the smallest size
    best = max(tuning, key=lambda r: r["sbd"])
    tune_s = time.perf_counter() - t0
    print(f"tuned on {len(held)} held-out training images: {best}", flush=True)
    t0 = time.perf_counter()
    pred = model.eval(_prepare(test.images), channels=channels, diameter=diameter,
                      flow_threshold=best["flow_threshold"], cellprob_threshold=best["cellprob_threshold"],
                      min_size=CELLPOSE_MIN_SIZE)[0]
    pred = [remove_small_instances(np.asarray(m, dtype=np.int32), best["min_size"]) for m in pred]
    predict_s = time.perf_counter() - t0
    gt = test.masks if test.masks is not None else test.labels
    fg = given_foreground(args.dataset, test)
    rows = {
        "Cellpose 3.1 from scratch": scores(gt, pred),
        "floor: connected components of the given foreground": scores(
            gt, [connected_components(f, connectivity=1).astype(np.int32) for f in fg]
        ),
    }
    payload = {
        "benchmark": "peer_cellpose",
        "dataset": args.dataset,
        "train_truth": args.train_truth,
        "cellpose": cellpose_version,
        "budget_minutes": None if args.epochs is not None else args.budget,
        "epochs": epochs,
        "seconds_per_epoch": per_epoch,
        "train_seconds": train_s,
        "flows_seconds": flows_s,
        "calibration_overhead_seconds": overhead,
        "tune_seconds": tune_s,
        "predict_seconds": predict_s,
        "learning_rate": args.lr,
        "batch_size": args.batch_size,
        "bsize": args.bsize,
        "n_train_images": len(fit_idx),
        "tuning": tuning,
        "tuned": best,
        "diameter": diameter,
        "device": args.device,
        "machine": machine(),
        "rows": rows,
    }
    return payload


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", choices=["bbbc010", "bbbc010_brightfield", "cvppp_a1", "ctc_dic_c2dh_hela"])
    p.add_argument("--budget", type=float, default=12.0, help="minutes of training (wall clock)")
    p.add_argument("--epochs", type=int, default=None,
                   help="fixed epochs instead of the --budget calibration (e.g. those a seed's calibration planned)")
    p.add_argument("--lr", type=float, default=0.005, help="learning rate (Cellpose's default, AdamW)")
    p.add_argument("--batch-size", type=int, default=8, help="Cellpose's default. One Cellpose epoch = one batch: "
                   "Cellpose warms its learning rate up over its first 10 epochs, and with whole-split epochs a CPU "
                   "budget would end inside the warm-up")
    p.add_argument("--bsize", type=int, default=224, help="training crop side (Cellpose's default: 224)")
    p.add_argument("--device", default="cpu", help="'cpu' or 'cuda'")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None,
                   help="result file (default: out/results_peer_cellpose_<dataset>[_<truth>].json)")
    p.add_argument("--train-truth", default=None, choices=["gold", "silver"],
                   help="DIC-HeLa only; default: the harmonic recipe's (silver: the silver truth of the 84 frames "
                   "of sequence 01; gold: its 9 gold frames), see reproduce.py")
    args = p.parse_args(argv)
    recipe_truth = RECIPE_TRAIN_TRUTH.get(args.dataset, "gold")
    args.train_truth = resolve_train_truth(p, args.dataset, args.train_truth)
    payload = peer(args.dataset, args.seed, budget=args.budget, epochs=args.epochs, lr=args.lr,
                   batch_size=args.batch_size, bsize=args.bsize, device=args.device, threads=args.threads,
                   train_truth=args.train_truth)
    rows, epochs, train_s = payload["rows"], payload["epochs"], payload["train_seconds"]
    cellpose_version = payload["cellpose"]
    suffix = "" if args.train_truth == recipe_truth else f"_{args.train_truth}"
    path = write_json(args.out or OUT / f"results_peer_cellpose_{args.dataset}{suffix}.json", payload)
    keys = list(next(iter(rows.values())))
    print(f"\n{args.dataset}: Cellpose {cellpose_version} from scratch, {epochs} batches of {args.batch_size} "
          f"crops {args.bsize}x{args.bsize}, {train_s / 60:.1f} min training on {args.device}")
    print("| method | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for name, r in rows.items():
        print(f"| {name} | " + " | ".join(f"{r[k]:.3f}" for k in keys) + " |")
    print(f"\nJSON written to {path}")


if __name__ == "__main__":
    main()
