"""Save a trained model's predicted embeddings of one test image, for bench_meanshift.py.

    python benchmarks/predict_embeddings.py benchmarks/out/model_bbbc010_sin \
        --dataset bbbc010 --index 0 --out benchmarks/out/pred_bbbc010_A01.npz

    python benchmarks/predict_embeddings.py demo_model --dataset nuclei \
        --out benchmarks/out/pred_nuclei.npz      # model from `harmonic-seg demo --save-model demo_model`

``--dataset nuclei`` is the whole 512x512 image of the shipped nuclei sample
(the demo trains on 12 of its 16 tiles). The ``.npz`` holds ``embedding`` (N, H, W), ``fg_prob`` (H, W), ``labels``
(H, W, the ground truth) and ``foreground`` (H, W, bool): the input mask for
the BBBC010 paper protocol, the ground-truth foreground otherwise.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from train_embedding import load

from harmonic_seg import HarmonicSegmenter


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path, help="folder written by HarmonicSegmenter.save")
    p.add_argument("--dataset", default="bbbc010")
    p.add_argument("--index", type=int, default=0, help="test image index")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args(argv)
    if args.out.exists() and not args.overwrite:
        p.error(f"{args.out} exists; pass --overwrite to replace it")
    seg = HarmonicSegmenter.load(args.model)
    if args.dataset == "nuclei":
        from harmonic_seg.io import load_nuclei_sample

        test = load_nuclei_sample(tile=None)
    else:
        test = load(args.dataset, "test")
    image, labels = test.images[args.index], test.labels[args.index]
    ((emb, prob),) = seg.predict_embeddings([image])
    fg = image > 0 if args.dataset == "bbbc010" else labels > 0
    if fg.ndim == 3:
        fg = fg.any(axis=-1)
    np.savez_compressed(args.out, embedding=emb, fg_prob=prob, labels=labels, foreground=fg)
    print(f"{args.out}: {test.names[args.index]}, embedding {emb.shape}")


if __name__ == "__main__":
    main()
