import numpy as np
import pytest

from harmonic_seg.preprocessing import (
    percentile_normalize,
    rescale_channels_first,
    rescale_labels,
    scaled_shape,
    to_channels_first,
)


def test_percentile_normalize_maps_percentiles_to_0_and_1():
    rng = np.random.default_rng(0)
    im = rng.normal(100, 10, size=(64, 64, 2)) * np.array([1, 50])
    out = percentile_normalize(im, 1, 99)
    for c in range(2):
        lo, hi = np.percentile(out[..., c], [1, 99])
        assert lo == pytest.approx(0, abs=1e-5) and hi == pytest.approx(1, abs=1e-5)
    with pytest.raises(ValueError, match="percentiles"):
        percentile_normalize(im, 99, 1)


def test_to_channels_first():
    assert to_channels_first(np.zeros((5, 6))).shape == (1, 5, 6)
    assert to_channels_first(np.zeros((5, 6, 3))).shape == (3, 5, 6)


def test_scaled_shape():
    assert scaled_shape((520, 696), 0.5) == (260, 348)
    assert scaled_shape((3, 3), 0.01) == (1, 1)


def test_rescale_labels_keeps_ids_and_inverts_a_whole_factor():
    lab = np.arange(12).reshape(3, 4)
    up = rescale_labels(lab, (6, 8))
    assert set(np.unique(up)) == set(range(12))  # nearest neighbour: ids never blended
    np.testing.assert_array_equal(up[::2, ::2], lab)
    np.testing.assert_array_equal(rescale_labels(up, (3, 4)), lab)
    mask = rescale_labels(np.eye(4, dtype=bool), (8, 8))
    assert mask.dtype == bool and mask.sum() == 16


def test_rescale_channels_first_shapes_and_constant_preserved():
    arr = np.full((3, 40, 30), 2.5, dtype=np.float32)
    for shape in ((20, 15), (80, 60), (33, 17)):
        out = rescale_channels_first(arr, shape)
        assert out.shape == (3, *shape) and out.dtype == np.float32
        np.testing.assert_allclose(out, 2.5, rtol=1e-6)
    ramp = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (1, 64, 1))
    back = rescale_channels_first(rescale_channels_first(ramp, (32, 32)), (64, 64))
    assert np.abs(back - ramp)[:, :, 2:-2].max() < 0.02  # bilinear round trip of a smooth map


def test_percentile_normalize_of_values_beyond_float32_range():
    # finite float64 values of 1e300 overflowed to inf in float32 and came out as NaN
    im = np.random.default_rng(0).random((32, 32, 2))
    out = percentile_normalize(im * 1e300, 1, 99)
    assert out.dtype == np.float32 and np.all(np.isfinite(out))
    np.testing.assert_allclose(out, percentile_normalize(im, 1, 99), rtol=1e-5, atol=1e-6)
    hot = im[..., 0].copy()
    hot[0, 0] = 1e300  # an outlier so far beyond the percentiles that float32 cannot hold it normalised
    with pytest.raises(ValueError, match="exceed float32's range.*np.clip"):
        percentile_normalize(hot, 1, 99)
