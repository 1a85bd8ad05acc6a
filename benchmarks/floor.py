"""The trivial floor: connected components of the foreground, scored like any prediction.

    python benchmarks/floor.py            # BBBC010 paper protocol (given foreground mask), test split
"""

from __future__ import annotations

import argparse

import numpy as np
from skimage.measure import label as connected_components

from harmonic_seg.io import load_bbbc010
from harmonic_seg.metrics import coco_average_precision, matching_dataset, mean_symmetric_best_dice


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--split", default="test")
    args = p.parse_args(argv)
    data = load_bbbc010(split=args.split, input="mask")
    pred = [connected_components(im > 0, connectivity=1).astype(np.int32) for im in data.images]
    m = matching_dataset(data.masks, pred, 0.5)
    coco = coco_average_precision(data.masks, pred)
    print(f"BBBC010 {args.split} split ({len(pred)} wells), connected components of the given foreground mask:")
    print(f"SBD {mean_symmetric_best_dice(data.masks, pred):.3f}  AP@0.5 (TP/(TP+FP+FN)) {m.accuracy:.3f}  "
          f"COCO AP {coco['AP']:.3f} AP50 {coco['AP50']:.3f} AP75 {coco['AP75']:.3f}")


if __name__ == "__main__":
    main()
