import numpy as np
import pytest

from harmonic_seg._tuning import (
    BANDWIDTH_FACTORS,
    CORE_FRACTIONS,
    FG_THRESHOLDS,
    bandwidth_grid,
    core_fraction_grid,
    fg_threshold_grid,
    grid_search_clustering,
    grid_search_threshold,
    median_instance_area,
    min_size_grid,
    size_filtered,
    validation_score,
)
from harmonic_seg.metrics import matching_dataset
from harmonic_seg.postprocess import remove_small_instances


def _truth():
    lab = np.zeros((30, 30), np.int32)
    lab[2:12, 2:12] = 1
    lab[15:28, 3:14] = 2
    lab[5:25, 18:27] = 3
    return lab


def test_grid_search_finds_the_only_right_setting():
    truth = _truth()
    merged = (truth > 0).astype(np.int32)

    right = ("l1", round(bandwidth_grid(0.5, "l1", 12)[6], 6), 0)  # 2 x default, L1, min_size 0

    def cluster(pred, bandwidth, min_size, metric, core_fraction):
        assert pred == "p" and core_fraction is None
        return truth if (metric, round(bandwidth, 6), min_size) == right else merged

    best, results = grid_search_clustering(cluster, ["p", "p"], [truth, truth], 0.5, 10, 12)
    assert (best["metric"], round(best["bandwidth"], 6), best["min_size"]) == right
    assert best["score"] == pytest.approx(1.0)
    assert len(results) == 2 * len(BANDWIDTH_FACTORS) * len(min_size_grid(10))
    assert max(BANDWIDTH_FACTORS) >= 3.0  # wide windows keep elongated objects whole


def test_scorings():
    truth = _truth()
    shifted = np.roll(truth, 2, axis=1)  # IoUs between 0.5 and 0.95
    acc = validation_score([truth], [shifted], "accuracy")
    expected = np.mean([m.accuracy for m in matching_dataset([truth], [shifted], [0.5 + 0.05 * i for i in range(10)])])
    assert acc == pytest.approx(expected) and 0 < acc < 1
    assert validation_score([truth], [truth], "accuracy") == 1.0
    assert 0 < validation_score([truth], [shifted], "sbd") < 1
    with pytest.raises(ValueError, match="scoring must be one of"):
        grid_search_clustering(lambda *a: truth, ["p"], [truth], 0.5, 10, 12, scoring="iou")


def test_l1_windows_match_the_euclidean_ones():
    # Random directions in R^12: L1 norm / L2 norm is about sqrt(2 * 12 / pi).
    rng = np.random.default_rng(0)
    v = rng.normal(size=(20000, 12))
    ratio = np.mean(np.abs(v).sum(1) / np.linalg.norm(v, axis=1))
    l1, l2 = np.array(bandwidth_grid(0.5, "l1", 12)), np.array(bandwidth_grid(0.5, "euclidean", 12))
    assert np.allclose(l2, 0.5 * np.array(BANDWIDTH_FACTORS))
    assert np.allclose(l1 / l2, ratio, rtol=0.03)


def test_min_size_grid_follows_the_instance_area():
    truth = _truth()  # areas 100, 143, 180
    assert median_instance_area([truth, np.zeros((4, 4), int)]) == 143.0
    assert median_instance_area([np.zeros((4, 4), int)]) == 0.0
    assert median_instance_area([truth.astype(np.int64) * 2**40]) == 143.0  # sparse ids
    assert min_size_grid(10) == [0, 10, 30, 80]
    assert min_size_grid(10, 12500.0) == [0, 10, 30, 80, 250, 625, 1250, 2500, 3750, 6250]
    seen = []
    grid_search_clustering(lambda p, bw, size, m, cf: seen.append(size) or truth, ["p"], [truth], 0.5, 10, 12,
                           typical_area=1000.0)
    assert sorted(set(seen)) == [0, 10, 20, 30, 50, 80, 100, 200, 300, 500]
    assert seen[:10] == sorted(set(seen))  # sizes vary fastest (one clustering per bandwidth suffices)


def test_size_filtered_clusters_once_per_bandwidth():
    truth = _truth()
    calls = []

    def cluster_all(pred, bandwidth, metric, core_fraction):
        calls.append((pred, bandwidth, metric, core_fraction))
        return truth

    cluster = size_filtered(cluster_all, remove_small_instances)
    preds = ["a", "b"]
    best, results = grid_search_clustering(cluster, preds, [truth, truth], 0.5, 10, 12, typical_area=1000.0)
    n_grid = 2 * len(BANDWIDTH_FACTORS)
    assert len(calls) == n_grid * len(preds)  # not once per minimum size
    assert len(results) == n_grid * len(min_size_grid(10, 1000.0))
    by_size = {r["min_size"]: r["score"] for r in results if r["bandwidth"] == results[0]["bandwidth"]}
    assert by_size[0] == by_size[100] == 1.0 and by_size[200] == 0.0  # the instances have 100, 143, 180 px
    assert best["min_size"] == 0


def test_core_fractions_are_a_grid_dimension():
    truth = _truth()
    merged = (truth > 0).astype(np.int32)
    assert core_fraction_grid() == [None, 0.8, 0.6] == list(CORE_FRACTIONS)
    assert core_fraction_grid(0.7) == [None, 0.8, 0.6, 0.7]
    assert core_fraction_grid(0.8) == core_fraction_grid(1) == core_fraction_grid(1.0) == [None, 0.8, 0.6]
    assert core_fraction_grid(np.float32(0.8)) == core_fraction_grid(np.float32(0.7))[:3] == [None, 0.8, 0.6]
    assert core_fraction_grid(np.float32(0.7)) == [None, 0.8, 0.6, 0.7]
    calls = []

    def cluster_all(pred, bandwidth, metric, core_fraction):
        calls.append((pred, bandwidth, metric, core_fraction))
        return truth if core_fraction == 0.6 else merged

    cluster = size_filtered(cluster_all, remove_small_instances)
    best, results = grid_search_clustering(cluster, ["a", "b"], [truth, truth], 0.5, 10, 12,
                                           core_fractions=core_fraction_grid())
    n_sizes = len(min_size_grid(10))
    assert len(results) == 2 * len(BANDWIDTH_FACTORS) * 3 * n_sizes
    assert len(calls) == 2 * len(BANDWIDTH_FACTORS) * 3 * 2  # once per image and grid point, not per size
    assert best["core_fraction"] == 0.6 and best["score"] == pytest.approx(1.0)
    assert [r["core_fraction"] for r in results[: 3 * n_sizes : n_sizes]] == [None, 0.8, 0.6]
    # equal scores: the first in grid order, so no core fraction (the paper) before one
    best, _ = grid_search_clustering(size_filtered(lambda *a: truth, remove_small_instances), ["a"], [truth],
                                     0.5, 10, 12, core_fractions=core_fraction_grid())
    assert best["core_fraction"] is None


def test_threshold_search_finds_the_right_one_and_keeps_the_configured_on_ties():
    truth = _truth()
    merged = (truth > 0).astype(np.int32)
    assert fg_threshold_grid() == [0.5, 0.3, 0.4, 0.6, 0.7]
    assert fg_threshold_grid(0.45)[0] == 0.45 and fg_threshold_grid(0.45)[1:] == list(FG_THRESHOLDS)
    assert fg_threshold_grid(0.5000001) == [0.5000001, 0.3, 0.4, 0.6, 0.7]  # kept as given, not rounded
    best, results = grid_search_threshold(lambda p, t: truth if t == 0.6 else merged, ["a", "b"], [truth, truth],
                                          fg_threshold_grid())
    assert best == {"fg_threshold": 0.6, "score": pytest.approx(1.0)}
    assert [r["fg_threshold"] for r in results] == [0.5, 0.3, 0.4, 0.6, 0.7]
    best, _ = grid_search_threshold(lambda p, t: truth, ["a"], [truth], fg_threshold_grid(0.45))
    assert best["fg_threshold"] == 0.45  # every threshold alike: the configured one stays
    with pytest.raises(ValueError, match="scoring must be one of"):
        grid_search_threshold(lambda p, t: truth, ["a"], [truth], [0.5], scoring="iou")
