"""Tests of the mean shift within connected components (harmonic_seg.clustering._segmented)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sklearn.metrics import adjusted_rand_score as ari  # noqa: E402

from harmonic_seg.clustering._segmented import _bin_mean_seeds, component_core, segmented_mean_shift  # noqa: E402
from harmonic_seg.clustering.meanshift import mean_shift  # noqa: E402

from ._scenes import EPS  # noqa: E402


def _blobs(rng, centres, n, sd=0.05):
    return np.concatenate([c + rng.normal(0, sd, (n, len(c))) for c in centres]).astype(np.float32)


@pytest.mark.parametrize("metric", ["euclidean", "l1"])
@pytest.mark.parametrize("kernel", ["flat", "gaussian"])
def test_each_component_has_the_modes_of_its_own_mean_shift(metric, kernel):
    rng = np.random.default_rng(0)
    a = _blobs(rng, [[0, 0, 0], [2, 0, 0]], 60)  # component 0: two modes
    b = _blobs(rng, [[0, 0, 0]], 50)  # component 1: one mode at the same place as one of a's
    points = np.concatenate([a, b])
    comp = np.repeat([0, 1], [len(a), len(b)])
    mode, n_modes = segmented_mean_shift(points, comp, 2, EPS, kernel=kernel, metric=metric)
    assert n_modes == 3 and set(mode[comp == 1]) & set(mode[comp == 0]) == set()
    _, ref = mean_shift(a, EPS, kernel=kernel, metric=metric, seeds="bin_mean", max_points=None,
                        coarse_to_fine=False)
    assert ari(ref, mode[comp == 0]) == 1.0


def test_a_component_is_the_same_whatever_else_the_image_holds():
    rng = np.random.default_rng(1)
    parts = [_blobs(rng, rng.uniform(0, 3, (k, 4)), 40, sd=0.15) for k in (1, 3, 2)]
    comp = np.concatenate([np.full(len(p), i) for i, p in enumerate(parts)])
    mode, _ = segmented_mean_shift(np.concatenate(parts), comp, 3, EPS)
    alone, _ = segmented_mean_shift(parts[1], np.zeros(len(parts[1]), np.int64), 1, EPS)
    np.testing.assert_array_equal(mode[comp == 1] - mode[comp == 1].min(), alone)
    # the same with the components in another order
    mode2, _ = segmented_mean_shift(np.concatenate(parts[::-1]), comp.max() - comp[::-1], 3, EPS)
    assert ari(mode[comp == 1], mode2[len(parts[2]): len(parts[2]) + len(parts[1])]) == 1.0


def test_only_searching_points_seed_and_every_point_is_assigned():
    rng = np.random.default_rng(2)
    points = _blobs(rng, [[0, 0], [2, 0]], 30)
    search = np.zeros(len(points), bool)
    search[:30] = True  # only the first blob searches: one mode, every point assigned to it
    mode, n_modes = segmented_mean_shift(points, np.zeros(len(points), np.int64), 1, EPS, search=search)
    assert n_modes == 1 and (mode == 0).all()
    # a component with no searching point searches with all of its points
    mode, n_modes = segmented_mean_shift(points, np.zeros(len(points), np.int64), 1, EPS,
                                         search=np.zeros(len(points), bool))
    assert n_modes == 2


def test_component_core_is_decided_per_component():
    comp = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    prob = np.array([0.9, 0.9, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2])
    change = np.array([1.0, 2.0, 0.5, np.nan, 3.0, 1.0, np.nan, 2.0])
    assert component_core(comp, 2, prob, None, None, None) is None
    # component 1 has no pixel above the threshold: all of its pixels pass that rule
    np.testing.assert_array_equal(component_core(comp, 2, prob, None, 0.5, None), [1, 1, 0, 0, 1, 1, 1, 1])
    # half of each component's pixels, lowest change (a pixel without neighbour never), within the first rule
    core = component_core(comp, 2, prob, change, 0.5, 0.5)
    np.testing.assert_array_equal(core, [1, 0, 0, 0, 0, 1, 0, 1])
    core = component_core(comp, 2, None, np.full(8, np.nan), None, 0.5)
    assert core.all()  # no pixel with a neighbour: all seek


@pytest.mark.parametrize("kernel", ["flat", "gaussian"])
def test_min_bin_freq_seeds_as_scikit_learn_and_every_component_keeps_its_fullest_cell(kernel):
    rng = np.random.default_rng(3)
    a = _blobs(rng, [[0, 0, 0], [2, 0, 0]], 60)
    lone = np.array([[5.0, 5.0, 5.0], [9.0, 9.0, 9.0]], np.float32)  # a component of two one-point cells
    points = np.concatenate([a, lone])
    comp = np.repeat([0, 1], [len(a), len(lone)])
    mode, n_modes = segmented_mean_shift(points, comp, 2, EPS, kernel=kernel, min_bin_freq=3)
    _, ref = mean_shift(a, EPS, kernel=kernel, seeds="bin_mean", min_bin_freq=3, max_points=None,
                        coarse_to_fine=False)
    assert ari(ref, mode[comp == 0]) == 1.0
    # no cell of the lone component holds 3 points: its first fullest cell seeds, and both points join its mode
    assert n_modes == len(set(ref)) + 1 and len(set(mode[comp == 1])) == 1
    # cells under 3 points seed nothing, but for each component's fullest
    seeds, seed_comp = _bin_mean_seeds(points, comp, EPS, 3)
    all_seeds, _ = _bin_mean_seeds(points, comp, EPS, 1)
    assert len(seeds) < len(all_seeds) and (seed_comp == 1).sum() == 1
    np.testing.assert_array_equal(seeds[seed_comp == 1][0], lone[0])
