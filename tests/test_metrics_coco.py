"""Tests of harmonic_seg.metrics.coco_average_precision (pycocotools)."""

import contextlib
import io
import math

import numpy as np
import pytest

from harmonic_seg.metrics import coco_average_precision

# COCO interpolates precision at 101 recall points 0, 0.01, ..., 1. A ranking
# whose precision is p up to recall r (and nothing above) gives
# AP = p * (floor(100 r) + 1) / 101.
HALF = 51 / 101


def _blobs(shape, boxes, ids=None):
    lab = np.zeros(shape, dtype=np.int32)
    for k, (r, c, h, w) in enumerate(boxes):
        lab[r:r + h, c:c + w] = k + 1 if ids is None else ids[k]
    return lab


BOXES = [(1, 1, 4, 4), (1, 8, 4, 4), (8, 1, 4, 4), (8, 8, 4, 4)]  # all "small" (< 32**2 px)
GT = _blobs((14, 14), BOXES)


def _is_nan(x):
    return isinstance(x, float) and math.isnan(x)


def test_perfect_prediction():
    ap = coco_average_precision([GT], [GT * 3])  # ids differ: irrelevant
    assert set(ap) == {"AP", "AP50", "AP75", "APs", "APm", "APl"}
    assert ap["AP"] == ap["AP50"] == ap["AP75"] == ap["APs"] == 1.0
    # no medium or large ground truth: pycocotools reports -1 -> NaN
    assert _is_nan(ap["APm"]) and _is_nan(ap["APl"])


def test_large_instances_fill_size_buckets():
    gt = _blobs((150, 150), [(0, 0, 40, 40), (45, 45, 100, 100)])  # 1600 px medium, 10000 px large
    ap = coco_average_precision([gt], [gt])
    assert ap["APm"] == pytest.approx(1.0) and ap["APl"] == pytest.approx(1.0)
    assert _is_nan(ap["APs"])


def test_missing_half_of_the_instances():
    pred = _blobs((14, 14), BOXES[:2])
    ap = coco_average_precision([GT], [pred])
    # precision 1 up to recall 0.5 at every IoU threshold
    assert ap["AP50"] == pytest.approx(HALF)
    assert ap["AP75"] == pytest.approx(HALF)
    assert ap["AP"] == pytest.approx(HALF)


def test_scores_change_the_ranking():
    gt = _blobs((14, 14), BOXES[:2])
    pred = _blobs((14, 14), [BOXES[0], BOXES[3]], ids=[4, 9])  # id 4 correct, id 9 false positive
    good = coco_average_precision([gt], [pred], scores=[[0.9, 0.1]])
    bad = coco_average_precision([gt], [pred], scores=[np.array([0.1, 0.9])])
    # TP first: precision 1 up to recall 0.5; FP first: precision 0.5 up to recall 0.5
    assert good["AP50"] == pytest.approx(HALF)
    assert bad["AP50"] == pytest.approx(0.5 * HALF)
    # None per image or for the list means score 1.0: stable order, id 4 first
    assert coco_average_precision([gt], [pred], scores=[None])["AP50"] == pytest.approx(HALF)


def test_overlapping_ground_truth_and_mask_stack_equivalence():
    # P = rows 0-1, Q = cols 0-1 (overlapping); prediction 1 = P, 2 = lower part of Q.
    p = np.zeros((4, 4), bool)
    p[:2] = True
    q = np.zeros((4, 4), bool)
    q[:, :2] = True
    pred = np.array([[1, 1, 1, 1], [1, 1, 1, 1], [2, 2, 0, 0], [2, 2, 0, 0]])
    # IoU(P, 1) = 1, IoU(Q, 1) = 1/3, IoU(Q, 2) = 0.5. COCO's greedy matching:
    # 1 -> P (IoU 1), 2 -> Q (IoU 0.5): both TP at IoU 0.5; at 0.75 only 1 is a
    # TP and ranked first -> precision 1 up to recall 0.5.
    ap = coco_average_precision([[p, q]], [pred])
    assert ap["AP50"] == pytest.approx(1.0)
    assert ap["AP75"] == pytest.approx(HALF)
    # the same ground truth as a label map where it does not overlap
    ap_lab = coco_average_precision([GT], [GT])
    ap_stack = coco_average_precision([np.stack([GT == k for k in range(1, 5)])], [GT])
    assert ap_lab.keys() == ap_stack.keys()
    for key in ap_lab:
        assert ap_lab[key] == ap_stack[key] or (_is_nan(ap_lab[key]) and _is_nan(ap_stack[key]))


def test_empty_prediction_and_empty_ground_truth():
    ap = coco_average_precision([GT], [np.zeros_like(GT)])
    assert ap["AP"] == ap["AP50"] == 0.0
    assert _is_nan(ap["APm"])
    ap = coco_average_precision([np.zeros_like(GT)], [GT])
    assert all(_is_nan(v) for v in ap.values())


def test_max_dets_limits_the_number_of_evaluated_instances():
    boxes = [(3 * r, 3 * c, 2, 2) for r in range(10) for c in range(15)]  # 150 instances
    gt = _blobs((30, 45), boxes)
    assert coco_average_precision([gt], [gt], max_dets=200)["AP50"] == 1.0
    capped = coco_average_precision([gt], [gt], max_dets=100)["AP50"]  # only 100 of 150 evaluated
    assert capped == pytest.approx(67 / 101)  # recall 2/3, precision 1


def test_default_counts_every_predicted_instance():
    # The default used to be pycocotools' 100 detections: a perfect prediction of 150 scored 0.663.
    boxes = [(3 * r, 3 * c, 2, 2) for r in range(10) for c in range(15)]  # 150 instances
    gt = _blobs((30, 45), boxes)
    small = _blobs((30, 45), boxes[:3])
    ap = coco_average_precision([gt, small], [gt, small])
    assert ap["AP"] == ap["AP50"] == ap["AP75"] == 1.0
    capped = coco_average_precision([gt], [gt], max_dets=100)
    assert capped["AP"] == capped["AP50"] == pytest.approx(67 / 101)
    # an image with no prediction at all: 1 detection at least, and 0.0 rather than an error
    assert coco_average_precision([gt], [np.zeros_like(gt)])["AP"] == 0.0


def test_cli_evaluate_counts_every_instance(tmp_path, capsys):
    import json

    from harmonic_seg.cli import main
    from harmonic_seg.io import write_label_map

    boxes = [(3 * r, 3 * c, 2, 2) for r in range(10) for c in range(15)]
    gt = _blobs((30, 45), boxes)
    for sub in ("pred", "gt"):
        (tmp_path / sub).mkdir()
        write_label_map(tmp_path / sub / "a.tif", gt)
    assert main(["evaluate", str(tmp_path / "pred"), str(tmp_path / "gt"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    (row,) = out.values()
    assert row["COCO AP"] == 1.0


def test_matches_direct_pycocotools(rng):
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    shape = (40, 50)
    ys_true, ys_pred, scores = [], [], []
    for _ in range(3):
        gt = _blobs(shape, [(rng.integers(0, 30), rng.integers(0, 40), rng.integers(3, 10),
                             rng.integers(3, 10)) for _ in range(6)])
        pred = gt.copy()
        pred[rng.random(shape) < 0.25] = 0  # damage the masks
        pred = np.roll(pred, rng.integers(-2, 3), axis=1)
        ys_true.append(gt)
        ys_pred.append(pred)
        scores.append(rng.random(len(np.unique(pred)) - 1))
    ours = coco_average_precision(ys_true, ys_pred, scores=scores)

    images, gts, dts = [], [], []
    for i, (gt, pred, s) in enumerate(zip(ys_true, ys_pred, scores)):
        images.append({"id": i + 7, "height": shape[0], "width": shape[1]})
        for lab, out in ((gt, gts), (pred, dts)):
            ids = [k for k in np.unique(lab) if k]
            rles = mask_utils.encode(np.asfortranarray(np.stack([lab == k for k in ids], -1).astype(np.uint8)))
            for j, rle in enumerate(rles):
                ann = {"image_id": i + 7, "category_id": 3, "segmentation": rle}
                if out is gts:
                    ann.update(id=len(gts) + 1, iscrowd=0, area=float(mask_utils.area(rle)))
                else:
                    ann.update(score=float(s[j]))
                out.append(ann)
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = {"images": images, "annotations": gts, "categories": [{"id": 3}]}
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(dts), iouType="segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert 0.05 < ours["AP50"] < 0.99  # a non-trivial case
    for key, ref in zip(["AP", "AP50", "AP75", "APs", "APm", "APl"], ev.stats[:6]):
        if ref < 0:
            assert _is_nan(ours[key])
        else:
            assert ours[key] == pytest.approx(ref)


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"scores\[0\].*expected 4 values, got 3"):
        coco_average_precision([GT], [GT], scores=[[1, 1, 1]])
    with pytest.raises(ValueError, match="scores must have one entry per image"):
        coco_average_precision([GT], [GT], scores=[[1] * 4, [1] * 4])
    with pytest.raises(TypeError, match="scores"):
        coco_average_precision([GT], [GT], scores=np.ones(4))
    with pytest.raises(ValueError, match=r"scores\[0\].*NaN"):
        coco_average_precision([GT], [GT], scores=[[1, np.nan, 1, 1]])
    with pytest.raises(ValueError, match="max_dets must be None .* or a positive integer"):
        coco_average_precision([GT], [GT], max_dets=0)
    with pytest.raises(TypeError, match="max_dets"):
        coco_average_precision([GT], [GT], max_dets=10.5)
    with pytest.raises(ValueError, match="ys_true and ys_pred must have the same length"):
        coco_average_precision([GT, GT], [GT])
    with pytest.raises(TypeError, match=r"ys_pred\[0\]"):
        coco_average_precision([GT], [GT.astype(float)])
    with pytest.raises(ValueError, match=r"ys_pred\[0\].*\(2, 14, 14\)"):
        coco_average_precision([GT], [np.stack([GT, GT])])


def test_max_dets_other_than_100_gives_ap_not_nan():
    from harmonic_seg.metrics import coco_average_precision

    lab = np.zeros((64, 64), np.int32)
    for k in range(12):
        y, x = divmod(k, 4)
        lab[y * 16 + 2 : y * 16 + 12, x * 16 + 2 : x * 16 + 12] = k + 1
    for md in (5, 50, 100, 300):
        r = coco_average_precision([lab], [lab], max_dets=md)
        expected = 1.0 if md >= 12 else pytest.approx(5 / 12, abs=0.02)
        assert r["AP"] == expected and r["AP50"] == expected, (md, r)
