"""Reproduce one of the paper's experiments (section 4) on a wall-clock budget.

    python benchmarks/reproduce.py bbbc010 --budget 20            # paper protocol: mask input
    python benchmarks/reproduce.py ctc_dic_c2dh_hela --budget 20
    python benchmarks/reproduce.py cvppp_a1 --budget 20 --variant coord   # an ablation
    python benchmarks/reproduce.py bbbc010 --epochs 47 --loss discriminative  # the baseline

Trains HarmonicSegmenter on the train split of ../shared/data (fixed splits of
splits.json) for ``--budget`` minutes of training (the number of epochs comes
from a short timed calibration, so that the cosine schedule completes), with
10 % of the training images held out to tune the mean-shift bandwidth, the
distance, the core fraction (from 2026-11-27) and the minimum size
(``tune_postprocessing=True``). On the test
split it scores, with the library's metrics:

* harmonic, predicted foreground: the estimator as a user runs it;
* harmonic, given foreground: the input mask (BBBC010 paper protocol) or the
  ground-truth foreground (HeLa's second figure; CVPPP for reference);
* the trivial floor: connected components of the same two foregrounds.

Instances are scored against the per-instance masks where they overlap
(BBBC010). ``--scale`` overrides the recipe's ``scale`` of the segmenter:
the network and the guides work on images resized by it (0.25 in the HeLa recipe, 0.5 in the worm and
leaf recipes, so that a crop and the receptive field cover whole objects at
the cost of full-size crops); predictions and scores are at full resolution.
The paper's figure is printed beside ours. Results:
``benchmarks/out/results_<dataset>[_<variant>_<guides>][_<loss>][_scale<S>][_crop<C>][_bw<W>][_fgw<F>]``
``[_width<B>][_rot][_merge][_gold|_silver][_seed<K>].json`` and a markdown table on stdout;
``docs/results.md`` quotes them.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from _common import machine, write_json
from skimage.measure import label as connected_components
from train_embedding import calibrate, load

from harmonic_seg import Augmentation, GuideFunctionFitter, HarmonicSegmenter, Loss, Network
from harmonic_seg.clustering import EmbeddingClusterer
from harmonic_seg.guides import FREQUENCY_RANGES
from harmonic_seg.metrics import (
    coco_average_precision,
    matching_dataset,
    mean_abs_difference_in_count,
    mean_symmetric_best_dice,
)

OUT = Path(__file__).resolve().parent / "out"

#: The paper's figures (Kulikov & Lempitsky 2020, section 4), for the tables.
PAPER = {
    "cvppp_a1": {"SBD": 0.899, "|DiC|": 3.0},  # on the hidden CVPPP 2017 test set, 500 epochs
    "bbbc010": {"COCO AP": 0.724, "AP50": 0.900, "AP75": 0.723},  # 1000 epochs, mask input
    "bbbc010_brightfield": {},
    "ctc_dic_c2dh_hela": {"SBD": 0.78, "SBD (given fg)": 0.86},  # 8000 epochs
}

_WORMS = dict(
    depth=4, base_width=16, crop_size=192, batch_size=4, learning_rate=2e-3, scale=0.5, split_components=True,
    merge_small=True,
)

#: Our CPU recipes (network and crops; N = 12, eps = 0.5 for all).
RECIPES = {
    # Worms: halved images, so that a crop holds whole worms; a worm is one connected piece of the mask, so
    # a cluster made of several pieces is several worms, and a fragment cut off a worm goes back to it.
    "bbbc010": dict(_WORMS),
    "bbbc010_brightfield": dict(_WORMS),
    # leaves: halved images, so that a crop holds most of a rosette (SBD 0.44 -> 0.69, docs/results.md)
    "cvppp_a1": dict(depth=4, base_width=16, crop_size=192, batch_size=4, learning_rate=2e-3, scale=0.5),
    # HeLa: quarter-size frames (cells of about 28 px, as Cellpose rescales them; a 128-px crop is a whole
    # frame), trained on the silver truth of all 84 frames of sequence 01 (RECIPE_TRAIN_TRUTH): SBD 0.813,
    # 0.786 and 0.814 with seeds 0-2 (0.782, 0.830 and 0.806 on a second machine), against 0.717 halved
    # (docs/results.md); on its 9 gold frames alone a reduced frame is one crop and the network memorised
    # them (SBD 0.24 halved)
    "ctc_dic_c2dh_hela": dict(depth=4, base_width=16, crop_size=128, batch_size=4, learning_rate=2e-3, scale=0.25),
}

#: The recipes' --train-truth: DIC-HeLa trains on the silver truth of sequence 01 (84 frames, allowed as
#: extra training data by the data set's terms); the test split stays the 9 gold frames of sequence 02.
RECIPE_TRAIN_TRUTH = {"ctc_dic_c2dh_hela": "silver"}


def resolve_train_truth(parser, dataset, requested):
    """``--train-truth`` of the command line, or the recipe's; silver exists only for DIC-HeLa."""
    truth = requested or RECIPE_TRAIN_TRUTH.get(dataset, "gold")
    if truth == "silver" and dataset != "ctc_dic_c2dh_hela":
        parser.error("--train-truth silver is for ctc_dic_c2dh_hela only")
    return truth

#: The recipes' --guides. Worms, mask input: the search started from and bounded to low frequencies
#: (periods of at least 160 px on the halved images): COCO AP 0.434 as run (mean of seeds 0-2; 0.462
#: re-tuned), against 0.363 for the search from init_range="auto" (periods from 71 px: four equivalent
#: diameters; 0.399 re-tuned). The search from "auto-length" (four lengths, from 247 px) scores as this
#: recipe (0.451 vs 0.448 re-tuned, seeds 0-1). HeLa: the search from "auto-length", with which its recipe
#: was measured. Leaves: the search from "auto-length" (SBD 0.760, COCO AP 0.477, means of seeds 0-2)
#: against "auto" (0.747, 0.432) and fixed low guides (0.690, one seed). The bright-field protocol keeps
#: "auto" (COCO AP 0.077 vs 0.036 with the low held search, as run).
RECIPE_GUIDES = {"bbbc010": "optimize_low", "ctc_dic_c2dh_hela": "optimize_length", "cvppp_a1": "optimize_length"}


def scores(gt, pred, instance_scores=None):
    """The metrics of one prediction of the whole test split."""
    m50 = matching_dataset(gt, pred, 0.5)
    coco = coco_average_precision(gt, pred, instance_scores)
    return {
        "SBD": mean_symmetric_best_dice(gt, pred),
        "|DiC|": mean_abs_difference_in_count(gt, pred),
        "AP@0.5 (TP/(TP+FP+FN))": m50.accuracy,
        "COCO AP": coco["AP"],
        "AP50": coco["AP50"],
        "AP75": coco["AP75"],
        "APs": coco["APs"],
        "APm": coco["APm"],
    }


def given_foreground(dataset, data):
    if dataset == "bbbc010":  # the input is the mask itself
        return [np.asarray(im) > 0 for im in data.images]
    return [lab > 0 for lab in data.labels]


def evaluate(seg, dataset, test, embedded=None):
    """Scores of a fitted segmenter on the test split, with the predicted and the given foreground.

    ``embedded``: ``predict_embeddings`` of the test images when already computed (then
    ``predict_seconds`` is 0).

    Returns
    -------
    rows : dict
        Metric rows of the harmonic segmentation and of the floor, per foreground.
    shown : dict
        The predicted label maps, per foreground.
    embedded : list of tuple
        ``predict_embeddings`` of the test images.
    predict_seconds : float
    """
    t0 = time.perf_counter()
    gt = test.masks if test.masks is not None else test.labels
    embedded = seg.predict_embeddings(test.images) if embedded is None else embedded
    predict_s = time.perf_counter() - t0
    rows, shown = {}, {}
    predicted = [prob > seg.fg_threshold_ for _, prob in embedded]
    for fg_name, fgs in (("predicted", predicted), ("given", given_foreground(dataset, test))):
        # exactly predict's clustering, on embeddings computed once for both foregrounds
        labels, inst_scores = seg.predict_from_embeddings(embedded, fgs, return_scores=True)
        rows[f"harmonic, {fg_name} foreground"] = scores(gt, labels, inst_scores)
        shown[fg_name] = labels
        floor = [connected_components(fg, connectivity=1).astype(np.int32) for fg in fgs]
        rows[f"floor: connected components of the {fg_name} foreground"] = scores(gt, floor)
    return rows, shown, embedded, predict_s


def print_table(rows):
    """The rows as a markdown table on stdout."""
    keys = list(next(iter(rows.values())))
    print("| | " + " | ".join(k.replace("|", "\\|") for k in keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for name, r in rows.items():
        print(f"| {name} | " + " | ".join(f"{r[k]:.3f}" for k in keys) + " |")


#: --guides: GuideFunctionFitter parameters of each choice.
GUIDE_CHOICES = {
    "optimize": dict(strategy="optimize", init_range="auto"),  # the search from four equivalent diameters
    "optimize_low": dict(strategy="optimize", init_range=FREQUENCY_RANGES["low"], max_frequency="init"),
    "optimize_held": dict(strategy="optimize", max_frequency="init"),
    "optimize_length": dict(strategy="optimize", init_range="auto-length"),
    **{kind: dict(strategy=kind) for kind in ("random", "low", "high")},
}


#: Command-line overrides of the recipe: HarmonicSegmenter parameter -> tag of the result file's name.
OVERRIDES = {
    "scale": "scale", "crop_size": "crop", "boundary_weight": "bw", "fg_weight": "fgw", "base_width": "width",
    "learning_rate": "lr",
}
#: Command-line switches that turn a HarmonicSegmenter option on -> tag of the result file's name.
FLAGS = {"rotate": "rot", "merge_small": "merge", "amp": "amp"}
#: Names of the recipes, overrides and switches that are parameters of a nested estimator of HarmonicSegmenter:
#: name -> (the segmenter's parameter, the estimator's parameter).
NESTED = {"boundary_weight": ("loss", "boundary_weight"), "fg_weight": ("loss", "fg_weight"),
          "rotate": ("augmentation", "rotate"), "merge_small": ("clustering", "merge_small"),
          "split_components": ("clustering", "split_components"),
          **{name: ("network", name) for name in ("depth", "base_width", "norm", "variant")}}


def segmenter_params(flat):
    """HarmonicSegmenter keyword arguments of a recipe with its overrides (``flat``: names as in :data:`NESTED`)."""
    params, nested = {}, {}
    for key, value in flat.items():
        if key in NESTED:
            where, name = NESTED[key]
            nested.setdefault(where, {})[name] = value
        else:
            params[key] = value
    if "loss" in nested:
        params["loss"] = Loss(name=params.get("loss", "discriminative"), **nested["loss"])
    if "augmentation" in nested:
        params["augmentation"] = Augmentation(**nested["augmentation"])
    if "clustering" in nested:
        params["clustering"] = EmbeddingClusterer(**nested["clustering"])
    if "network" in nested:
        params["network"] = Network(**nested["network"])
    return params


def save_pictures(dataset, variant, test, shown, embedded, folder, n_pictures):
    """Image | truth | prediction | embedding of the first test images, as ``evaluate`` returned them.

    The prediction shown is the protocol's own: with the given foreground on BBBC010 (mask input), with
    the predicted one elsewhere. Existing files are never overwritten (a free name is taken).
    """
    if folder is None:
        return []
    from harmonic_seg.demo import free_path
    from harmonic_seg.plotting import plot_comparison

    gt = test.masks if test.masks is not None else test.labels
    fg_name = "given" if dataset == "bbbc010" else "predicted"
    pictures = []
    for i in range(min(n_pictures, len(test))):
        name = test.names[i].replace("/", "_")
        path = free_path(Path(folder) / f"{dataset}_{variant}_{name}.png")
        path.parent.mkdir(parents=True, exist_ok=True)
        plot_comparison(test.images[i], gt[i], shown[fg_name][i], embedding=embedded[i][0],
                        foreground=shown[fg_name][i] > 0, path=path)
        pictures.append(str(path))
    if pictures:
        print("pictures:", *pictures)
    return pictures


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", choices=sorted(RECIPES))
    p.add_argument("--budget", type=float, default=20.0, help="training minutes (wall clock)")
    p.add_argument("--epochs", type=int, default=None, help="fixed epochs instead of --budget")
    p.add_argument("--max-time", type=float, default=None, metavar="SECONDS",
                   help="instead of --budget: seconds the whole fit may take (HarmonicSegmenter(max_time=...), "
                        "stage 1 and the tuning included), as the defaults are measured (benchmarks/run.py defaults)")
    p.add_argument("--steps-per-epoch", type=int, default=20)
    p.add_argument("--variant", default="sin", choices=["sin", "coord", "none"])
    p.add_argument("--guides", default=None, choices=sorted(GUIDE_CHOICES),
                   help="default: the recipe's (RECIPE_GUIDES, else optimize); optimize: the paper's search; "
                   "optimize_low: the search started from and bounded to the 'low' frequencies; "
                   "optimize_held: the search bounded to its 'auto' starting range; "
                   "optimize_length: the search from init_range='auto-length'; "
                   "random / low / high: fixed guides (paper Table 5)")
    p.add_argument("--loss", default="harmonic", choices=["harmonic", "discriminative"],
                   help="discriminative: the baseline of De Brabandere et al. with the same network and clustering")
    p.add_argument("--scale", type=float, default=None, help="HarmonicSegmenter(scale=...): resize factor of the "
                   "images the network sees (default: the recipe's)")
    p.add_argument("--crop-size", type=int, default=None, help="HarmonicSegmenter(crop_size=...): training crop "
                   "side on the resized images (default: the recipe's)")
    p.add_argument("--boundary-weight", type=float, default=None,
                   help="HarmonicSegmenter(loss=Loss(boundary_weight=...)): extra L1 weight where instances touch "
                   "(default: 0, off in every recipe)")
    p.add_argument("--fg-weight", type=float, default=None,
                   help="HarmonicSegmenter(loss=Loss(fg_weight=...)): weight of the foreground BCE (default: 1 in "
                   "every recipe)")
    p.add_argument("--base-width", type=int, default=None,
                   help="HarmonicSegmenter(base_width=...): channels of the first U-Net level (default: the recipe's)")
    p.add_argument("--learning-rate", type=float, default=None,
                   help="HarmonicSegmenter(learning_rate=...): Adam's initial rate (default: the recipe's, 2e-3)")
    p.add_argument("--rotate", action="store_true",
                   help="HarmonicSegmenter(augmentation=Augmentation(rotate=True)): random rotations of the training "
                   "images by any angle")
    p.add_argument("--merge-small", action="store_true",
                   help="EmbeddingClusterer(merge_small=True): fragments below min_size go to the instance they touch "
                   "instead of being dropped (the worm recipes have it on already)")
    p.add_argument("--amp", action="store_true",
                   help="HarmonicSegmenter(amp=True): bfloat16 autocast on CPU (float16 on CUDA) in fit and predict")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None)
    p.add_argument("--pictures", type=Path, default=None,
                   help="folder for pictures (image | truth | prediction | embedding) of test images")
    p.add_argument("--n-pictures", type=int, default=2)
    p.add_argument("--save-model", type=Path, default=None, help="also save the trained model to this new folder")
    p.add_argument("--train-truth", default=None, choices=["gold", "silver"],
                   help="DIC-HeLa only; default: the recipe's (silver). silver: train on the silver truth of every "
                   "frame of sequence 01 (84 frames; the data set's terms allow it as extra training data); gold: "
                   "on its 9 gold frames (the paper's split). The test split (gold, sequence 02) is unchanged")
    args = p.parse_args(argv)
    recipe_guides = RECIPE_GUIDES.get(args.dataset, "optimize")
    args.guides = args.guides or recipe_guides
    if args.save_model is not None and args.save_model.exists():
        p.error(f"--save-model {args.save_model} exists; choose a new folder")

    recipe_truth = RECIPE_TRAIN_TRUTH.get(args.dataset, "gold")
    args.train_truth = resolve_train_truth(p, args.dataset, args.train_truth)
    train, test = load(args.dataset, "train", truth=args.train_truth), load(args.dataset, "test")
    params = dict(
        RECIPES[args.dataset],
        guides=GuideFunctionFitter(n_guides=12, margin=0.5, random_state=args.seed, **GUIDE_CHOICES[args.guides]),
        variant=args.variant, loss=args.loss, steps_per_epoch=args.steps_per_epoch, validation_fraction=0.1,
        tune_postprocessing=True, device=args.device, num_threads=args.threads, random_state=args.seed,
    )
    for name in OVERRIDES:
        if getattr(args, name) is not None:
            params[name] = getattr(args, name)
    for name in FLAGS:
        if getattr(args, name):
            params[name] = True
    if args.max_time is not None:
        epochs, step = None, None
        params["max_time"] = args.max_time
    elif args.epochs is None:
        epochs, step = calibrate(segmenter_params(params), train, args.steps_per_epoch, args.budget)
        print(f"calibration: {step:.2f} s/step -> {epochs} epochs of {args.steps_per_epoch} steps", flush=True)
    else:
        epochs, step = args.epochs, None
    seg = HarmonicSegmenter(**segmenter_params(params), epochs=epochs or 50, verbose=1)
    t0 = time.perf_counter()
    seg.fit(train.images, train.labels, ignore=train.ignore)
    train_s = time.perf_counter() - t0
    if args.save_model is not None:
        seg.save(args.save_model)

    rows, shown, embedded, predict_s = evaluate(seg, args.dataset, test)
    if args.max_time is not None:
        epochs = seg.n_epochs_

    result = dict(
        dataset=args.dataset, seed=args.seed, train_truth=args.train_truth, n_train=len(train), variant=args.variant,
        guides=args.guides, loss=args.loss, recipe=RECIPES[args.dataset], scale=seg.scale, crop_size=seg.crop_size,
        boundary_weight=params.get("boundary_weight", 0.0), fg_weight=params.get("fg_weight", 1.0),
        base_width=params.get("base_width", "auto"), rotate=params.get("rotate", False),
        learning_rate=seg.learning_rate, merge_small=params.get("merge_small", False), amp=seg.amp, epochs=epochs,
        minibatches=sum(h.get("steps", args.steps_per_epoch) for h in seg.history_),
        train_seconds=train_s, predict_seconds=predict_s,
        budget_minutes=None if args.epochs is not None or args.max_time is not None else args.budget,
        max_time=args.max_time, time_budget=seg.time_budget_, command="python benchmarks/reproduce.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        calibration_step_seconds=step, epoch_loop_seconds=sum(h["dur"] for h in seg.history_),
        device=args.device, threads=args.threads, bandwidth=seg.bandwidth_, metric=seg.metric_,
        min_size=seg.min_size_, core_fraction=seg.core_fraction_, fg_threshold=seg.fg_threshold_,
        separation=seg.guides_.separation_,
        final_train_l1=seg.history_[-1]["train_l1"],
        paper=PAPER[args.dataset], rows=rows, machine=machine(),
    )
    pictures = save_pictures(args.dataset, args.variant, test, shown, embedded, args.pictures, args.n_pictures)
    result["pictures"] = pictures
    suffix = "" if (args.variant, args.guides) == ("sin", recipe_guides) else f"_{args.variant}_{args.guides}"
    suffix += "" if args.loss == "harmonic" else f"_{args.loss}"
    suffix += "".join(f"_{tag}{getattr(args, name):g}" for name, tag in OVERRIDES.items()
                      if getattr(args, name) is not None)
    suffix += "".join(f"_{tag}" for name, tag in FLAGS.items()
                      if getattr(args, name) and not RECIPES[args.dataset].get(name))
    suffix += "" if args.train_truth == recipe_truth else f"_{args.train_truth}"
    suffix += f"_t{args.max_time:g}" if args.max_time is not None else ""
    suffix += f"_seed{args.seed}" if args.seed else ""
    out = write_json(args.out or OUT / f"results_{args.dataset}{suffix}.json", result)
    print(f"\n{args.dataset}, loss {args.loss}, variant {args.variant}, guides {args.guides}, scale {seg.scale:g}: "
          f"{epochs * args.steps_per_epoch} "
          f"minibatches in {train_s / 60:.1f} min on {args.device}; paper: {PAPER[args.dataset]}\n")
    print_table(rows)
    print(f"\n{out}")


if __name__ == "__main__":
    main()
