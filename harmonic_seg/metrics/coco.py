"""COCO mask average precision computed with pycocotools (in memory).

The ground truth of every image (a label map or a stack of possibly
overlapping binary masks) and the predicted label maps are run-length encoded
with ``pycocotools.mask.encode`` and evaluated with
``COCOeval(..., iouType="segm")``, one category, ``iscrowd = 0``.
"""

from __future__ import annotations

import contextlib
import io
import numbers

import numpy as np
from scipy import ndimage

from .._validation import _describe
from ._instances import check_pairs

__all__ = ["coco_average_precision"]

_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl")


def _rle(mask, mask_utils):
    rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def _instance_rles(inst, mask_utils):
    """RLEs of the instances of one image, in the order of ``inst.ids``."""
    if inst.labels is None:
        return [_rle(m, mask_utils) for _, m in inst.dense_masks()]
    rles = []
    buf = np.zeros(inst.shape, dtype=np.uint8, order="F")
    for k, sl in enumerate(ndimage.find_objects(inst.labels)):
        buf[sl] = inst.labels[sl] == k + 1
        rle = mask_utils.encode(buf)
        rle["counts"] = rle["counts"].decode("ascii")
        rles.append(rle)
        buf[sl] = 0
    return rles


def _check_scores(scores, pairs):
    if scores is None:
        return [np.ones(p.n) for _, p in pairs]
    if not isinstance(scores, (list, tuple)):
        raise TypeError(
            f"scores must be None or a list with one array of confidences per image; got {_describe(scores)}."
        )
    if len(scores) != len(pairs):
        raise ValueError(
            f"scores must have one entry per image: {len(pairs)} images but {len(scores)} score arrays."
        )
    out = []
    for i, (s, (_, p)) in enumerate(zip(scores, pairs)):
        s = np.asarray(s, dtype=np.float64).ravel() if s is not None else np.ones(p.n)
        if s.size != p.n:
            raise ValueError(
                f"scores[{i}] must hold one confidence per predicted instance (sorted nonzero ids of "
                f"ys_pred[{i}]): expected {p.n} values, got {s.size}."
            )
        if not np.all(np.isfinite(s)):
            raise ValueError(f"scores[{i}] contains NaN or infinite values.")
        out.append(s)
    return out


def coco_average_precision(ys_true, ys_pred, scores=None, max_dets=None):
    """COCO mask AP, AP50, AP75 and AP by object size, with pycocotools.

    Parameters
    ----------
    ys_true : list of array-like
        Ground truth per image: integer label maps (H, W) or stacks of binary
        masks (K, H, W) / lists of K masks; masks may overlap.
    ys_pred : list of array-like of shape (H, W)
        Predicted integer label maps (0 = background), one per image.
    scores : list of array-like or None, default=None
        Per image, the confidence of every predicted instance, aligned with
        the sorted nonzero ids of that prediction. None (for the whole list or
        for one image) gives every instance a score of 1.0; COCOeval then
        keeps the instances in id order (stable sort).
    max_dets : int or None, default=None
        Largest number of detections per image that are evaluated
        (``params.maxDets`` ends with it). None evaluates every predicted
        instance: the largest number of predicted instances in any image (at
        least 1). This departs from pycocotools, whose default ``maxDets`` of
        100 drops the lowest-scored detections beyond the 100th of an image
        and so caps the recall of images with more than 100 objects (a perfect
        prediction of 150 instances scores AP 0.663); pass ``max_dets=100`` for
        pycocotools' figures. All six figures are read at this number of
        detections (pycocotools' own ``summarize`` reads AP at 100 whatever
        ``maxDets`` holds).

    Returns
    -------
    ap : dict of str to float
        Keys ``"AP"`` (mean over IoU 0.50:0.05:0.95), ``"AP50"``, ``"AP75"``,
        ``"APs"``, ``"APm"``, ``"APl"`` (small < 32**2 <= medium < 96**2 <=
        large, by area in pixels). A value is NaN where pycocotools reports
        -1, i.e. no ground-truth instance falls in that size range (or there
        is none at all). With ground truth but no predictions the values are
        0.0.

    Notes
    -----
    pycocotools matches detections to ground truth greedily in pure Python,
    so the evaluation of an image costs O(n_true * n_pred) interpreter steps:
    seconds for images with many hundreds of instances.
    """
    import pycocotools.mask as mask_utils
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if max_dets is not None and (isinstance(max_dets, bool) or not isinstance(max_dets, numbers.Integral)):
        raise TypeError(
            f"max_dets must be None (every predicted instance) or a positive integer; got {_describe(max_dets)}."
        )
    if max_dets is not None and max_dets < 1:
        raise ValueError(
            f"max_dets must be None (every predicted instance) or a positive integer; got {max_dets!r}."
        )
    pairs = check_pairs(ys_true, ys_pred)
    scores = _check_scores(scores, pairs)
    if max_dets is None:
        max_dets = max(1, max(p.n for _, p in pairs))

    images, gt_anns, dt_anns = [], [], []
    for img_id, ((t, p), s) in enumerate(zip(pairs, scores), start=1):
        h, w = (int(v) for v in t.shape)
        images.append({"id": img_id, "height": h, "width": w})
        for rle, area in zip(_instance_rles(t, mask_utils), t.areas):
            gt_anns.append({
                "id": len(gt_anns) + 1, "image_id": img_id, "category_id": 1, "segmentation": rle,
                "area": float(area), "bbox": [float(v) for v in mask_utils.toBbox(rle)], "iscrowd": 0,
            })
        for rle, score in zip(_instance_rles(p, mask_utils), s):
            dt_anns.append({"image_id": img_id, "category_id": 1, "segmentation": rle, "score": float(score)})

    categories = [{"id": 1, "name": "object"}]
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = {"images": images, "annotations": gt_anns, "categories": categories}
        coco_gt.createIndex()
        if dt_anns:
            coco_dt = coco_gt.loadRes(dt_anns)
        else:  # loadRes rejects an empty list
            coco_dt = COCO()
            coco_dt.dataset = {"images": list(images), "annotations": [], "categories": categories}
            coco_dt.createIndex()
        ev = COCOeval(coco_gt, coco_dt, iouType="segm")
        ev.params.maxDets = sorted({1, min(10, int(max_dets)), int(max_dets)})  # last = max_dets
        ev.evaluate()
        ev.accumulate()
    return _summary(ev)


def _summary(ev):
    """AP, AP50, AP75, APs, APm, APl at the largest ``maxDets``, as COCOeval.summarize computes them.

    ``summarize`` itself reads its first figure (AP) at 100 detections whatever
    ``maxDets`` holds, so it is recomputed here from the accumulated precision
    array ``[T, R, K, A, M]`` at the last (largest) ``maxDets`` index.
    """
    precision = ev.eval["precision"][..., -1]  # (T, R, K, A)
    iou = np.asarray(ev.params.iouThrs)
    areas = list(ev.params.areaRngLbl)

    def mean(p):
        p = p[p > -1]
        return float(p.mean()) if p.size else float("nan")

    a_all = areas.index("all")
    return {
        "AP": mean(precision[..., a_all]),
        "AP50": mean(precision[np.isclose(iou, 0.5)][..., a_all]),
        "AP75": mean(precision[np.isclose(iou, 0.75)][..., a_all]),
        "APs": mean(precision[..., areas.index("small")]),
        "APm": mean(precision[..., areas.index("medium")]),
        "APl": mean(precision[..., areas.index("large")]),
    }
