"""Tests of harmonic_seg.clustering.cluster_embeddings: instance label maps from embeddings by mean-shift clustering."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sklearn.metrics import adjusted_rand_score as ari  # noqa: E402

from harmonic_seg.clustering import cluster_embeddings  # noqa: E402
from harmonic_seg.postprocess import instance_scores, split_into_components  # noqa: E402

from ._scenes import EPS  # noqa: E402


@pytest.mark.parametrize("seeds", ["bin", "bin_mean"])
def test_cluster_embeddings_recovers_instances(scene, seeds):
    labels, emb = scene
    fg = labels > 0
    pred, scores = cluster_embeddings(emb, fg, EPS, seeds=seeds)
    assert pred.dtype == np.int32 and pred.shape == labels.shape
    assert (pred[~fg] == 0).all()
    assert ari(labels[fg], pred[fg]) >= 0.99
    assert scores.shape == (pred.max(),)
    assert np.all((scores >= 0) & (scores <= 1)) and np.median(scores) > 0.9
    np.testing.assert_array_equal(np.unique(pred), np.arange(pred.max() + 1))


def test_cluster_embeddings_torch_and_fg_prob(scene):
    labels, emb = scene
    fg = labels > 0
    pred, scores = cluster_embeddings(torch.from_numpy(emb), torch.from_numpy(fg), EPS)
    pred2, scores2 = cluster_embeddings(emb, fg, EPS, fg_prob=np.where(fg, 0.5, 0.0))
    np.testing.assert_array_equal(pred, pred2)
    np.testing.assert_allclose(scores2, 0.5 * scores)


def test_cluster_embeddings_exact_mode_follows_mean_shift(scene):
    from harmonic_seg.clustering.meanshift import mean_shift

    labels, emb = scene
    fg = labels > 0
    kw = dict(seeds="bin", max_points=None, coarse_to_fine=False)
    pred, _ = cluster_embeddings(emb, fg, EPS, min_size=0, recovery="mean_shift", **kw)
    _, ref = mean_shift(emb[:, fg].T, EPS, **kw)
    assert ari(ref, pred[fg]) == 1.0


def test_cluster_embeddings_split_components():
    # one embedding value on two separate blobs: one cluster, two components
    emb = np.zeros((4, 20, 20), dtype=np.float32)
    fg = np.zeros((20, 20), dtype=bool)
    fg[2:8, 2:8] = fg[12:18, 12:18] = True
    emb[:, fg] = 0.7
    pred, _ = cluster_embeddings(emb, fg, EPS, recovery="mean_shift")
    assert pred.max() == 1
    pred, scores = cluster_embeddings(emb, fg, EPS, recovery="mean_shift", split_components=True)
    assert pred.max() == 2 and pred[3, 3] != pred[15, 15]
    np.testing.assert_allclose(scores, [1.0, 1.0])
    # recovery="split" never joins two components
    np.testing.assert_array_equal(cluster_embeddings(emb, fg, EPS)[0], pred)


def test_cluster_embeddings_core_threshold():
    # two confident instances and a band of uncertain pixels whose embedding is
    # a third, distinct value (as on a border blending two neighbours)
    emb = np.zeros((2, 20, 30), dtype=np.float32)
    fg = np.zeros((20, 30), dtype=bool)
    fg[2:18, 2:12] = fg[2:18, 16:28] = fg[2:18, 12:16] = True
    emb[0, :, 16:28] = 1.0
    emb[:, :, 12:16] = [[[0.4]], [[1.0]]]
    prob = np.where(fg, 0.99, 0.0)
    prob[:, 12:16] = 0.6
    pred, _ = cluster_embeddings(emb, fg, 0.3, fg_prob=prob)
    assert pred.max() == 3
    pred, scores = cluster_embeddings(emb, fg, 0.3, fg_prob=prob, core_threshold=0.9)
    assert pred.max() == 2 and scores.shape == (2,)
    assert (pred[fg] > 0).all() and pred[5, 5] != pred[5, 20]
    # the band goes to the nearer mode (0, 0), that of the left instance
    assert (pred[2:18, 12:16] == pred[5, 5]).all()
    # no pixel reaches the threshold: every foreground pixel searches, as without it
    same, _ = cluster_embeddings(emb, fg, 0.3, fg_prob=prob * 0.5, core_threshold=0.9)
    ref, _ = cluster_embeddings(emb, fg, 0.3, fg_prob=prob * 0.5)
    np.testing.assert_array_equal(same, ref)


def test_cluster_embeddings_core_fraction(monkeypatch):
    # two instances joined by a ramp of 8 columns whose embedding blends both and leaves the segment between
    # them (as a blurred or upsampled prediction does on a border): its pixels make modes of their own
    emb = np.zeros((2, 20, 40), dtype=np.float32)
    fg = np.zeros((20, 40), dtype=bool)
    fg[2:18, 2:38] = True
    emb[0, :, 24:] = 1.0
    t = (np.arange(16, 24) - 15.5) / 8.0
    emb[0, :, 16:24] = t
    emb[1, :, 16:24] = 0.6 * np.sin(np.pi * t)
    pred, _ = cluster_embeddings(emb, fg, 0.3)
    assert pred.max() >= 3
    pred, scores = cluster_embeddings(emb, fg, 0.3, core_fraction=0.7)
    assert pred.max() == 2 and scores.shape == (2,) and (pred[fg] > 0).all()
    # every ramp pixel goes to the nearer instance: the border falls in the middle of the ramp
    np.testing.assert_array_equal(pred[5, 2:20], pred[5, 2])
    np.testing.assert_array_equal(pred[5, 20:38], pred[5, 30])
    assert pred[5, 2] != pred[5, 30]
    # 1 selects every pixel, as None does; with core_threshold, a pixel must pass both
    np.testing.assert_array_equal(cluster_embeddings(emb, fg, 0.3, core_fraction=1.0)[0],
                                  cluster_embeddings(emb, fg, 0.3)[0])
    # with core_threshold, a pixel seeks if it passes both; if none passes both, the probability core alone
    import harmonic_seg.clustering._embedding as cluster_module

    sizes = []
    original = cluster_module._mean_shift
    monkeypatch.setattr(cluster_module, "_mean_shift", lambda pts, *a, **k: sizes.append(len(pts)) or original(pts, *a, **k))
    prob = np.where(fg, 0.99, 0.0)
    prob[2:10] = 0.5  # the top half of every instance fails the threshold
    cluster_embeddings(emb, fg, 0.3, fg_prob=prob, core_threshold=0.9)  # its core keeps the ramp's lower half
    for kwargs in (dict(core_fraction=0.7), dict(core_threshold=0.9, core_fraction=0.7)):
        both, _ = cluster_embeddings(emb, fg, 0.3, fg_prob=prob, **kwargs)
        np.testing.assert_array_equal(both, pred)
    prob_core, grad_core, intersection = sizes
    assert intersection < min(prob_core, grad_core) and intersection > 0
    assert intersection == round(prob_core * grad_core / fg.sum())  # the two selections are independent here
    sizes.clear()
    cluster_embeddings(emb, fg, 0.3, fg_prob=np.where(fg, 0.5, 0.0), core_threshold=0.9, core_fraction=0.7)
    assert sizes == [grad_core]  # no pixel reaches the threshold: the gradient core alone
    # a single row or pixel: the gradient along the other axis, or none
    row = cluster_embeddings(emb[:, 5:6], fg[5:6], 0.3, core_fraction=0.7, min_size=1)[0]
    np.testing.assert_array_equal(row, pred[5:6])
    one = cluster_embeddings(emb[:, 5:6, 5:6], None, 0.3, core_fraction=0.5, min_size=1)[0]
    assert one.tolist() == [[1]]
    # a constant embedding: every gradient ties, so every pixel seeks; numpy scalars are accepted
    flat = np.ones((2, 6, 6), dtype=np.float32)
    np.testing.assert_array_equal(cluster_embeddings(flat, None, 0.3, core_fraction=np.float32(0.3))[0], 1)


def test_low_gradient_ignores_the_background():
    # a network trained on foreground pixels predicts anything outside the foreground; the change at an
    # edge pixel is measured to its foreground neighbours only, so the edge ranks as the interior does
    from harmonic_seg.clustering._embedding import _low_gradient

    rng = np.random.default_rng(0)
    emb = rng.normal(0, 5, (2, 20, 40)).astype(np.float32)
    fg = np.zeros((20, 40), dtype=bool)
    fg[2:18, 2:38] = True
    inside = np.zeros((2, 20, 40), dtype=np.float32)
    inside[0, :, 24:] = 1.0
    t = (np.arange(16, 24) - 15.5) / 8.0
    inside[0, :, 16:24] = t
    emb[:, fg] = inside[:, fg]
    fg_idx = torch.from_numpy(np.flatnonzero(fg))
    sel = np.zeros(fg.size, dtype=bool)
    sel[fg_idx.numpy()] = _low_gradient(torch.from_numpy(emb), fg_idx, 0.7)
    sel = sel.reshape(fg.shape)
    assert sel[2:18, [2, 3, 36, 37]].all() and sel[[2, 17], 2:15].all()  # the edges of both instances seek
    assert not sel[:, 16:24].any()  # the ramp between them does not
    # an isolated foreground pixel has no neighbour to differ from: it does not seek
    fg[0, 0] = True
    fg_idx = torch.from_numpy(np.flatnonzero(fg))
    assert not _low_gradient(torch.from_numpy(emb), fg_idx, 0.7)[0]
    assert not _low_gradient(torch.from_numpy(emb), fg_idx, 1.0)[0]  # even when the fraction asks for every pixel
    # a row whose foreground pixels [0, 1] touch and [4], [6] stand alone: only the touching ones seek
    row = torch.arange(7, dtype=torch.float32).reshape(1, 1, 7)
    assert _low_gradient(row, torch.tensor([0, 1, 4, 6]), 0.8).tolist() == [True, True, False, False]
    assert _low_gradient(row, torch.tensor([0, 4, 6]), 0.5).all()  # none has a neighbour: all seek

def test_cluster_embeddings_merge_small():
    # two instances; a 3x3 patch of the left one has an outlying embedding (a fragment the clustering cuts off)
    rng = np.random.default_rng(0)
    emb = rng.normal(0, 0.01, (2, 20, 20)).astype(np.float32)
    emb[0, :, 10:] += 1.0
    emb[:, 0:3, 0:3] = 5.0
    fg = np.ones((20, 20), dtype=bool)
    removed, _ = cluster_embeddings(emb, fg, 0.5, min_size=20, recovery="mean_shift")
    assert (removed == 0).sum() == 9
    merged, scores = cluster_embeddings(emb, fg, 0.5, min_size=20, merge_small=True, recovery="mean_shift")
    assert merged.max() == 2 and scores.shape == (2,) and (merged > 0).all()
    assert (merged[0:3, 0:3] == merged[10, 5]).all() and merged[10, 5] != merged[10, 15]
    # recovery="split" gives a small region of a component to a touching instance whatever merge_small
    assert _same_partition(cluster_embeddings(emb, fg, 0.5, min_size=20)[0], merged)


def test_cluster_embeddings_edge_cases():
    emb = np.random.default_rng(0).normal(0, 0.01, (12, 16, 16)).astype(np.float32)
    # empty foreground
    pred, scores = cluster_embeddings(emb, np.zeros((16, 16), bool), EPS)
    assert pred.shape == (16, 16) and pred.dtype == np.int32 and not pred.any() and scores.shape == (0,)
    # a single foreground pixel: removed by min_size, kept with min_size=1
    one = np.zeros((16, 16), bool)
    one[4, 5] = True
    pred, scores = cluster_embeddings(emb, one, EPS)
    assert not pred.any() and scores.shape == (0,)
    pred, scores = cluster_embeddings(emb, one, EPS, min_size=1)
    assert pred[4, 5] == 1 and pred.sum() == 1 and scores.shape == (1,)
    # all pixels one cluster (foreground=None: every pixel)
    pred, scores = cluster_embeddings(emb, None, EPS)
    assert (pred == 1).all() and scores.shape == (1,) and scores[0] == pytest.approx(1.0)


def test_cluster_embeddings_errors():
    emb = np.zeros((12, 8, 8), dtype=np.float32)
    bad = emb.copy()
    bad[0, 1, 1] = np.nan
    with pytest.raises(ValueError, match="embedding"):
        cluster_embeddings(bad, None, EPS)
    with pytest.raises(ValueError, match="bandwidth"):
        cluster_embeddings(emb, None, 0.0)
    with pytest.raises(ValueError, match="bandwidth"):
        cluster_embeddings(emb, None, -0.5)
    with pytest.raises(ValueError, match="foreground"):
        cluster_embeddings(emb, np.ones((8, 9), bool), EPS)
    with pytest.raises(ValueError, match="fg_prob"):
        cluster_embeddings(emb, None, EPS, fg_prob=np.ones((9, 8)))
    with pytest.raises(ValueError, match="embedding"):
        cluster_embeddings(np.zeros((8, 8)), None, EPS)
    with pytest.raises(ValueError, match="core_threshold needs fg_prob"):
        cluster_embeddings(emb, None, EPS, core_threshold=0.9)
    with pytest.raises(ValueError, match="core_threshold must be a probability"):
        cluster_embeddings(emb, None, EPS, fg_prob=np.ones((8, 8)), core_threshold=1.5)
    for bad in (0, 0.0, 1.5, -0.2, True, "0.5"):
        with pytest.raises(ValueError, match=r"core_fraction must be a fraction in \(0, 1\] or None"):
            cluster_embeddings(emb, None, EPS, core_fraction=bad)


def _two_nuclei_and_a_touching_pair(seed=0):
    """Truth and embedding: two separate round nuclei whose embedding has scattered outliers (a fifth of
    their pixels, far from the nucleus' value: noise that fragments a mean shift), and a touching pair of
    rectangles whose embeddings lie 1.0 apart (twice the margin 0.5)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:48, :64]
    truth = np.zeros((48, 64), np.int32)
    truth[(yy - 12) ** 2 + (xx - 12) ** 2 <= 81] = 1
    truth[(yy - 12) ** 2 + (xx - 40) ** 2 <= 81] = 2
    truth[30:44, 6:30] = 3
    truth[30:44, 30:54] = 4
    emb = np.zeros((2, 48, 64), np.float32)
    emb[0][truth == 2] = 3.0  # far-apart nuclei: any values
    emb[1][truth == 3] = 6.0
    emb[1][truth == 4] = 7.0
    emb += rng.normal(0, 0.03, emb.shape).astype(np.float32)
    outlier = np.isin(truth, [1, 2]) & (rng.random(truth.shape) < 0.2)
    emb[:, outlier] = rng.choice([-2.0, 1.5], size=(1, int(outlier.sum()))).astype(np.float32)
    return truth, emb


def _same_partition(a, b):
    return ari(a.ravel(), b.ravel()) == 1.0 and (a > 0).sum() == (b > 0).sum()


def test_split_recovery_keeps_noisy_separate_nuclei_whole():
    # the floor: the connected components of the foreground; scattered outliers make modes of their own
    # (a mean shift of all foreground pixels keeps them as instances, cut across the nuclei), but their
    # pieces are single pixels, far below a meaningful share: every component without two seeds stays whole
    truth, emb = _two_nuclei_and_a_touching_pair()
    fg = np.isin(truth, [1, 2])
    floor = split_into_components(fg.astype(np.int32))
    old, _ = cluster_embeddings(emb, fg, EPS, recovery="mean_shift")
    assert not _same_partition(old, floor)  # the fragments of the old recovery
    pred, scores = cluster_embeddings(emb, fg, EPS)
    np.testing.assert_array_equal(pred, floor)  # exactly the connected components, numbered the same way
    assert scores.shape == (2,)
    prob = np.where(fg, 0.8, 0.0)
    comps, comp_scores = cluster_embeddings(emb, fg, EPS, recovery="components", fg_prob=prob)
    np.testing.assert_array_equal(comps, floor)
    # scores: mean probability times the share of pixels near the instance's mean embedding
    np.testing.assert_allclose(comp_scores, instance_scores(floor, emb, EPS, fg_prob=prob), rtol=1e-6)
    assert comp_scores.max() < 0.8  # the outliers are far from the mean


def test_split_recovery_splits_touching_instances_apart_by_more_than_the_margin():
    truth, emb = _two_nuclei_and_a_touching_pair()
    fg = truth > 0
    pred, scores = cluster_embeddings(emb, fg, EPS)
    assert _same_partition(pred, truth) and pred.max() == 4 and scores.shape == (4,)
    old, _ = cluster_embeddings(emb, fg, EPS, recovery="mean_shift", split_components=True)
    assert not _same_partition(old, truth)  # the outliers' modes cut the nuclei
    # closer than the margin (0.3 < 0.5): one mode, the pair stays one instance
    close = emb.copy()
    close[1][truth == 4] = close[1][truth == 3].mean() + 0.3
    pred, _ = cluster_embeddings(close, truth >= 3, EPS)
    assert pred.max() == 1


def test_split_recovery_components_without_a_mode_stay_whole():
    # a core selection that leaves one component without any pixel in the mode search: it gets a mode of
    # its own (its pixels are never given to another component's mode)
    truth, emb = _two_nuclei_and_a_touching_pair()
    fg = truth > 0
    prob = np.where(fg, 0.99, 0.0)
    prob[truth == 1] = 0.6
    pred, scores = cluster_embeddings(emb, fg, EPS, fg_prob=prob, core_threshold=0.9)
    assert _same_partition(pred, truth)
    np.testing.assert_array_equal(pred > 0, fg)


def test_split_recovery_is_one_mean_shift_of_moved_components(monkeypatch):
    import harmonic_seg.clustering._embedding as cluster_module

    truth, emb = _two_nuclei_and_a_touching_pair()
    calls = []
    original = cluster_module._mean_shift

    def spy(pts, *a, **k):
        calls.append(pts.shape)
        return original(pts, *a, **k)

    monkeypatch.setattr(cluster_module, "_mean_shift", spy)
    cluster_embeddings(emb, truth > 0, EPS)
    assert calls == [((truth > 0).sum(), 2)]  # one search, no extra dimension
    calls.clear()
    cluster_embeddings(emb, truth > 0, EPS, recovery="components")
    assert calls == []
    # two components whose embeddings coincide stay apart, with every pixel in its own component's mode
    same = np.zeros((2, 20, 41), np.float32)
    fg = np.zeros((20, 41), bool)
    fg[2:18, 2:20] = fg[2:18, 21:39] = True
    same[0, :, 10:20] = same[0, :, 30:39] = 1.0  # each component: two halves 1.0 apart
    pred, _ = cluster_embeddings(same, fg, EPS)
    assert pred.max() == 4 and len(np.unique(pred[2:18, 2:20])) == 2 and len(np.unique(pred[2:18, 21:39])) == 2
    assert len(calls) == 1


def test_component_offsets_keep_components_apart():
    from harmonic_seg.clustering._embedding import _ComponentOffsets

    rng = np.random.default_rng(0)
    n_comps = 700
    comp = rng.integers(0, n_comps, 20000)
    for n_dims in (12, 3):  # 3: too few dimensions for base-6 digits, a larger base
        pts = rng.normal(0, 1, (20000, n_dims)).astype(np.float32)
        moved = _ComponentOffsets(pts, n_comps, 0.5, "euclidean")
        assert moved.base ** moved.k >= n_comps and moved.k <= n_dims
        out = moved.move(pts, comp)
        if n_dims == 12:
            assert np.abs(out).max() <= 150 * 0.5 + np.abs(pts).max()  # float32 distances stay exact
        assert (moved.component_of(out) == comp).all()  # every point (and mode, in its hull) decodes to its own
        a, b = out[comp == 3], out[comp == 4]
        gap = np.abs(a[:, None, :] - b[None, :, :]).max(-1).min()
        span = pts.max(0) - pts.min(0)
        assert gap >= np.sqrt((span**2).sum()) + 2 * 0.5 - 1e-4  # farther than any two embeddings plus a window


def test_recovery_errors():
    emb = np.zeros((2, 8, 8), dtype=np.float32)
    with pytest.raises(ValueError, match="recovery must be one of"):
        cluster_embeddings(emb, None, EPS, recovery="watershed")
    for bad in (-0.1, 1.5, True, "0.1"):
        with pytest.raises(ValueError, match=r"min_share must be a fraction in \[0, 1\]"):
            cluster_embeddings(emb, None, EPS, min_share=bad)


# ------------------------------------------------------------------ CUDA
@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
def test_cuda_cluster_embeddings_matches_ground_truth(scene):
    labels, emb = scene
    pred, scores = cluster_embeddings(torch.from_numpy(emb).cuda(), labels > 0, EPS)
    assert ari(labels[labels > 0], pred[labels > 0]) >= 0.99


@pytest.mark.parametrize("seeds", ["bin_mean", "bin"])
def test_above_max_points_each_component_is_searched_on_its_own(scene, seeds):
    """With more foreground pixels than ``max_points``, a component's instances are the same in the whole
    image as in a crop that holds that component alone (and every instance is found)."""
    from skimage.measure import label as sk_label

    labels, emb = scene
    fg = labels > 0
    comps = sk_label(fg, connectivity=1)
    assert comps.max() >= 3
    kw = dict(max_points=200, core_fraction=0.7, min_size=5, seeds=seeds)
    assert fg.sum() > 200
    whole, _ = cluster_embeddings(emb, fg, EPS, **kw)
    assert ari(labels[fg], whole[fg]) >= 0.99
    for c in range(1, comps.max() + 1):
        ys, xs = np.nonzero(comps == c)
        box = np.s_[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1]
        alone = comps[box] == c
        crop, _ = cluster_embeddings(emb[(slice(None),) + box], alone, EPS, **kw)
        assert ari(whole[box][alone], crop[alone]) == 1.0
