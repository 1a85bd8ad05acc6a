import numpy as np
import pytest
import torch

from harmonic_seg.embeddings import embedding_map
from harmonic_seg.guides import random_guides
from harmonic_seg.nn.losses import harmonic_loss


def _batch():
    lab = np.zeros((2, 20, 24), int)
    lab[0, 2:8, 3:10] = 1
    lab[0, 10:18, 5:20] = 2
    lab[1, 4:15, 4:15] = 3
    g = random_guides(5, (20, 24), random_state=0)
    tgt = torch.from_numpy(np.stack([embedding_map(l, g) for l in lab]))
    return torch.from_numpy(lab), tgt


def test_zero_on_perfect_prediction():
    lab, tgt = _batch()
    logit = torch.where(lab[:, None] > 0, 50.0, -50.0)
    total, parts = harmonic_loss(tgt.clone(), tgt, logit, lab)
    assert parts["l1"].item() == 0.0
    assert parts["fg"].item() < 1e-10
    assert total.item() < 1e-10


def test_l1_value_fg_only_and_full():
    lab, tgt = _batch()
    pred = tgt + 0.5
    logit = torch.zeros(2, 1, 20, 24)
    _, parts = harmonic_loss(pred, tgt, logit, lab, fg_weight=0)
    assert parts["l1"].item() == pytest.approx(0.5)
    assert parts["fg"].item() == 0.0
    # background error only counts with fg_only=False
    pred = tgt.clone()
    pred[:, :, 0, 0] = 1.0  # background pixel
    _, p1 = harmonic_loss(pred, tgt, logit, lab, fg_weight=0)
    _, p2 = harmonic_loss(pred, tgt, logit, lab, fg_only=False, fg_weight=0)
    assert p1["l1"].item() == 0.0
    assert p2["l1"].item() == pytest.approx(2 / (2 * 20 * 24))
    # BCE of a zero logit is log 2
    total, p3 = harmonic_loss(tgt, tgt, logit, lab, fg_weight=2.0)
    assert p3["fg"].item() == pytest.approx(np.log(2), rel=1e-6)
    assert total.item() == pytest.approx(2 * np.log(2), rel=1e-6)


def test_ignore_excludes_pixels():
    lab, tgt = _batch()
    pred = tgt.clone()
    pred[0, :, 2:8, 3:10] += 3.0  # wrong on instance 1
    logit = torch.where(lab[:, None] > 0, 50.0, -50.0)
    logit[1, 0, 0, 0] = 50.0  # wrong fg on a background pixel
    ignore = torch.zeros(2, 20, 24, dtype=torch.bool)
    _, parts = harmonic_loss(pred, tgt, logit, lab, ignore=ignore)
    assert parts["l1"].item() > 0 and parts["fg"].item() > 1e-3
    ignore[0, 2:8, 3:10] = True
    ignore[1, 0, 0] = True
    total, parts = harmonic_loss(pred, tgt, logit, lab, ignore=ignore)
    assert parts["l1"].item() == 0.0 and parts["fg"].item() < 1e-10


def test_gradient_and_empty_foreground():
    lab = torch.zeros(1, 8, 8, dtype=torch.long)
    pred = torch.randn(1, 3, 8, 8, requires_grad=True)
    logit = torch.randn(1, 1, 8, 8, requires_grad=True)
    total, parts = harmonic_loss(pred, torch.zeros(1, 3, 8, 8), logit, lab)
    assert parts["l1"].item() == 0.0
    total.backward()
    assert logit.grad is not None and torch.isfinite(total)
    # all pixels ignored: finite zero loss
    total, parts = harmonic_loss(pred, torch.zeros(1, 3, 8, 8), logit, lab, ignore=torch.ones(1, 8, 8, dtype=bool))
    assert total.item() == 0.0


def test_shape_mismatch():
    with pytest.raises(ValueError, match="same shape"):
        harmonic_loss(torch.zeros(1, 3, 4, 4), torch.zeros(1, 2, 4, 4), torch.zeros(1, 1, 4, 4),
                      torch.zeros(1, 4, 4))
