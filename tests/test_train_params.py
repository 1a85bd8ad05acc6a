"""The training parameters are declared once, for HarmonicSegmenter and TrainConfig alike."""

import inspect
from dataclasses import fields

import numpy as np
import pytest

pytest.importorskip("torch")

from harmonic_seg import GuideFunctionFitter, HarmonicSegmenter  # noqa: E402
from harmonic_seg._train_params import TRAINING_PARAMETERS  # noqa: E402
from harmonic_seg.nn import TrainConfig  # noqa: E402
from harmonic_seg.synthetic import make_instances  # noqa: E402


def test_one_declaration_serves_both():
    segmenter_params = inspect.signature(HarmonicSegmenter).parameters
    config_fields = {f.name for f in fields(TrainConfig)}
    for name, constraints in TRAINING_PARAMETERS.items():
        assert name in segmenter_params and name in config_fields, name
        assert HarmonicSegmenter._parameter_constraints[name] is constraints, name


def test_fit_passes_the_segmenter_values_to_the_trainer(monkeypatch):
    import harmonic_seg.nn.trainer as trainer

    seen = {}
    real = trainer.Trainer._fit_training_set

    def spy(self, data, **kw):
        seen["config"] = self.config
        return real(self, data, **kw)

    monkeypatch.setattr(trainer.Trainer, "_fit_training_set", spy)
    d = make_instances(n_images=3, shape=(40, 40), n_instances=(2, 4), random_state=0)
    values = dict(epochs=1, steps_per_epoch=2, batch_size=3, crop_size=24, learning_rate=1e-3, lr_schedule="constant",
                  validation_fraction=0.3, patience=2, fg_weight=0.5, boundary_weight=0.25, loss="harmonic",
                  scale_range=[0.9, 1.1], flips=False, rotate=True, device="cpu", amp=None, num_threads=1, verbose=0)
    assert set(values) == set(TRAINING_PARAMETERS)
    HarmonicSegmenter(depth=2, base_width=4, scale=1.0, tune_postprocessing=False, random_state=0,
                      **values).fit(d.images, d.labels)
    config = seen["config"]
    assert {name: getattr(config, name) for name in values} == {**values, "scale_range": (0.9, 1.1)}
    assert isinstance(config.random_state, int)


def test_epochs_0_is_refused_before_the_guide_functions(monkeypatch):
    # it passed the segmenter's check and was refused by TrainConfig once the guide functions were fitted
    monkeypatch.setattr(GuideFunctionFitter, "fit", lambda *a, **k: pytest.fail("stage 1 started"))
    d = make_instances(n_images=2, shape=(32, 32), random_state=0)
    with pytest.raises(ValueError, match="epochs"):
        HarmonicSegmenter(epochs=0).fit(d.images, d.labels)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(fg_weight=1e7), r"fg_weight must be a finite number >= 0 and <= 1e\+06; got 10000000.0"),
        (dict(boundary_weight=np.inf), "boundary_weight must be a finite number >= 0"),
        (dict(amp="fp16"), "amp must be a bool or one of"),
        (dict(flips="yes"), "flips must be a bool; got 'yes'"),
        (dict(device="gpu"), "device must be 'auto', 'cpu', 'cuda'"),
        (dict(scale_range=(0.5, np.inf)), "scale_range must be None or"),
        (dict(verbose=-1), "verbose must be an integer >= 0"),
    ],
)
def test_train_config_refuses_what_the_segmenter_refuses(kwargs, match, monkeypatch):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)  # TrainConfig accepted the first four
    monkeypatch.setattr(GuideFunctionFitter, "fit", lambda *a, **k: pytest.fail("stage 1 started"))
    d = make_instances(n_images=2, shape=(32, 32), random_state=0)
    name = next(iter(kwargs))
    with pytest.raises((ValueError, TypeError), match=name):
        HarmonicSegmenter(**kwargs).fit(d.images, d.labels)


def test_train_config_keeps_its_own_rules():
    assert TrainConfig(max_time=0.0, crop_size=4).crop_size == 4  # the trainer checks the crop against the network
    assert TrainConfig(scale_range=[1, 2]).scale_range == (1.0, 2.0)
    with pytest.raises(ValueError, match="epochs must be an integer >= 1; got True"):
        TrainConfig(epochs=True)
    with pytest.raises(ValueError, match="max_time must be a number >= 0 or None"):
        TrainConfig(max_time=np.inf)
