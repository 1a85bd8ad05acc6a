"""Checkpoints, progress reports and early stopping are callbacks, built from the config or given by a user."""

import logging

import numpy as np
import pytest
import torch

from harmonic_seg.guides import random_guides
from harmonic_seg.nn import Callback, Checkpoint, EarlyStopping, EpochLogger, ProgressBar, TrainConfig, Trainer
from harmonic_seg.nn._threads import small_op_threads
from harmonic_seg.nn.unet import HarmonicUNet

GUIDES = random_guides(4, (48, 48), random_state=0)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _data(n=3):
    rng = np.random.default_rng(0)
    labels = [np.kron(rng.integers(0, 4, (6, 6)), np.ones((8, 8), int)) for _ in range(n)]
    images = [(lab > 0).astype(np.float32)[None] + 0.1 * rng.standard_normal((1, 48, 48)).astype(np.float32)
              for lab in labels]
    return images, labels


def _trainer(callbacks=None, **kw):
    torch.manual_seed(0)
    base = dict(epochs=3, steps_per_epoch=1, batch_size=2, crop_size=32, validation_fraction=0.34, random_state=0)
    net = HarmonicUNet(1, 4, GUIDES, depth=2, base_width=4)
    return Trainer(net, GUIDES, TrainConfig(**{**base, **kw}), callbacks=callbacks)


class Record(Callback):
    def __init__(self):
        self.threads = []

    def on_epoch_end(self, trainer, record):
        with small_op_threads() as n:  # what a callback running the mean shift gets
            self.threads.append(n)


def test_the_config_builds_the_callbacks_around_the_given_ones(tmp_path):
    mine = Record()
    tr = _trainer([mine], checkpoint_path=str(tmp_path / "c.pt"), verbose=2, patience=5).fit(*_data())
    kinds = [type(cb) for cb in tr.callbacks_]
    assert kinds == [Checkpoint, ProgressBar, EpochLogger, Record, EarlyStopping]
    assert tr.callbacks == [mine] and (tmp_path / "c.pt").exists()
    assert [type(cb) for cb in _trainer().fit(*_data()).callbacks_] == []


def test_a_given_early_stopping_stops_as_the_config_does():
    images, labels = _data()
    by_config = _trainer(epochs=20, learning_rate=1e-9, patience=1, lr_schedule="constant").fit(images, labels)
    given = _trainer([EarlyStopping(1)], epochs=20, learning_rate=1e-9, lr_schedule="constant").fit(images, labels)
    assert by_config.stopped_early_ and given.stopped_early_
    assert [r["train_loss"] for r in given.history] == [r["train_loss"] for r in by_config.history]
    assert given.epochs_since_best_ == 1 and given.monitor_ == "val_loss"


def test_the_progress_bar_is_closed_when_training_fails():
    class Fail(Callback):
        def on_epoch_end(self, trainer, record):
            raise RuntimeError("boom")

    tr = _trainer([Fail()], verbose=1)
    with pytest.raises(RuntimeError, match="boom"):
        tr.fit(*_data())
    (bar,) = [cb for cb in tr.callbacks_ if isinstance(cb, ProgressBar)]
    assert bar.bar_ is None


def test_the_epoch_logger_logs_every_epoch(caplog):
    with caplog.at_level(logging.INFO, logger="harmonic_seg.nn.callbacks"):
        _trainer(verbose=2, epochs=2).fit(*_data())
    assert [m for m in caplog.messages if m.startswith("epoch ")][1].startswith("epoch 2/2 train_loss=")


def test_the_trainer_sets_threads_where_the_segmenter_does():
    # num_threads goes through the one context that sets torch's threads: the callbacks (the
    # segmenter's tuning probe runs the mean shift in one) see the explicit count, not one thread
    rec = Record()
    _trainer([rec], num_threads=2, epochs=2).fit(*_data())
    assert rec.threads == [2, 2] and torch.get_num_threads() == 1
