"""The training parameters are declared once, for HarmonicSegmenter and TrainConfig alike."""

import inspect
from dataclasses import fields

import numpy as np
import pytest

pytest.importorskip("torch")

from harmonic_seg import Augmentation, GuideFunctionFitter, HarmonicSegmenter, Loss, Network  # noqa: E402
from harmonic_seg._train_params import (  # noqa: E402
    AUGMENTATION_PARAMETERS,
    LOSS_PARAMETERS,
    TRAINING_PARAMETERS,
)
from harmonic_seg.nn import TrainConfig  # noqa: E402
from harmonic_seg.synthetic import make_instances  # noqa: E402


def test_one_declaration_serves_both():
    segmenter_params = inspect.signature(HarmonicSegmenter).parameters
    config_fields = {f.name for f in fields(TrainConfig)}
    for name, constraints in TRAINING_PARAMETERS.items():
        assert name in segmenter_params and name in config_fields, name
        assert HarmonicSegmenter._parameter_constraints[name] is constraints, name
    # the nested training options (loss, augmentation) declare theirs with the same objects
    for param, field in {**Loss._fields, **Augmentation._fields}.items():
        cls = Loss if field in LOSS_PARAMETERS else Augmentation
        declared = {**LOSS_PARAMETERS, **AUGMENTATION_PARAMETERS}[field]
        assert cls._parameter_constraints[param] is declared and field in config_fields, field


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
                  validation_fraction=0.3, device="cpu", amp=None, num_threads=1, verbose=0)
    assert set(values) == set(TRAINING_PARAMETERS)
    nested = dict(fg_weight=0.5, boundary_weight=0.25, loss="harmonic", scale_range=[0.9, 1.1], flips=False,
                  rotate=True)
    assert set(nested) == set(LOSS_PARAMETERS) | set(AUGMENTATION_PARAMETERS)
    HarmonicSegmenter(network=Network(depth=2, base_width=4), scale=1.0, tune_postprocessing=False, random_state=0,
                      loss=Loss(name="harmonic", fg_weight=0.5, boundary_weight=0.25),
                      augmentation=Augmentation(scale_range=[0.9, 1.1], flips=False, rotate=True),
                      **values).fit(d.images, d.labels)
    config = seen["config"]
    expected = {**values, **nested, "scale_range": (0.9, 1.1), "patience": None}  # early stopping: a callback
    assert {name: getattr(config, name) for name in expected} == expected
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
    name, value = next(iter(kwargs.items()))
    if name in LOSS_PARAMETERS:
        kwargs, name = {"loss": Loss(**{name: value})}, f"loss.{name}"
    elif name in AUGMENTATION_PARAMETERS:
        kwargs, name = {"augmentation": Augmentation(**kwargs)}, f"augmentation.{name}"
    with pytest.raises((ValueError, TypeError), match=name):
        HarmonicSegmenter(**kwargs).fit(d.images, d.labels)


def test_train_config_keeps_its_own_rules():
    assert TrainConfig(max_time=0.0, crop_size=4).crop_size == 4  # the trainer checks the crop against the network
    assert TrainConfig(scale_range=[1, 2]).scale_range == (1.0, 2.0)
    with pytest.raises(ValueError, match="epochs must be an integer >= 1; got True"):
        TrainConfig(epochs=True)
    with pytest.raises(ValueError, match="max_time must be a number >= 0 or None"):
        TrainConfig(max_time=np.inf)
