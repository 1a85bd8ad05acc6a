import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from harmonic_seg import GuideFunctionFitter
from harmonic_seg.guides import GuideFunctions

from .._sklearn_checks import DATA_FREE_CHECKS

from .test_fitting import grid_labels


@pytest.mark.parametrize("check", DATA_FREE_CHECKS, ids=lambda c: c.__name__)
def test_data_free_sklearn_checks(check):
    check(type(GuideFunctionFitter()).__name__, GuideFunctionFitter())


def test_fit_transform_score():
    labs = grid_labels(n_images=3)
    f = GuideFunctionFitter(random_state=0).fit(labs)
    assert isinstance(f.guides_, GuideFunctions) and f.n_guides_ == 12
    assert f.reference_shape_ == (96, 96)
    assert f.separation_ == f.score(labs) == 1.0
    t = f.transform(labs)
    assert len(t) == 3 and t[0].shape == (12, 96, 96)
    assert np.array_equal(f.fit_transform(labs)[0], t[0])


@pytest.mark.parametrize("strategy, n", [("random", 12), ("low", 12), ("high", 12), ("coord", 2)])
def test_fixed_strategies(strategy, n):
    f = GuideFunctionFitter(strategy=strategy, random_state=0).fit(grid_labels(n_images=2))
    assert f.n_guides_ == n and f.n_iter_ == 0 and f.loss_curve_ == []


def test_bounded_search_keeps_low_frequencies():
    labs = grid_labels(n_images=2)
    f = GuideFunctionFitter(init_range=(0.0, 10.0), max_frequency="init", max_iter=100, random_state=0).fit(labs)
    assert np.abs(f.guides_.to_paper_units(f.reference_shape_)).max() <= 10.0 + 1e-9
    assert f.converged_ and f.separation_ == 1.0


def test_set_params_then_fit_equals_constructor():
    labs = grid_labels(n_images=2)
    a = GuideFunctionFitter(random_state=0).set_params(n_guides=6, margin=0.7, max_iter=50).fit(labs)
    b = GuideFunctionFitter(n_guides=6, margin=0.7, max_iter=50, random_state=0).fit(labs)
    assert a.guides_ == b.guides_


def test_clone_pickle_and_not_fitted():
    f = GuideFunctionFitter(n_guides=4, random_state=1)
    with pytest.raises(NotFittedError):
        f.transform(grid_labels(n_images=1))
    f.fit(grid_labels(n_images=2))
    c = clone(f)
    assert not hasattr(c, "guides_") and c.get_params() == f.get_params()
    g = pickle.loads(pickle.dumps(f))
    assert g.guides_ == f.guides_


def test_positional_arguments_are_rejected():
    with pytest.raises(TypeError):
        GuideFunctionFitter(12)


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(n_guides=0), "n_guides"),
        (dict(margin=-1.0), "margin"),
        (dict(strategy="best"), "strategy"),
        (dict(max_frequency="low"), "max_frequency"),
        (dict(max_frequency=0.0), "max_frequency"),
    ],
)
def test_bad_params_name_the_parameter(params, match):
    with pytest.raises(ValueError, match=match):
        GuideFunctionFitter(**params).fit(grid_labels(n_images=1))


def test_bad_data():
    with pytest.raises(TypeError, match="integer instance ids"):
        GuideFunctionFitter().fit([np.zeros((5, 5))])
    with pytest.raises(ValueError, match="at least one"):
        GuideFunctionFitter().fit([])


def test_single_instance_fit_warns_not_crashes():
    lab = np.zeros((16, 16), int)
    lab[4:8, 4:8] = 1
    f = GuideFunctionFitter(random_state=0).fit([lab])
    assert f.fit_warnings_ and np.isnan(f.separation_)


@pytest.mark.parametrize("big", [10**7, 2**31 - 1])
def test_sparse_ids_fit_with_the_memory_of_the_instances(big):
    # One id of 10**7 in a 32x32 map used to cost about 1 GB and 7 s to fit, 2.8 GB and 13 s
    # to transform; 2**31 - 1 asked for 16 GiB. The result is that of the map numbered 1..K.
    import tracemalloc

    lab = np.zeros((32, 32), dtype=np.int64)
    lab[2:10, 2:10] = 3
    lab[15:25, 15:25] = big
    lab[2:8, 20:30] = 7
    compact = np.unique(lab, return_inverse=True)[1].reshape(lab.shape)
    tracemalloc.start()
    try:
        f = GuideFunctionFitter(max_iter=20, random_state=0).fit([lab])
        target = f.transform([lab])[0]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**22
    ref = GuideFunctionFitter(max_iter=20, random_state=0).fit([compact])
    np.testing.assert_array_equal(f.guides_.frequencies, ref.guides_.frequencies)
    np.testing.assert_array_equal(f.guides_.phases, ref.guides_.phases)
    assert f.separation_ == ref.separation_ == f.score([lab])
    np.testing.assert_array_equal(target, ref.transform([compact])[0])
