import numpy as np
import pytest

from harmonic_seg.guides import (
    GuideFunctions,
    coordinate_guides,
    guide_maps,
    random_guides,
)


def test_window_and_crop_agree_with_full_image():
    g = random_guides(12, (200, 300), random_state=0)
    full = g.evaluate((200, 300))
    crop = g.evaluate((50, 70), origin=(31, 97))
    np.testing.assert_allclose(crop, full[:, 31:81, 97:167], atol=1e-6)


def test_formula_matches_paper_units():
    psi = np.array([[10.0, 20.0], [3.0, 45.0]])
    g = GuideFunctions.from_paper_units(psi, [0.3, 1.2], (100, 200))
    maps = g.evaluate((100, 200), dtype=np.float64)
    y, x = np.mgrid[:100, :200]
    expected = np.sin(psi[1, 1] * x / 200 + psi[1, 0] * y / 100 + 1.2)
    np.testing.assert_allclose(maps[1], expected, atol=1e-12)
    np.testing.assert_allclose(g.to_paper_units((100, 200)), psi)


@pytest.mark.parametrize("stride", [2, 4, 8])
def test_strided_grid_is_block_centres(stride):
    g = random_guides(6, (64, 64), random_state=1)
    coarse = g.evaluate((5, 7), origin=(16, 8), stride=stride, dtype=np.float64)
    ys = 16 + stride * np.arange(5) + (stride - 1) / 2
    xs = 8 + stride * np.arange(7) + (stride - 1) / 2
    pts = np.stack(np.meshgrid(ys, xs, indexing="ij"), -1).reshape(-1, 2)
    np.testing.assert_allclose(coarse.reshape(6, -1).T, g.evaluate_at(pts), atol=1e-12)


def test_fixed_sets_ranges_and_determinism():
    low = random_guides(12, (100, 100), kind="low", random_state=0)
    high = random_guides(12, (100, 100), kind="high", random_state=0)
    assert np.abs(low.to_paper_units((100, 100))).max() <= 10
    assert np.abs(high.to_paper_units((100, 100))).min() >= 100
    assert random_guides(12, (100, 100), random_state=3) == random_guides(12, (100, 100), random_state=3)
    assert random_guides(12, (100, 100), random_state=3) != random_guides(12, (100, 100), random_state=4)


def test_coordinate_guides_are_normalised_coordinates():
    g = coordinate_guides((50, 100))
    m = g.evaluate((50, 100), dtype=np.float64)
    np.testing.assert_allclose(m[0, :, 0], np.arange(50) / 50)
    np.testing.assert_allclose(m[1, 0, :], np.arange(100) / 100)


def test_dict_round_trip_and_immutability():
    g = random_guides(4, (10, 10), random_state=0)
    assert GuideFunctions.from_dict(g.to_dict()) == g
    with pytest.raises(ValueError):
        g.frequencies[0, 0] = 1.0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(frequencies=np.zeros((3,)), phases=np.zeros(3)), "frequencies must have shape"),
        (dict(frequencies=np.zeros((3, 2)), phases=np.zeros(2)), "phases must have shape"),
        (dict(frequencies=np.full((1, 2), np.nan), phases=np.zeros(1)), "finite"),
        (dict(frequencies=np.zeros((1, 2)), phases=np.zeros(1), kind="cos"), "kind must be"),
    ],
)
def test_bad_guides(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GuideFunctions(**kwargs)


def test_bad_evaluation_arguments():
    g = random_guides(2, (10, 10), random_state=0)
    with pytest.raises(TypeError, match="guides must be"):
        guide_maps("not guides", (4, 4))
    with pytest.raises(ValueError, match="stride"):
        g.evaluate((4, 4), stride=0)
    with pytest.raises(ValueError, match="shape"):
        g.evaluate((0, 4))
    with pytest.raises(ValueError, match="kind must be one of"):
        random_guides(2, (10, 10), kind="medium")
