"""The training data is validated once, where it enters the library, and never per crop or per step."""

import collections
import sys

import numpy as np
import pytest

pytest.importorskip("torch")

import harmonic_seg._validation as validation  # noqa: E402
import harmonic_seg.nn.trainer  # noqa: E402, F401  (every module that imports the checks is loaded)
from harmonic_seg import HarmonicSegmenter, Network  # noqa: E402
from harmonic_seg._fit_checks import prepare_images  # noqa: E402
from harmonic_seg._training_set import training_set  # noqa: E402
from harmonic_seg.guides import random_guides  # noqa: E402
from harmonic_seg.nn import HarmonicUNet, TrainConfig, Trainer  # noqa: E402
from harmonic_seg.nn.data import CropSampler  # noqa: E402
from harmonic_seg.preprocessing import percentile_normalize, to_channels_first  # noqa: E402
from harmonic_seg.synthetic import make_instances  # noqa: E402

CHECKS = ("check_image", "check_label_map")


@pytest.fixture
def count_checks(monkeypatch):
    """Counts of the per-array checks, wherever the package imported them."""
    counts = collections.Counter()
    for name in CHECKS:
        original = getattr(validation, name)

        def counted(*args, _name=name, _original=original, **kwargs):
            counts[_name] += 1
            return _original(*args, **kwargs)

        for module in list(sys.modules.values()):
            if module is not None and module.__name__.startswith("harmonic_seg") and \
                    getattr(module, name, None) is original:
                monkeypatch.setattr(module, name, counted)
    return counts


def _data(n=3):
    d = make_instances(n_images=n, shape=(64, 64), n_instances=(3, 6), random_state=0)
    return [(np.clip(im, 0, 1) * 255).astype(np.uint8) for im in d.images], d.labels


@pytest.mark.parametrize("percentiles, scale", [((1.0, 99.8), 0.5), (None, 1.0)])
def test_segmenter_fit_checks_every_image_and_label_map_once(count_checks, percentiles, scale):
    X, y = _data()
    seg = HarmonicSegmenter(network=Network(depth=2, base_width=4), epochs=2, steps_per_epoch=3, batch_size=2,
                            crop_size=32,
                            validation_fraction=0.34, tune_postprocessing=False, percentiles=percentiles,
                            scale=scale, num_threads=1, random_state=0)
    seg.fit(X, y)
    # 12 training crops and one validation image: before, 3 checks of every image and 8 of every label
    # map (guide fitting, trainer, crop sampler), and 2 of every crop's label map
    assert count_checks == {"check_image": len(X), "check_label_map": len(y)}


def test_trainer_fit_checks_its_input_once(count_checks):
    X, y = _data()
    guides = random_guides(4, (64, 64), random_state=0)
    config = TrainConfig(epochs=2, steps_per_epoch=3, batch_size=2, crop_size=32, validation_fraction=0.34,
                         loss="harmonic", random_state=0, num_threads=1)
    Trainer(HarmonicUNet(1, 4, guides, depth=2, base_width=4), guides, config).fit(
        [im[None].astype(np.float32) / 255 for im in X], y)
    assert count_checks == {"check_label_map": len(y)}  # the images are checked by Trainer.fit itself


def test_training_set_holds_float32_int32_and_bool():
    images = [np.ones((1, 5, 6)), np.zeros((2, 4, 3), np.float32)]
    labels = [np.full((5, 6), 7, np.int64), np.arange(12).reshape(4, 3) * 1000]
    data = training_set(images, labels, [None, np.eye(4, 3, dtype=np.uint8)])
    assert [im.dtype for im in data.images] == [np.float32] * 2 and data.images[1] is images[1]
    assert [lab.dtype for lab in data.labels] == [np.int32] * 2
    assert data.labels[0].max() == 1 and data.labels[1].max() == 11  # ids 1..K
    assert [ig.dtype for ig in data.ignore] == [bool] * 2 and not data.ignore[0].any() and data.ignore[1].sum() == 3
    assert len(data.subset([1])) == 1 and data.subset([1]).labels[0] is data.labels[1]


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64, np.int16])
@pytest.mark.parametrize("channels", [None, 3])
def test_images_are_cast_to_float32_once_with_the_same_values(dtype, channels):
    rng = np.random.default_rng(0)
    shape = (37, 41) if channels is None else (37, 41, channels)
    high = np.iinfo(dtype).max if np.issubdtype(dtype, np.integer) else 1000.0
    image = (rng.random(shape) * high).astype(dtype)
    (chw,) = prepare_images([image], (1.0, 99.8))
    assert chw.dtype == np.float32 and chw.flags.c_contiguous
    np.testing.assert_array_equal(chw, to_channels_first(percentile_normalize(image, 1.0, 99.8)))
    # the former route: the image cast to float32 before its percentiles
    work = image.astype(np.result_type(dtype, np.float32))
    lo, hi = np.percentile(work, [1.0, 99.8], axis=None if channels is None else (0, 1), keepdims=True)
    np.testing.assert_array_equal(chw, to_channels_first(((work - lo) / np.maximum(hi - lo, 1e-6)).astype(np.float32)))


def test_a_too_large_embedding_table_is_refused_once_when_the_sampler_is_built(monkeypatch):
    import harmonic_seg.guides.embeddings as embeddings

    guides = random_guides(4, (8, 8), random_state=0)
    data = training_set([np.zeros((1, 8, 8))], [np.arange(64).reshape(8, 8)])  # ids 1..63
    monkeypatch.setattr(embeddings, "MAX_TABLE_BYTES", 63 * 4 * 8)  # 64 rows of 4 floats do not fit
    with pytest.raises(ValueError, match="embedding table would have 64 rows"):
        CropSampler._from_training_set(data, guides, crop_size=8)
    monkeypatch.setattr(embeddings, "MAX_TABLE_BYTES", 64 * 4 * 8)
    sampler = CropSampler._from_training_set(data, guides, crop_size=8, scale_range=None, flips=False)
    assert sampler.sample(np.random.default_rng(0))[1].shape == (4, 8, 8)
