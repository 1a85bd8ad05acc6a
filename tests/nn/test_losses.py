import numpy as np
import pytest
import torch

from harmonic_seg.guides import embedding_map
from harmonic_seg.guides import random_guides
from harmonic_seg.nn.losses import discriminative_loss, harmonic_loss, touching_pixels


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


def _touching_reference(lab, radius):
    """Loop over pixels: another instance within the chessboard radius."""
    out = np.zeros(lab.shape, bool)
    for b, y, x in zip(*np.nonzero(lab)):
        win = lab[b, max(y - radius, 0):y + radius + 1, max(x - radius, 0):x + radius + 1]
        out[b, y, x] = np.any((win > 0) & (win != lab[b, y, x]))
    return out


@pytest.mark.parametrize("radius", [1, 2, 3])
def test_touching_pixels_matches_a_loop(radius):
    rng = np.random.default_rng(radius)
    lab = rng.choice([0, 4, 9, 70000, 2**40], size=(2, 13, 11), p=[0.4, 0.2, 0.2, 0.1, 0.1])
    got = touching_pixels(torch.from_numpy(lab), radius).numpy()
    np.testing.assert_array_equal(got, _touching_reference(lab, radius))
    # a lone instance or a mask touches nothing
    assert not touching_pixels(torch.from_numpy((lab > 0) * 5)).any()
    assert not touching_pixels(torch.from_numpy(lab > 0)).any()


def test_boundary_weight_weighs_touching_pixels():
    lab = torch.zeros(1, 12, 12, dtype=torch.long)
    lab[0, 2:10, 1:6] = 1
    lab[0, 2:10, 6:11] = 2  # touches instance 1 along column 5|6
    tgt = torch.zeros(1, 2, 12, 12)
    logit = torch.zeros(1, 1, 12, 12)
    touching = touching_pixels(lab)[0]
    pred = tgt.clone()
    pred[0, :, touching] = 1.0  # wrong only where instances touch
    n_touch, n_fg = int(touching.sum()), int((lab > 0).sum())
    _, plain = harmonic_loss(pred, tgt, logit, lab, fg_weight=0)
    _, weighted = harmonic_loss(pred, tgt, logit, lab, fg_weight=0, boundary_weight=4.0)
    assert plain["l1"].item() == pytest.approx(n_touch / n_fg)
    assert weighted["l1"].item() == pytest.approx(5 * n_touch / (n_fg + 4 * n_touch))
    # a uniform error stays the same mean whatever the weight
    _, uniform = harmonic_loss(tgt + 0.5, tgt, logit, lab, fg_weight=0, boundary_weight=4.0)
    assert uniform["l1"].item() == pytest.approx(0.5)


def test_shape_mismatch():
    with pytest.raises(ValueError, match="same shape"):
        harmonic_loss(torch.zeros(1, 3, 4, 4), torch.zeros(1, 2, 4, 4), torch.zeros(1, 1, 4, 4),
                      torch.zeros(1, 4, 4))


# --- discriminative loss (De Brabandere et al. 2017) ---------------------------
def _discriminative_reference(emb, lab, ign, delta_v=0.5, delta_d=1.5, gamma=1e-3):
    """Plain loops over images and instances, as the paper writes the loss."""
    terms = []
    for b in range(emb.shape[0]):
        ids = [i for i in np.unique(lab[b]) if i > 0 and ((lab[b] == i) & ~ign[b]).any()]
        if not ids:
            continue
        mus, pull = [], 0.0
        for i in ids:
            x = emb[b][:, (lab[b] == i) & ~ign[b]].T
            mu = x.mean(0)
            mus.append(mu)
            pull += np.mean(np.maximum(np.linalg.norm(x - mu, axis=1) - delta_v, 0) ** 2)
        push = sum(max(2 * delta_d - np.linalg.norm(a - c), 0) ** 2
                   for j, a in enumerate(mus) for k, c in enumerate(mus) if j != k)
        c = len(ids)
        terms.append(pull / c + (push / (c * (c - 1)) if c > 1 else 0) + gamma * np.mean([np.linalg.norm(m) for m in mus]))
    return float(np.mean(terms))


def _shared_ids(lab):
    lab = lab.copy()
    lab[1][lab[1] == 3] = 1  # the same id in both images: still two instances
    return lab


def _with_empty_image(lab):
    return np.concatenate([lab, np.zeros_like(lab[:1])])  # an image without instances is left out


def _sparse_ids(lab):
    return lab * 1_000_003  # large, non-contiguous ids


@pytest.mark.parametrize("case", [None, _shared_ids, _with_empty_image, _sparse_ids])
def test_discriminative_matches_reference_loops(case):
    lab = _batch()[0].numpy()
    if case is not None:
        lab = case(lab)
    rng = np.random.default_rng(0)
    emb = rng.normal(scale=0.8, size=(lab.shape[0], 3, 20, 24))
    ign = np.zeros(lab.shape, bool)
    ign[0, 2:5, 3:6] = True  # part of instance 1 ignored
    logit = torch.zeros(lab.shape[0], 1, 20, 24)
    total, parts = discriminative_loss(torch.from_numpy(emb).float(), torch.from_numpy(lab), logit,
                                       torch.from_numpy(ign), fg_weight=0)
    expected = _discriminative_reference(emb, lab, ign)
    assert parts["l1"].item() == pytest.approx(expected, rel=1e-4)
    assert total.item() == pytest.approx(expected, rel=1e-4)
    # the foreground term is the BCE of harmonic_loss, over the same non-ignored pixels
    bce = harmonic_loss(torch.zeros(lab.shape[0], 3, 20, 24), torch.zeros(lab.shape[0], 3, 20, 24), logit,
                        torch.from_numpy(lab), torch.from_numpy(ign))[1]["fg"]
    total_fg, parts_fg = discriminative_loss(torch.from_numpy(emb).float(), torch.from_numpy(lab), logit,
                                             torch.from_numpy(ign), fg_weight=2.0)
    assert parts_fg["fg"].item() == pytest.approx(bce.item()) and bce.item() == pytest.approx(np.log(2))
    assert total_fg.item() == pytest.approx(expected + 2.0 * bce.item(), rel=1e-4)


def test_discriminative_fully_ignored_instance_is_not_an_instance():
    lab = _batch()[0].numpy()
    ign = lab == 2  # instance 2 entirely ignored: image 0 keeps one instance, so no push term
    emb = np.zeros((2, 3, 20, 24))
    _, parts = discriminative_loss(torch.from_numpy(emb).float(), torch.from_numpy(lab), torch.zeros(2, 1, 20, 24),
                                   torch.from_numpy(ign), gamma=0)
    assert parts["l1"].item() == 0.0


def test_discriminative_zero_when_instances_are_tight_and_apart():
    lab, _ = _batch()
    centres = {1: [3.0, 0, 0], 2: [0, 3.0, 0], 3: [0, 0, 3.0]}
    emb = torch.zeros(2, 3, 20, 24)
    for i, c in centres.items():
        emb.permute(0, 2, 3, 1)[lab == i] = torch.tensor(c)
    emb = emb + 0.1 * torch.randn(emb.shape, generator=torch.Generator().manual_seed(0))  # within delta_v
    logit = torch.where(lab[:, None] > 0, 50.0, -50.0)
    _, parts = discriminative_loss(emb, lab, logit, gamma=0)
    assert parts["l1"].item() == 0.0 and parts["fg"].item() < 1e-10
    # the same embedding for two instances of one image is penalised by the push term (2 * 1.5)^2
    same = emb.clone()
    same.permute(0, 2, 3, 1)[lab == 2] = torch.tensor([3.0, 0, 0])
    _, parts = discriminative_loss(same, lab, logit, gamma=0)
    assert parts["l1"].item() == pytest.approx(9.0 / 2, rel=0.05)  # image 0: 9 per ordered pair; image 1: 0


def test_discriminative_gradient_finite_and_empty_batch():
    lab, _ = _batch()
    emb = torch.zeros(2, 3, 20, 24, requires_grad=True)  # identical means: the norms are at 0
    logit = torch.zeros(2, 1, 20, 24, requires_grad=True)
    total, _ = discriminative_loss(emb, lab, logit)
    total.backward()
    assert torch.isfinite(emb.grad).all()
    near = (0.01 * torch.randn(2, 3, 20, 24, generator=torch.Generator().manual_seed(1))).requires_grad_()
    discriminative_loss(near, lab, logit)[0].backward()  # means close together are pushed apart
    assert torch.isfinite(near.grad).all() and near.grad.abs().sum() > 0
    empty = torch.zeros_like(lab)
    emb2 = torch.randn(2, 3, 20, 24, requires_grad=True)
    total, parts = discriminative_loss(emb2, empty, logit)
    total.backward()
    assert parts["l1"].item() == 0.0 and torch.isfinite(emb2.grad).all()


def test_discriminative_validates_margins_and_shapes():
    lab, _ = _batch()
    emb, logit = torch.zeros(2, 3, 20, 24), torch.zeros(2, 1, 20, 24)
    with pytest.raises(ValueError, match="delta_v"):
        discriminative_loss(emb, lab, logit, delta_v=2.0, delta_d=1.0)
    with pytest.raises(ValueError, match="labels must have shape"):
        discriminative_loss(emb, lab[:, :10], logit)
    with pytest.raises(TypeError, match="integer instance ids"):
        discriminative_loss(emb, lab > 0, logit)
