"""Write ``harmonic_seg/data/worms_bbbc010.npz``, the worm sample shipped with the package.

Reads BBBC010 (C. elegans live/dead assay, Broad Bioimage Benchmark Collection, CC BY 3.0) in its
original layout and keeps, from the fixed train/test split of ``splits.json``, the first 16 wells
of the training split and the first 4 wells of the test split (in the split file's order; no well is
picked by its content). For each well it stores the binary foreground (the network's input in the
paper's protocol), the worm instances as a label map, and the pixels where two worms overlap (left
out of training and of the label map, as ``load_bbbc010(overlap="ignore")`` does).

    python benchmarks/make_worm_sample.py --root ../shared/data
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from harmonic_seg.io import load_bbbc010

N_TRAIN, N_TEST = 16, 4
OUT = Path(__file__).resolve().parents[1] / "harmonic_seg" / "data" / "worms_bbbc010.npz"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default=None, help="folder holding bbbc010/ and splits.json")
    p.add_argument("--out", default=str(OUT))
    args = p.parse_args(argv)
    parts = {}
    for split, n in (("train", N_TRAIN), ("test", N_TEST)):
        data = load_bbbc010(root=args.root, split=split, input="mask", overlap="ignore")
        parts[split] = (data.images[:n], data.labels[:n], data.ignore[:n], data.names[:n])
    images = [im for s in ("train", "test") for im in parts[s][0]]
    labels = [lab for s in ("train", "test") for lab in parts[s][1]]
    ignore = [ig for s in ("train", "test") for ig in parts[s][2]]
    names = [nm for s in ("train", "test") for nm in parts[s][3]]
    assert max(int(lab.max()) for lab in labels) < 256
    np.savez_compressed(
        args.out,
        foreground=np.packbits(np.stack([np.asarray(im) > 0 for im in images]), axis=-1),
        labels=np.stack(labels).astype(np.uint8),
        ignore=np.packbits(np.stack(ignore).astype(bool), axis=-1),
        names=np.array(names),
        n_train=np.int64(N_TRAIN),
        shape=np.array(images[0].shape[:2]),
    )
    print(f"wrote {args.out} ({Path(args.out).stat().st_size / 1024:.0f} KiB): {names}")


if __name__ == "__main__":
    main()
