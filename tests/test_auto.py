"""The automatic choices: scale="auto", base_width="auto", amp="auto" (the defaults)."""

import numpy as np
import pytest
import torch

from harmonic_seg import HarmonicSegmenter, Network
from harmonic_seg._auto import AUTO_SCALE_DIAMETER, auto_scale, object_diameters, resolve_base_width
from harmonic_seg.nn import _train_utils, resolve_amp
from harmonic_seg.synthetic import make_instances

TINY = dict(epochs=1, steps_per_epoch=1, batch_size=2, crop_size=32, num_threads=1, validation_fraction=0)


def _discs(diameter, shape=(256, 256), n=4):
    lab = np.zeros(shape, np.int32)
    yy, xx = np.indices(shape)
    r = diameter / 2
    for k in range(n):
        cy, cx = r + 2 + k * (diameter + 4) % (shape[0] - diameter - 4), r + 2 + (k * 37) % (shape[1] - diameter - 4)
        lab[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = k + 1
    return lab


def test_object_diameters_of_discs_and_bars():
    disc = _discs(40, n=1)
    assert object_diameters([disc])[0] == pytest.approx(40, rel=0.03)
    bar = np.zeros((64, 200), np.int32)
    bar[20:30, 10:170] = 7  # 10 x 160: equivalent diameter 45; the ellipse of its moments is 185 px long
    size = object_diameters([bar])[0]
    assert size == pytest.approx(np.sqrt(np.sqrt(4 * 1600 / np.pi) * 4 * 160 / np.sqrt(12)), rel=1e-6)
    assert object_diameters([np.zeros((5, 5), int)]).size == 0
    assert object_diameters([np.array([[0, 3]])])[0] == pytest.approx(np.sqrt(np.sqrt(4 / np.pi) * 4 / np.sqrt(12)))


@pytest.mark.parametrize("diameter, expected", [(20, 1.0), (64, 0.5), (128, 0.25), (600, 0.125)])
def test_auto_scale_brings_the_median_object_to_the_target_in_quarter_octaves(diameter, expected):
    shape = (max(256, diameter + 8),) * 2
    scale, median = auto_scale([_discs(diameter, shape=shape, n=1)])
    assert median == pytest.approx(diameter, rel=0.03)
    assert scale == pytest.approx(expected)
    assert np.log2(scale) * 4 == pytest.approx(round(np.log2(scale) * 4))


def test_auto_scale_rounds_clips_and_keeps_images_usable():
    scale, _ = auto_scale([_discs(AUTO_SCALE_DIAMETER / 0.6)])  # 0.6 -> 2**-0.75
    assert scale == pytest.approx(2**-0.75)
    assert auto_scale([np.zeros((8, 8), int)]) == (1.0, pytest.approx(np.nan, nan_ok=True))
    assert auto_scale([_discs(128)], min_scale=0.4)[0] == 0.4


def test_resolve_base_width_and_amp_auto(monkeypatch):
    assert resolve_base_width("auto", torch.device("cpu")) == 16
    assert resolve_base_width("auto", "cuda:1") == 32 and resolve_base_width(8, "cuda") == 8
    monkeypatch.setattr(_train_utils, "cpu_has_native_bfloat16", lambda: True)
    assert resolve_amp("auto", "cpu") is torch.bfloat16 and resolve_amp("auto", "cuda") is torch.float16
    monkeypatch.setattr(_train_utils, "cpu_has_native_bfloat16", lambda: False)
    assert resolve_amp("auto", "cpu") is None and resolve_amp("auto", "mps") is None


def test_segmenter_scale_and_width_auto_are_fitted_and_used():
    d = make_instances(n_images=3, shape=(128, 128), n_instances=(3, 4), kind="ellipses", random_state=0)
    big = [np.kron(im, np.ones((2, 2), im.dtype)) for im in d.images]  # objects twice as large
    big_labels = [np.kron(lab, np.ones((2, 2), lab.dtype)) for lab in d.labels]
    seg = HarmonicSegmenter(scale="auto", network=Network(depth=2, base_width="auto"), amp="auto",
                            random_state=0, **TINY)
    seg.fit(big, big_labels)
    expected, _ = auto_scale(big_labels)
    assert expected < 1 and seg.scale_ == expected and seg.scale == "auto"
    assert seg.base_width_ == 16 and seg.module_.config["base_width"] == 16
    # the network sees images reduced by scale_, predictions come back at full size
    emb, prob = seg.predict_embeddings(big[:1])[0]
    assert prob.shape == big[0].shape
    fixed = HarmonicSegmenter(scale=expected, network=Network(depth=2, base_width=16), amp="auto", random_state=0,
                              **TINY).fit(big, big_labels)
    np.testing.assert_allclose(fixed.predict_embeddings(big[:1])[0][0], emb, atol=1e-5)
    plain = HarmonicSegmenter(network=Network(depth=2, base_width=4), random_state=0, **TINY).fit(d.images, d.labels)
    assert plain.scale_ == 1.0 and plain.base_width_ == 4


def test_defaults_are_the_automatic_choices_and_bad_values_are_refused():
    params = HarmonicSegmenter().get_params()
    assert (params["scale"], Network().base_width, params["amp"]) == ("auto", "auto", "auto")
    assert params["network"] is None  # Network()
    assert params["tune_postprocessing"] and params["loss"] == "discriminative"
    with pytest.raises(ValueError, match="scale"):
        HarmonicSegmenter(scale="big").fit([np.zeros((32, 32))], [np.zeros((32, 32), int)])
    with pytest.raises(ValueError, match="base_width"):
        HarmonicSegmenter(network=Network(base_width="wide")).fit([np.zeros((32, 32))],
                                                                [np.zeros((32, 32), int)])


def test_saved_model_keeps_the_automatic_choices(tmp_path):
    d = make_instances(n_images=2, shape=(96, 96), n_instances=(2, 3), kind="ellipses", random_state=1)
    seg = HarmonicSegmenter(scale="auto", network=Network(depth=2, base_width="auto"), random_state=0,
                            **TINY).fit(d.images, d.labels)
    seg.save(tmp_path / "m")
    loaded = HarmonicSegmenter.load(tmp_path / "m")
    assert loaded.scale == "auto" and loaded.scale_ == seg.scale_ and loaded.base_width_ == seg.base_width_
    np.testing.assert_array_equal(loaded.predict(d.images[:1])[0], seg.predict(d.images[:1])[0])
