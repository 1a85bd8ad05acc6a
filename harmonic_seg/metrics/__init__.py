"""Instance segmentation metrics (numpy, scipy and pycocotools only; no torch).

Ground truth is a 2-D integer label map (H, W) or a stack of binary masks
(K, H, W) whose instances may overlap; predictions are 2-D label maps.

* :mod:`.matching` -- IoU matrix, StarDist-style one-to-one matching
  (precision, recall, DSB2018 accuracy, F1, panoptic quality).
* :mod:`.dice` -- CVPPP best Dice, symmetric best Dice, difference in count.
* :mod:`.coco` -- COCO mask AP via pycocotools.
* :mod:`.scorers` -- scikit-learn scorers.
"""

from .coco import coco_average_precision
from .dice import (
    abs_difference_in_count,
    best_dice,
    difference_in_count,
    mean_abs_difference_in_count,
    mean_symmetric_best_dice,
    symmetric_best_dice,
)
from .matching import Matching, iou_matrix, matching, matching_dataset
from .scorers import SCORERS, ap_score, ap_scorer, make_ap_scorer, sbd_score, sbd_scorer

__all__ = [
    "Matching",
    "iou_matrix",
    "matching",
    "matching_dataset",
    "best_dice",
    "symmetric_best_dice",
    "difference_in_count",
    "abs_difference_in_count",
    "mean_symmetric_best_dice",
    "mean_abs_difference_in_count",
    "coco_average_precision",
    "sbd_score",
    "ap_score",
    "make_ap_scorer",
    "sbd_scorer",
    "ap_scorer",
    "SCORERS",
]
