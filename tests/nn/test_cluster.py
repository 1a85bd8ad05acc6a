"""Tests of harmonic_seg.nn.cluster: instance label maps from embeddings by mean-shift clustering."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sklearn.metrics import adjusted_rand_score as ari  # noqa: E402
from test_meanshift import EPS, make_scene  # noqa: E402  (tests/nn is on sys.path: no __init__.py)

from harmonic_seg.nn.cluster import cluster_embeddings  # noqa: E402


@pytest.fixture(scope="module")
def scene():
    return make_scene()


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
    from harmonic_seg.nn.meanshift import mean_shift

    labels, emb = scene
    fg = labels > 0
    kw = dict(seeds="bin", max_points=None, coarse_to_fine=False)
    pred, _ = cluster_embeddings(emb, fg, EPS, min_size=0, **kw)
    _, ref = mean_shift(emb[:, fg].T, EPS, **kw)
    assert ari(ref, pred[fg]) == 1.0


def test_cluster_embeddings_split_components():
    # one embedding value on two separate blobs: one cluster, two components
    emb = np.zeros((4, 20, 20), dtype=np.float32)
    fg = np.zeros((20, 20), dtype=bool)
    fg[2:8, 2:8] = fg[12:18, 12:18] = True
    emb[:, fg] = 0.7
    pred, _ = cluster_embeddings(emb, fg, EPS)
    assert pred.max() == 1
    pred, scores = cluster_embeddings(emb, fg, EPS, split_components=True)
    assert pred.max() == 2 and pred[3, 3] != pred[15, 15]
    np.testing.assert_allclose(scores, [1.0, 1.0])


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
    import harmonic_seg.nn.cluster as cluster_module

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
    from harmonic_seg.nn.cluster import _low_gradient

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
    removed, _ = cluster_embeddings(emb, fg, 0.5, min_size=20)
    assert (removed == 0).sum() == 9
    merged, scores = cluster_embeddings(emb, fg, 0.5, min_size=20, merge_small=True)
    assert merged.max() == 2 and scores.shape == (2,) and (merged > 0).all()
    assert (merged[0:3, 0:3] == merged[10, 5]).all() and merged[10, 5] != merged[10, 15]


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


def test_old_import_path_still_works():
    from harmonic_seg.nn import meanshift

    assert meanshift.cluster_embeddings is cluster_embeddings
    from harmonic_seg.nn.meanshift import cluster_embeddings as old

    assert old is cluster_embeddings


# ------------------------------------------------------------------ CUDA
@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
def test_cuda_cluster_embeddings_matches_ground_truth(scene):
    labels, emb = scene
    pred, scores = cluster_embeddings(torch.from_numpy(emb).cuda(), labels > 0, EPS)
    assert ari(labels[labels > 0], pred[labels > 0]) >= 0.99
