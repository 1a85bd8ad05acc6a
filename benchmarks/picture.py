"""The results page's pictures: one test image segmented by a model the runner saved.

    python benchmarks/run.py defaults cvppp_a1 --seeds 0 --save-models models
    python benchmarks/picture.py models/cvppp_a1_seed0 cvppp_a1 plant006 \\
        --out docs/images/defaults_cvppp_a1_seed0_plant006.png

Draws image | truth | prediction | predicted embedding (``harmonic_seg.plotting.plot_comparison``) for
the test image named ``IMAGE`` of the data set's test split, segmented as the runner scores it: with the
predicted foreground, except on BBBC010, whose input is the foreground mask itself (the paper's
protocol). Prints the image's SBD. An existing ``--out`` is never overwritten: the picture then goes
to a free name beside it (``-1``, ``-2``, ...).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def picture(model, dataset, image, out):
    """Draw ``image`` of ``dataset``'s test split as ``model`` segments it; returns (path, SBD)."""
    from reproduce import given_foreground
    from train_embedding import load

    from harmonic_seg import HarmonicSegmenter
    from harmonic_seg.demo import free_path
    from harmonic_seg.metrics import mean_symmetric_best_dice
    from harmonic_seg.plotting import plot_comparison

    test = load(dataset, "test")
    names = [n.replace("/", "_") for n in test.names]
    if image not in names:
        raise SystemExit(f"IMAGE: {image!r} is not a test image of {dataset}; it has {', '.join(names)}")
    i = names.index(image)
    seg = HarmonicSegmenter.load(model)
    embedded = seg.predict_embeddings([test.images[i]])
    # BBBC010's input is the mask itself; elsewhere None: predict's own foreground (fg_prob > fg_threshold_)
    foreground = [given_foreground(dataset, test)[i]] if dataset == "bbbc010" else None
    labels = seg.predict_from_embeddings(embedded, foreground)[0]
    truth = test.masks[i] if test.masks is not None else test.labels[i]
    path = free_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    plot_comparison(test.images[i], truth, labels, embedding=embedded[0][0], foreground=labels > 0, path=path)
    sbd = mean_symmetric_best_dice([truth], [labels])
    return path, sbd


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path, help="a folder written by HarmonicSegmenter.save (run.py --save-models)")
    p.add_argument("dataset", choices=["cvppp_a1", "bbbc010", "ctc_dic_c2dh_hela"])
    p.add_argument("image", help="the test image's name (e.g. plant006, A01, 02_t006)")
    p.add_argument("--out", type=Path, required=True, help="the PNG to write (never overwritten)")
    args = p.parse_args(argv)
    if not args.model.is_dir():
        p.error(f"model: {args.model} is not a folder written by HarmonicSegmenter.save")
    path, sbd = picture(args.model, args.dataset, args.image, args.out)
    print(f"{path}: {args.dataset} {args.image}, SBD {sbd:.3f}")


if __name__ == "__main__":
    sys.exit(main())
