"""The training loop on a wall-clock budget (TrainConfig.max_time, EpochPlanner)."""

import math
import time

import numpy as np
import pytest
import torch

from harmonic_seg.guides import random_guides
from harmonic_seg.nn._plan import EpochPlanner, cosine_lr, validation_split
from harmonic_seg.nn.trainer import Callback, TrainConfig, Trainer
from harmonic_seg.nn.unet import HarmonicUNet

GUIDES = random_guides(4, (72, 80), random_state=0)


def make_data(n=3, shape=(72, 80), seed=0):
    """Images of bright rectangles on a noisy background with their label maps."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for _ in range(n):
        lab = np.zeros(shape, np.int32)
        for k in range(1, 7):
            y, x = rng.integers(0, shape[0] - 14), rng.integers(0, shape[1] - 14)
            lab[y:y + rng.integers(6, 14), x:x + rng.integers(6, 14)] = k
        img = (lab > 0).astype(np.float32) + 0.1 * rng.standard_normal(shape).astype(np.float32)
        images.append(img[None])
        labels.append(lab)
    return images, labels


def make_net(seed=0):
    torch.manual_seed(seed)
    return HarmonicUNet(1, 4, GUIDES, depth=2, base_width=8)


def cfg(**kw):
    base = dict(epochs=3, steps_per_epoch=3, batch_size=2, crop_size=64, validation_fraction=0.34,
                random_state=0, num_threads=1)
    base.update(kw)
    return TrainConfig(**base)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def warm():
    """A first optimiser imports torch's compiler stack (seconds): a one-time cost of the process, not of a plan."""
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])


def test_cosine_lr_matches_torch_scheduler():
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=7, eta_min=1e-5)
    for epoch in range(7):
        assert math.isclose(cosine_lr(epoch, 7, 1e-3, 1e-5), opt.param_groups[0]["lr"], rel_tol=1e-9)
        opt.step()
        sched.step()
    assert cosine_lr(7, 7, 1e-3, 1e-5) == pytest.approx(1e-5)


def test_validation_split_is_the_trainers():
    images, labels = make_data(n=5)
    trainer = Trainer(make_net(), GUIDES, cfg(epochs=1, validation_fraction=0.4, random_state=3)).fit(images, labels)
    val, train = validation_split(5, 0.4, np.random.SeedSequence(3).spawn(2)[0])
    assert val.tolist() == trainer.val_indices_.tolist() and train.tolist() == trainer.train_indices_.tolist()
    assert [len(validation_split(n, f, 0)[0]) for n, f in [(1, 0.5), (2, 0.1), (10, 0.0), (3, 0.99)]] == [0, 1, 0, 2]


def test_planner_plans_from_the_epochs_after_the_warm_up(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(time, "perf_counter", lambda: now[0])
    planner = EpochPlanner(10.0)
    assert planner.lr(0, 1.0, 0.0) == 1.0  # nothing timed yet: the initial rate
    now[0] += 3.0  # the warm-up epoch: slow
    assert not planner.epoch_end(1)
    assert planner.planned == 1 + 2 and planner.lr(1, 1.0, 0.0) == 1.0  # only the warm-up timed: rate kept
    for k in range(2, 5):
        now[0] += 1.0
        assert not planner.epoch_end(k)
    assert planner.planned == 4 + 4  # 4 s left, 1 s per epoch
    assert planner.lr(4, 1.0, 0.0) == pytest.approx(cosine_lr(4, 8, 1.0, 0.0))
    # 0.5 s spent on something else, and the end moved 1 s earlier: 2.5 s left -> two more epochs
    now[0] += 0.5
    assert not planner.shift(-1.0, 4, paused=0.5)
    assert planner.deadline == 109.0 and planner.planned == 6
    # an end moved before now still leaves two epochs for the end of the schedule
    assert not planner.shift(-5.0, 4)
    assert planner.deadline == 109.0 and planner.planned == 6
    now[0] += 1.0
    assert not planner.epoch_end(5)
    assert planner.durations[-1] == pytest.approx(1.0)  # the pause was left out
    now[0] += 1.0
    assert planner.epoch_end(6)  # the time is out


def test_max_time_plans_the_epochs_and_the_schedule_ends_on_the_last_one(warm):
    images, labels = make_data()
    # epochs=1 is ignored: the budget decides
    config = cfg(epochs=1, max_time=2.0, steps_per_epoch=1, validation_fraction=0, learning_rate=1e-2)
    t0 = time.perf_counter()
    trainer = Trainer(make_net(), GUIDES, config).fit(images, labels)
    wall = time.perf_counter() - t0
    n = len(trainer.history)
    assert n > 3 and trainer.planned_epochs_ == n == trainer.history[-1]["planned_epochs"]
    assert wall <= 2.0 + 0.5
    lrs = [h["lr"] for h in trainer.history]
    assert lrs[0] == 1e-2 and lrs[-1] < 0.05 * 1e-2  # annealed to (almost) eta_min = 1e-4 on the last epoch
    # no check that every epoch's rate is below the last one: a plan that grows when epochs turn out
    # faster moves the cosine back a little, and how often depends on the machine's load


class _Stop(Callback):
    def on_epoch_end(self, trainer, record):
        trainer.stop_training = record["epoch"] >= 2


def test_max_time_keeps_callbacks_and_one_epoch_when_spent():
    images, labels = make_data()
    trainer = Trainer(make_net(), GUIDES, cfg(max_time=0.0)).fit(images, labels)
    assert len(trainer.history) == 1 and trainer.planned_epochs_ == 1
    trainer = Trainer(make_net(), GUIDES, cfg(max_time=60.0), callbacks=[_Stop()]).fit(images, labels)
    assert len(trainer.history) == 2
    with pytest.raises(ValueError, match="max_time"):
        TrainConfig(max_time=-1.0)
    assert Trainer(make_net(), GUIDES, cfg()).fit(images, labels).planned_epochs_ is None


def test_planner_caps_the_warm_up_and_sizes_the_epochs(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(time, "perf_counter", lambda: now[0])
    planner = EpochPlanner(100.0)
    assert planner.epoch_deadline(0.0) == pytest.approx(100.0 / 20)  # the warm-up: 1/20 of the budget
    now[0] = 5.0
    planner.epoch_end(1)
    assert planner.steps_per_epoch(50, 10, 5.0) == 10  # 0.5 s a step: 10 steps in 5 s
    assert planner.steps_per_epoch(4, 10, 5.0) == 4  # never more than asked
    assert planner.epoch_deadline(5.0) == 100.0
    planner.epoch_end(2)
    assert planner.steps_per_epoch(50, 10, 5.0) == 50  # decided after the warm-up only


def test_long_epochs_are_cut_to_fit_the_budget(warm):
    # 12 images of 72 x 80 in crops of 16: 90 steps cover them once, far more than fit in 1.5 s
    images, labels = make_data(n=12)
    config = cfg(max_time=1.5, steps_per_epoch=None, crop_size=16, validation_fraction=0)
    t0 = time.perf_counter()
    trainer = Trainer(make_net(), GUIDES, config).fit(images, labels)
    wall = time.perf_counter() - t0
    steps = [h["steps"] for h in trainer.history]
    assert wall <= 1.5 + 0.5
    assert len(steps) >= 5 and max(steps) < 90 and len(set(steps[1:])) == 1
    assert trainer.history[-1]["lr"] < 0.05 * config.learning_rate
