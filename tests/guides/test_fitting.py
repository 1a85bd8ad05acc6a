import numpy as np
import pytest

from harmonic_seg.guides import (
    AUTO_PERIOD_FACTOR,
    GuideFunctionFitter,
    auto_frequency_bound,
    instance_lengths,
    fit_guides,
    pairwise_separation,
    separation_score,
)


def grid_labels(n_images=4, shape=(96, 96), cells=8, seed=0):
    """Dense grid of touching square instances, randomly jittered per image."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_images):
        h, w = shape
        ys = np.minimum(np.arange(h) * cells // h, cells - 1)
        xs = np.minimum(np.arange(w) * cells // w, cells - 1)
        lab = (ys[:, None] * cells + xs[None, :] + 1).astype(np.int32)
        out.append(np.roll(lab, rng.integers(0, 10, size=2), axis=(0, 1)))
    return out


def test_search_separates_dense_instances():
    labs = grid_labels()
    # 12 guides and eps = 0.5 (the paper's setting) separate every pair.
    res = fit_guides(labs, n_guides=12, margin=0.5, random_state=0)
    assert separation_score(labs, res.guides, 0.5) == 1.0
    assert res.converged


def test_search_improves_on_its_random_initialisation():
    # A hard setting (4 guides, eps = 1) where the initial random guides fail;
    # max_iter=0 returns the search's own starting point.
    labs = grid_labels()
    kw = dict(n_guides=4, margin=1.0, init_range=(0.0, 50.0), random_state=0)
    init = fit_guides(labs, max_iter=0, **kw).guides
    res = fit_guides(labs, max_iter=400, **kw)
    before = separation_score(labs, init, 1.0)
    after = separation_score(labs, res.guides, 1.0)
    assert before < 0.6 and after > before + 0.2, (before, after)


def test_instance_lengths_are_the_major_axes():
    lab = np.zeros((120, 140), int)
    rr, cc = np.ogrid[:120, :140]
    lab[(rr - 30) ** 2 + (cc - 30) ** 2 <= 20**2] = 3  # disc, diameter 40 pixels
    lab[80:84, 10:130] = 7  # straight rod 4 x 120
    lab[10:50, 70:71] = 9  # one pixel wide, 40 long, vertical
    lengths = instance_lengths(lab)
    assert lengths.shape == (3,)
    # A disc: its diameter. A rod of length l: the ellipse of the same variance l^2 / 12, 4 l / sqrt(12).
    rod = 4 / np.sqrt(12)
    assert abs(lengths[0] - 40) < 0.2 and np.allclose(lengths[1:], [120 * rod, 40 * rod])
    # Orientation does not matter; regionprops (pixels as points) agrees up to the pixel's own extent.
    assert np.allclose(instance_lengths(lab.T), lengths)
    from skimage.measure import regionprops

    sk = np.array([r.axis_major_length for r in regionprops(lab)])
    assert np.all((lengths >= sk) & (lengths - sk < 0.2)), (lengths, sk)
    # Sparse ids (16-bit tracking ids) give the same lengths, in the order of the sorted ids.
    sparse = np.select([lab == 3, lab == 7, lab == 9], [60000, 65000, 65535], 0)
    assert np.allclose(instance_lengths(sparse), lengths)
    assert instance_lengths(np.zeros((5, 5), int)).shape == (0,)
    with pytest.raises((ValueError, TypeError), match="label_map"):
        instance_lengths(np.zeros((2, 5, 5), int))
    with pytest.raises(ValueError, match="label_map"):
        instance_lengths(-np.ones((5, 5), int))


def test_auto_frequency_bound_follows_the_object_size():
    # 12x12 squares: equivalent diameter 2 * sqrt(144 / pi).
    labs = grid_labels(n_images=2, shape=(96, 96), cells=8)
    d = 2 * np.sqrt(144 / np.pi)
    assert np.isclose(auto_frequency_bound(labs), 2 * np.pi / (AUTO_PERIOD_FACTOR * d))
    # Length (major axis) of a square: 4 sqrt(144 / 12), the side times 2 / sqrt(3).
    length = 4 * np.sqrt(144 / 12)
    assert np.isclose(auto_frequency_bound(labs, size="length"), 2 * np.pi / (AUTO_PERIOD_FACTOR * length))
    # Elongated objects: the length-sized bound follows their length, the default their area.
    rods = np.zeros((96, 96), int)
    for k in range(8):
        rods[4 + 12 * k : 7 + 12 * k, 24:72] = k + 1  # 3 x 48
    bound = auto_frequency_bound([rods], size="length")
    assert np.isclose(bound, 2 * np.pi / (AUTO_PERIOD_FACTOR * 48 * 4 / np.sqrt(12)))
    assert np.isclose(auto_frequency_bound([rods]), 2 * np.pi / (AUTO_PERIOD_FACTOR * 2 * np.sqrt(144 / np.pi)))
    res = fit_guides([rods], init_range="auto-length", max_iter=0, random_state=0)
    assert np.allclose(res.init_bound, bound * 96)
    with pytest.raises(ValueError, match="size"):
        auto_frequency_bound([rods], size="area")
    # Twice the object size, half the bound.
    big = grid_labels(n_images=2, shape=(192, 192), cells=8)
    assert np.isclose(auto_frequency_bound(big), auto_frequency_bound(labs) / 2)
    # No instance at all: a period of one image side.
    assert np.isclose(auto_frequency_bound([np.zeros((50, 80), int)]), 2 * np.pi / 80)


@pytest.mark.parametrize("init_range, size", [(None, "length"), ("auto-length", "length"), ("auto", "diameter")])
def test_auto_init_range_starts_below_the_bound(init_range, size):
    labs = grid_labels(n_images=3, shape=(96, 128))
    kw = {} if init_range is None else dict(init_range=init_range)  # None: the default, "auto-length"
    res = fit_guides(labs, max_iter=0, random_state=0, **kw)  # the initialisation itself
    bound = auto_frequency_bound(labs, size=size)
    assert np.allclose(res.init_bound, bound * np.array([96, 128]))
    freqs = np.abs(res.guides.frequencies)
    assert freqs.max() <= bound and freqs.max() > bound / 2
    assert GuideFunctionFitter().init_range == "auto-length"  # the estimator's default is the function's
    # An explicit range is still honoured (paper units: radians per side).
    paper = fit_guides(labs, init_range=(0.0, 50.0), max_iter=0, random_state=0)
    assert np.abs(paper.guides.frequencies).max() > bound


def test_max_frequency_bounds_the_search():
    # Hard setting: the unbounded search raises frequencies past where it
    # started; the bounded one stays inside the initial range and still
    # improves the separation on its own starting point.
    labs = grid_labels()
    kw = dict(n_guides=4, margin=1.0, init_range=(0.0, 10.0), max_iter=300, random_state=0)
    init = fit_guides(labs, **{**kw, "max_iter": 0}).guides
    free = fit_guides(labs, **kw)
    bounded = fit_guides(labs, max_frequency="init", **kw)
    ref = np.array([96, 96])
    assert np.abs(free.guides.to_paper_units(ref)).max() > 10.5
    assert np.abs(bounded.guides.to_paper_units(ref)).max() <= 10.0 + 1e-9
    # Same initialisation: the bound does not consume random numbers.
    start = fit_guides(labs, max_frequency="init", **{**kw, "max_iter": 0}).guides
    assert np.array_equal(start.frequencies, init.frequencies)
    # At least halves the fraction of pairs left unseparated.
    before, after = separation_score(labs, init, 1.0), separation_score(labs, bounded.guides, 1.0)
    assert before < 0.95 and 1 - after < (1 - before) / 2, (before, after)


def test_max_frequency_caps_the_initial_range():
    labs = grid_labels(n_images=2)
    res = fit_guides(labs, init_range=(0.0, 50.0), max_frequency=5.0, max_iter=0, random_state=0)
    assert np.allclose(res.init_bound, 5.0)
    assert np.abs(res.guides.to_paper_units((96, 96))).max() <= 5.0


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(label_maps=[]), ValueError, "at least one label map"),
        (dict(label_maps=np.zeros((4, 4), int)), TypeError, "Wrap it in a list"),
        (dict(label_maps=[np.zeros((4, 4), float)]), TypeError, "integer instance ids"),
        (dict(label_maps=[np.zeros((4, 4), int)], margin=0), ValueError, "margin"),
        (dict(label_maps=[np.zeros((4, 4), int)], n_guides=2.5), TypeError, "n_guides"),
        (dict(label_maps=[np.zeros((4, 4), int)], init_range=(5, 1)), ValueError, "init_range"),
        (dict(label_maps=[np.zeros((4, 4), int)], init_range="high"), ValueError, "init_range"),
        (dict(label_maps=[np.zeros((4, 4), int)], max_frequency="low"), ValueError, "max_frequency"),
        (dict(label_maps=[np.zeros((4, 4), int)], max_frequency=-1.0), ValueError, "max_frequency"),
        (dict(label_maps=[np.zeros((4, 4), int)], max_frequency="5"), ValueError, "max_frequency"),
        (dict(label_maps=[np.zeros((4, 4), int)], init_range=(5, 8), max_frequency=4), ValueError, "max_frequency"),
    ],
)
def test_bad_input(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        fit_guides(**kwargs)
