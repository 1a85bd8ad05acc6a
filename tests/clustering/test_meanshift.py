"""Tests of harmonic_seg.clustering.meanshift: torch mean shift vs scikit-learn, estimator."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sklearn.base import clone  # noqa: E402
from sklearn.cluster import MeanShift as SkMeanShift  # noqa: E402
from sklearn.metrics import adjusted_rand_score as ari  # noqa: E402

from harmonic_seg.clustering.meanshift import MeanShift, mean_shift  # noqa: E402

from ._scenes import EPS  # noqa: E402

@pytest.fixture(scope="module")
def points(scene):
    labels, emb = scene
    fg = labels > 0
    idx = np.random.default_rng(0).choice(fg.sum(), 3000, replace=False)
    return emb[:, fg].T[idx], labels[fg][idx]


@pytest.fixture(scope="module")
def sklearn_result(points):
    X, _ = points
    return SkMeanShift(bandwidth=EPS, bin_seeding=True).fit(X)


# ------------------------------------------------------------------ agreement
@pytest.mark.parametrize("seeds", ["bin", "bin_mean"])
def test_agrees_with_sklearn(points, sklearn_result, seeds):
    X, gt = points
    centers, labels = mean_shift(X, EPS, seeds=seeds)
    assert labels.shape == (len(X),) and centers.shape[1] == X.shape[1]
    assert ari(sklearn_result.labels_, labels) >= 0.99
    assert ari(gt, labels) >= 0.99


def test_bin_seeds_same_modes_as_sklearn(points, sklearn_result):
    X, _ = points
    centers, _ = mean_shift(X, EPS, seeds="bin", coarse_to_fine=False)
    sk = sklearn_result.cluster_centers_
    assert len(centers) == len(sk)
    d = np.sqrt(((centers[:, None] - sk[None]) ** 2).sum(-1))
    assert d.min(1).max() < 1e-2  # every mode of ours is one of scikit-learn's


def test_subsampling_preserves_labels(points):
    X, _ = points
    _, full = mean_shift(X, EPS, max_points=None)
    _, sub = mean_shift(X, EPS, max_points=1000, random_state=3)
    assert ari(full, sub) >= 0.98


@pytest.mark.parametrize("kernel", ["flat", "gaussian"])
@pytest.mark.parametrize("metric", ["euclidean", "l1"])
def test_kernels_and_metrics_run(points, kernel, metric):
    X, gt = points
    centers, labels = mean_shift(X, EPS, kernel=kernel, metric=metric, seeds="bin_mean")
    assert labels.min() >= 0 and labels.max() < len(centers)
    if metric == "euclidean":
        assert ari(gt, labels) >= 0.99


def test_deterministic_on_cpu(points):
    X, _ = points
    a = mean_shift(X, EPS, max_points=1500, random_state=7)
    b = mean_shift(X, EPS, max_points=1500, random_state=7)
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[0], b[0])


def test_torch_input_and_cluster_all(points):
    X, _ = points
    c1, l1 = mean_shift(torch.from_numpy(X), EPS)
    c2, l2 = mean_shift(X, EPS)
    np.testing.assert_array_equal(l1, l2)
    far = np.vstack([X, np.full((1, X.shape[1]), 50.0, dtype=np.float32)])
    _, lab = mean_shift(far, EPS, cluster_all=False, seeds="bin_mean", min_bin_freq=2)
    assert lab[-1] == -1 and (lab[:-1] >= 0).mean() > 0.95  # a few blurred boundary pixels are orphans too


def test_merge_false_keeps_more_modes(points):
    X, _ = points
    merged, _ = mean_shift(X, EPS, seeds="bin_mean")
    unmerged, _ = mean_shift(X, EPS, seeds="bin_mean", merge=False)
    assert len(unmerged) >= len(merged)


def test_explicit_seeds():
    X = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.1, 5.0]], dtype=np.float32)
    centers, labels = mean_shift(X, 1.0, seeds=[[0.0, 0.1], [5.0, 5.1]])
    assert len(centers) == 2 and labels[0] == labels[1] != labels[2] == labels[3]
    with pytest.raises(ValueError, match="seeds"):
        mean_shift(X, 1.0, seeds=np.zeros((2, 3)))


# ------------------------------------------------------------------ edge cases
def test_single_point_and_identical_points():
    c, lab = mean_shift(np.ones((1, 12)), EPS)
    np.testing.assert_allclose(c, np.ones((1, 12)))
    np.testing.assert_array_equal(lab, [0])
    c, lab = mean_shift(np.zeros((50, 3)), EPS)
    assert len(c) == 1 and (lab == 0).all()


def test_no_seed_with_points_falls_back(caplog):
    # two points in one cell whose grid point is farther than the bandwidth from both:
    # scikit-learn raises, we use the points as seeds and say why
    # (the cell's grid point is 0.2 in every coordinate, 0.03 * sqrt(12) = 0.104 from each point)
    X = np.full((2, 12), 0.23, dtype=np.float32)
    X[1] = 0.17
    with caplog.at_level("WARNING", logger="harmonic_seg.clustering.meanshift"):
        c, lab = mean_shift(X, 0.1, seeds="bin")
    assert len(c) == 2 and sorted(lab) == [0, 1]
    assert "1 seed(s) for 2 point(s)" in caplog.text and "seeds='bin'" in caplog.text and "min_bin_freq=1" in caplog.text


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan")])
def test_bad_bandwidth(bad):
    with pytest.raises(ValueError, match="bandwidth"):
        mean_shift(np.zeros((5, 2)), bad)


def test_bad_points():
    with pytest.raises(ValueError, match="points"):
        mean_shift(np.array([[0.0, np.nan]]), EPS)
    with pytest.raises(ValueError, match="points"):
        mean_shift(np.zeros(5), EPS)
    with pytest.raises(ValueError, match="points"):
        mean_shift(np.zeros((0, 3)), EPS)
    with pytest.raises(ValueError, match="kernel"):
        mean_shift(np.zeros((5, 2)), EPS, kernel="epanechnikov")
    with pytest.raises(ValueError, match="metric"):
        mean_shift(np.zeros((5, 2)), EPS, metric="cosine")
    with pytest.raises(ValueError, match="seeds"):
        mean_shift(np.zeros((5, 2)), EPS, seeds="grid")


# ------------------------------------------------------------------ estimator
def test_estimator_api(points):
    X, gt = points
    est = MeanShift(bandwidth=EPS, seeds="bin_mean", max_points=2000)
    params = est.get_params()
    assert params["bandwidth"] == EPS and params["max_points"] == 2000
    twin = clone(est)
    assert twin.get_params() == params and not hasattr(twin, "labels_")
    labels = est.fit_predict(X)
    assert est.cluster_centers_.shape == (labels.max() + 1, X.shape[1])
    assert est.n_iter_ >= 1 and est.n_features_in_ == X.shape[1]
    np.testing.assert_array_equal(est.predict(X), labels)
    assert ari(gt, labels) >= 0.99
    est.set_params(kernel="gaussian")
    assert est.fit(X).kernel == "gaussian"
    with pytest.raises(ValueError, match="features"):
        est.predict(X[:, :3])
    with pytest.raises(TypeError):
        MeanShift(0.5)  # keyword-only


def test_estimator_not_fitted():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        MeanShift().predict(np.zeros((2, 2)))


# ------------------------------------------------------------------ CUDA
@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
def test_cuda_matches_cpu(points):
    X, _ = points
    _, cpu = mean_shift(X, EPS)
    _, gpu = mean_shift(torch.from_numpy(X).cuda(), EPS)
    _, gpu2 = mean_shift(X, EPS, device="cuda")
    assert ari(cpu, gpu) >= 0.99 and ari(cpu, gpu2) >= 0.99


@pytest.mark.parametrize("device", ["", "meta", "gpu", "cuda:7", "mps"])
def test_mean_shift_and_cluster_embeddings_refuse_devices_they_cannot_use(device):
    import torch

    from harmonic_seg.clustering import cluster_embeddings

    if device == "cuda:7" and torch.cuda.device_count() > 7 or device == "mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has that device")
    X = np.random.default_rng(0).random((30, 2))
    with pytest.raises(ValueError, match="device"):  # "meta" and "" were torch errors
        mean_shift(X, 0.5, device=device)
    with pytest.raises(ValueError, match="device"):
        MeanShift(bandwidth=0.5, device=device).fit(X)
    with pytest.raises(ValueError, match="device"):
        cluster_embeddings(np.zeros((2, 8, 8)), bandwidth=0.5, device=device)


def test_mean_shift_reads_device_names_as_the_segmenter_does():
    X = np.random.default_rng(0).random((30, 2))
    assert mean_shift(X, 0.5, device="CPU")[1].shape == (30,)  # torch refused upper case
    with pytest.raises(TypeError, match="device must be a string"):
        mean_shift(X, 0.5, device=0)
