"""HarmonicSegmenter(warm_start=True): fit goes on training the fitted (or loaded) network."""

import numpy as np
import pytest
import torch

from harmonic_seg import HarmonicSegmenter, Network
from harmonic_seg.nn import Callback
from harmonic_seg.synthetic import make_instances

TINY = dict(network=Network(depth=2, base_width=4), epochs=2, steps_per_epoch=2, batch_size=2, crop_size=32,
            num_threads=1,
            validation_fraction=0.34)


@pytest.fixture(scope="module")
def data():
    d = make_instances(n_images=6, shape=(48, 48), n_instances=(3, 6), random_state=0)
    return d.images[:3], d.labels[:3], d.images[3:], d.labels[3:]


class _Weights(Callback):
    """The weights the training loop starts from."""

    def on_train_begin(self, trainer):
        self.start = {k: v.detach().clone() for k, v in trainer.module.state_dict().items()}


def _state(seg):
    return {k: v.detach().clone() for k, v in seg.module_.state_dict().items()}


def test_warm_start_goes_on_from_the_fitted_weights_and_keeps_the_guides(data):
    X1, y1, X2, y2 = data
    seg = HarmonicSegmenter(random_state=0, **TINY).fit(X1, y1)
    before, guides, module = _state(seg), seg.guides_, seg.module_
    phases = guides.guides_.phases.copy()
    spy = _Weights()
    seg.set_params(warm_start=True, callbacks=[spy], epochs=3).fit(X2, y2)
    assert all(torch.equal(spy.start[k], v) for k, v in before.items())  # started from the fitted weights
    assert any(not torch.equal(seg.module_.state_dict()[k], v) for k, v in before.items())  # and trained on
    assert seg.module_ is module and seg.guides_ is guides and np.array_equal(seg.guides_.guides_.phases, phases)
    assert [h["epoch"] for h in seg.history_] == [1, 2, 3, 4, 5] and seg.n_epochs_ == 3
    # warm_start=False starts anew: new guides, new network, new history
    seg.set_params(warm_start=False, callbacks=None).fit(X2, y2)
    assert seg.guides_ is not guides and seg.module_ is not module and len(seg.history_) == 3


def test_warm_start_on_an_unfitted_segmenter_is_a_plain_fit(data):
    X1, y1, _, _ = data
    seg = HarmonicSegmenter(warm_start=True, random_state=0, **TINY).fit(X1, y1)
    ref = HarmonicSegmenter(random_state=0, **TINY).fit(X1, y1)
    assert len(seg.history_) == 2
    np.testing.assert_array_equal(seg.predict(X1[:1])[0], ref.predict(X1[:1])[0])


def test_warm_start_from_a_loaded_model(data, tmp_path):
    X1, y1, X2, y2 = data
    seg = HarmonicSegmenter(scale="auto", random_state=0, **TINY).fit(X1, y1)
    seg.save(tmp_path / "m")
    loaded = HarmonicSegmenter.load(tmp_path / "m")
    before = _state(loaded)
    spy = _Weights()
    loaded.set_params(warm_start=True, callbacks=[spy]).fit(X2, y2)
    assert all(torch.equal(spy.start[k], v) for k, v in before.items())
    assert len(loaded.history_) == 4 and loaded.scale_ == seg.scale_
    assert np.array_equal(loaded.guides_.guides_.phases, seg.guides_.guides_.phases)


def test_warm_start_refuses_what_the_network_cannot_continue_with(data):
    X1, y1, X2, y2 = data
    seg = HarmonicSegmenter(random_state=0, **TINY).fit(X1, y1)
    history = list(seg.history_)
    rgb = [np.stack([im] * 3, axis=-1) for im in X2]
    with pytest.raises(ValueError, match=r"takes 1 channel\(s\); X has 3"):
        seg.set_params(warm_start=True).fit(rgb, y2)
    with pytest.raises(ValueError, match="network.depth=2"):
        seg.set_params(network=Network(depth=3, base_width=4)).fit(X2, y2)
    with pytest.raises(ValueError, match="scale_=1"):
        seg.set_params(network=Network(depth=2, base_width=4), scale=0.5).fit(X2, y2)
    assert seg.history_ == history  # nothing trained
    seg.set_params(scale="auto", network=Network(depth=2, base_width="auto")).fit(X2, y2)  # "auto": the fitted ones
    assert seg.scale_ == 1.0 and len(seg.history_) == 4
