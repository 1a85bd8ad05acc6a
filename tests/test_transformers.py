"""Tests of the image-list transformers (harmonic_seg.transformers)."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.pipeline import make_pipeline

from harmonic_seg import ChannelSelector, PercentileNormalizer


def _two_channels():
    base = np.arange(16.0).reshape(4, 4)
    return np.stack([base, 10 * base], axis=-1)


def test_percentile_normalizer_maps_the_percentiles_to_0_and_1():
    im = np.arange(100.0).reshape(10, 10)
    out = PercentileNormalizer(0, 100).transform([im])[0]
    assert out.dtype == np.float32 and out.shape == im.shape
    assert (out.min(), out.max()) == (0.0, 1.0)
    # values beyond the percentiles are not clipped: p10 -> 0, p90 -> 1
    out = PercentileNormalizer(10, 90).transform([im])[0]
    np.testing.assert_allclose([out.min(), out.max()], [-0.125, 1.125], atol=1e-6)
    assert im[0, 0] == 0.0  # the input is left as it was


def test_percentile_normalizer_per_channel_or_jointly():
    im = _two_channels()
    per = PercentileNormalizer(0, 100).fit_transform([im])[0]
    np.testing.assert_allclose(per[..., 0], per[..., 1], atol=1e-6)  # each channel on its own range
    joint = PercentileNormalizer(0, 100, per_channel=False).fit_transform([im])[0]
    assert joint[..., 0].max() == pytest.approx(0.1) and joint[..., 1].max() == pytest.approx(1.0)


def test_percentile_normalizer_refuses_low_not_below_high():
    with pytest.raises(ValueError, match=r"low must be smaller than high; got low=50, high=40"):
        PercentileNormalizer(50, 40).transform([_two_channels()])
    with pytest.raises(ValueError, match="high"):
        PercentileNormalizer(1, 101).fit([_two_channels()])


def test_channel_selector_keeps_the_channels_asked_for():
    im = _two_channels()
    one = ChannelSelector(1).transform([im])[0]
    assert one.shape == (4, 4) and one.flags.c_contiguous
    np.testing.assert_array_equal(one, im[..., 1])
    np.testing.assert_array_equal(ChannelSelector(-1).transform([im])[0], im[..., 1])
    both = ChannelSelector([1, 0]).transform([im])[0]
    assert both.shape == (4, 4, 2)
    np.testing.assert_array_equal(both, im[..., ::-1])
    grey = np.ones((3, 5))
    np.testing.assert_array_equal(ChannelSelector(0).transform([grey])[0], grey)


@pytest.mark.parametrize("channels", [2, -3, [0, 5], []])
def test_channel_selector_names_the_valid_indices(channels):
    with pytest.raises(ValueError, match=r"channels must be indices in \[-2, 1\] for images with 2 channel"):
        ChannelSelector(channels).transform([_two_channels()])


def test_transformers_are_stateless_estimators():
    X = [_two_channels()]
    for t in (PercentileNormalizer(2, 98), ChannelSelector([0])):
        assert t.__sklearn_tags__().requires_fit is False
        np.testing.assert_array_equal(t.transform(X)[0], clone(t).fit(X).transform(X)[0])
        assert clone(t).get_params() == t.get_params()
    with pytest.raises(ValueError, match="X"):
        PercentileNormalizer().fit([])


def test_pipeline_with_image_transformers():
    pytest.importorskip("torch")
    from harmonic_seg import HarmonicSegmenter, Network
    from harmonic_seg.synthetic import make_instances

    d = make_instances(n_images=6, shape=(48, 48), n_instances=(3, 6), random_state=0)
    rgb = [np.stack([im * 1000, im * 1000], axis=-1).astype(np.uint16) for im in d.images]
    tiny = dict(network=Network(depth=2, base_width=4), epochs=1, steps_per_epoch=2, batch_size=2, crop_size=32,
                num_threads=1)
    pipe = make_pipeline(ChannelSelector(0), PercentileNormalizer(1, 99.8), HarmonicSegmenter(random_state=0, **tiny))
    pipe.fit(rgb, d.labels)
    assert pipe.predict(rgb[:1])[0].shape == (48, 48)
