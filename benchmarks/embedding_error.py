"""How well a saved network regresses its targets on training, held-out and test images: a diagnostic.

    python benchmarks/embedding_error.py ctc_dic_c2dh_hela out/model_hela_quarter

For each group of images, the network's embedding is compared with the target
embedding (:func:`harmonic_seg.embeddings.embedding_map` of the label map, with
the model's guides) in the frame the network works in (the images and label maps
reduced by the model's ``scale``): the mean absolute error over the foreground
pixels that training does not ignore, the training loss's L1 term, and the Dice
of the predicted foreground (``fg_prob > fg_threshold_``, the model's) with its false and
missed pixels as fractions of the true foreground. The groups: every
``--every``-th image the network was trained on, the images ``fit`` held out
(the clustering is tuned on them), and the test split; for DIC-HeLa trained on
silver truth also the gold frames of the training sequence, which the network
was trained on with their silver labels (their error against the gold labels,
beside the one of the trained-on group, is what the change of annotation
alone costs; frames held out or only partly annotated are left out). A test error well above the
held-out one says that the network does not carry over to new images as well
as the held-out images suggest. Results:
``benchmarks/out/embedding_error_<model folder name>.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from _common import machine, write_json
from reproduce import OUT, resolve_train_truth
from retune import held_out
from train_embedding import load

from harmonic_seg import HarmonicSegmenter
from harmonic_seg.embeddings import embedding_map
from harmonic_seg.preprocessing import rescale_channels_first, rescale_labels, scaled_shape


def errors(seg, images, labels, ignore=None):
    """Means over the images of the foreground L1 error and of the foreground Dice, in the network's frame."""
    if not images:
        return None
    guides = seg.guides_.guides_
    chws, _ = seg._check_predict_input(images, None)
    l1, dice, false, missed = [], [], [], []
    for chw, lab, ign in zip(seg._prepare(chws), labels, ignore or [None] * len(labels)):
        ign = np.zeros(lab.shape, bool) if ign is None else np.asarray(ign, bool)
        shape = scaled_shape(lab.shape, seg.scale)
        if seg.scale != 1:
            chw, lab, ign = (rescale_channels_first(chw, shape), rescale_labels(lab, shape),
                             rescale_labels(ign, shape))
        with seg._threads():
            emb, prob = seg._embed_reduced(chw)  # what predict computes before bringing it back to full size
        fg = lab > 0
        l1.append(float(np.abs(emb - embedding_map(lab, guides))[:, fg & ~ign].mean()))
        pred = prob > seg.fg_threshold_
        dice.append(float(2 * (pred & fg).sum() / max(1, pred.sum() + fg.sum())))
        false.append(float((pred & ~fg).sum() / max(1, fg.sum())))
        missed.append(float((fg & ~pred).sum() / max(1, fg.sum())))
    return {"images": len(l1), "fg L1": float(np.mean(l1)), "fg Dice": float(np.mean(dice)),
            "false fg / fg": float(np.mean(false)), "missed fg / fg": float(np.mean(missed))}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", choices=["bbbc010", "bbbc010_brightfield", "cvppp_a1", "ctc_dic_c2dh_hela"])
    p.add_argument("model", type=Path, help="folder written by reproduce.py --save-model")
    p.add_argument("--every", type=int, default=8, help="use every k-th training image (default: 8)")
    p.add_argument("--train-truth", default=None, choices=["gold", "silver"],
                   help="DIC-HeLa: the training frames the model was fitted on (default: the recipe's, silver)")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    args.train_truth = resolve_train_truth(p, args.dataset, args.train_truth)
    seg = HarmonicSegmenter.load(args.model)
    if args.threads is not None:
        seg.set_params(num_threads=args.threads)
    train, test = load(args.dataset, "train", truth=args.train_truth), load(args.dataset, "test")
    val = held_out(seg, len(train))
    if val and max(val) >= len(train):
        p.error(f"the model held out training image {max(val)} of a split of {len(train)}: was it trained with "
                "another --train-truth?")
    fitted = [i for i in range(len(train)) if i not in val][:: args.every]

    def group(data, idx):
        return errors(seg, [data.images[i] for i in idx], [data.labels[i] for i in idx],
                      None if data.ignore is None else [data.ignore[i] for i in idx])

    groups = {"trained on": group(train, fitted), "held out": group(train, val),
              "test split": group(test, range(len(test)))}
    if args.train_truth == "silver":
        # the gold frames of the training sequence whose silver labels the network was trained on (not held
        # out; partial annotations left out)
        gold = load(args.dataset, "train")
        trained = {train.names[i] for i in range(len(train)) if i not in val}
        keep = [i for i, n in enumerate(gold.names) if n in trained and not (gold.partial and gold.partial[i])]
        groups["gold frames of the training sequence"] = group(gold, keep)
    out = write_json(OUT / f"embedding_error_{args.model.resolve().name}.json",
                     dict(dataset=args.dataset, model=str(args.model), groups=groups, machine=machine()))
    print(json.dumps(groups, indent=1))
    print(out)


if __name__ == "__main__":
    main()
