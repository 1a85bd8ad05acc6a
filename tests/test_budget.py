"""HarmonicSegmenter(max_time=...): the whole fit on a wall-clock budget."""

import time

import numpy as np
import pytest

from harmonic_seg import HarmonicSegmenter, Network
from harmonic_seg._budget import TUNING_SAFETY, TimeBudget, TuningProbe, tuning_subset
from harmonic_seg.synthetic import make_instances

TINY = dict(network=Network(depth=2, base_width=4), steps_per_epoch=2, batch_size=2, crop_size=32, num_threads=1)


@pytest.fixture(scope="module")
def data():
    d = make_instances(n_images=6, shape=(48, 48), n_instances=(3, 6), random_state=0)
    # a first fit and tuning pays the one-time costs of the process (imports), which no budget can plan
    HarmonicSegmenter(epochs=1, validation_fraction=0.2, tune_postprocessing=True, random_state=0, **TINY).fit(
        d.images, d.labels)
    return d.images, d.labels


def test_max_time_bounds_the_whole_fit_and_the_schedule_ends_on_the_last_epoch(data):
    X, y = data
    seg = HarmonicSegmenter(max_time=5.0, epochs=2, validation_fraction=0.2, learning_rate=1e-3, random_state=0,
                            tune_postprocessing=False, **TINY)
    t0 = time.perf_counter()
    seg.fit(X, y)
    wall = time.perf_counter() - t0
    plan = seg.time_budget_
    assert abs(wall - 5.0) <= 0.1 * 5.0 + 0.5, (wall, plan)
    # epochs=2 was not used: the budget planned them, and the cosine schedule ended on the last one
    assert seg.n_epochs_ == len(seg.history_) == plan["planned_epochs"] == seg.history_[-1]["planned_epochs"] > 2
    assert seg.history_[0]["lr"] == 1e-3 and seg.history_[-1]["lr"] < 0.05 * 1e-3
    assert plan["max_time"] == 5.0 and plan["fit_seconds"] == pytest.approx(wall, abs=0.1)
    assert plan["tuning_reserve_seconds"] == 0 and plan["tuning_probe_seconds"] is None
    assert plan["stage1_seconds"] + plan["training_seconds"] + plan["tuning_seconds"] <= plan["fit_seconds"] + 1e-6


def test_max_time_keeps_a_measured_reserve_for_the_tuning(data, monkeypatch):
    X, y = data
    monkeypatch.setattr("harmonic_seg._fitting.MAX_TUNING_SHARE", 1.0)  # here one image takes a third of the budget
    seg = HarmonicSegmenter(max_time=10.0, validation_fraction=0.2, tune_postprocessing=True, learning_rate=1e-3,
                            random_state=0, **TINY)
    t0 = time.perf_counter()
    seg.fit(X, y)
    wall = time.perf_counter() - t0
    plan = seg.time_budget_
    # the tuning's cost is measured a quarter of the way through training, with the network of that moment,
    # on one held-out image: on this tiny problem it takes about 3 s on an idle 2-core machine (a third of the
    # budget; twice that on a loaded one still ends before the training's end, so the schedule can finish),
    # and the time of that measurement is the most the fit may run over (documented under max_time)
    assert wall <= 10.0 + plan["tuning_probe_seconds"] + 0.5, (wall, plan)
    assert plan["tuning_probe_seconds"] > 0
    assert plan["tuning_reserve_seconds"] == pytest.approx(plan["tuning_probe_seconds"] * TUNING_SAFETY)
    assert plan["tuning_seconds"] > 0 and seg.tuning_results_ and seg.validation_indices_
    assert seg.n_epochs_ == plan["planned_epochs"] and seg.history_[-1]["lr"] < 0.05 * 1e-3


def test_max_time_without_tuning_and_defaults(data):
    X, y = data
    seg = HarmonicSegmenter(max_time=1.5, validation_fraction=0, random_state=0, **TINY).fit(X, y)
    assert seg.time_budget_["tuning_reserve_seconds"] == 0 and seg.time_budget_["fit_seconds"] <= 1.5 + 0.5
    plain = HarmonicSegmenter(epochs=2, validation_fraction=0, random_state=0, **TINY).fit(X, y)
    assert plain.time_budget_ is None and plain.n_epochs_ == 2 and "planned_epochs" not in plain.history_[0]
    for bad in (0, -1.0, "1"):
        with pytest.raises(ValueError, match="max_time"):
            HarmonicSegmenter(max_time=bad).fit(X, y)


def test_time_budget_warns_when_spent(caplog):
    budget = TimeBudget(0.01)
    time.sleep(0.02)
    with caplog.at_level("WARNING", logger="harmonic_seg._budget"):
        assert budget.training_seconds(1.0) == 0.0
    assert "spent before training" in caplog.text


class _Planner:
    def __init__(self):
        self.started, self.seconds, self.shifts = time.perf_counter() - 10.0, 10.0, []

    def shift(self, seconds, epochs_done, *, paused=0.0):
        self.shifts.append((seconds, epochs_done, paused))
        return seconds < -100


class _Trainer:
    def __init__(self):
        self.planner_, self.stop_training = _Planner(), False


class _Est:
    def __init__(self):
        self.tuned = []

    def _reset_postprocessing(self):
        self.tuned.append("reset")

    def _tune(self, chw, labels, scoring):
        self.tuned.append(len(labels[0][labels[0] > 0]))
        time.sleep(0.05)


def test_tuning_probe_times_one_image_and_moves_the_end():
    labels = [np.zeros((4, 4), int) for _ in range(3)]
    for lab, n in zip(labels, (9, 3, 5)):
        lab.flat[:n] = 1
    est, trainer = _Est(), _Trainer()
    probe = TuningProbe(est, [None] * 3, labels, reserve=1.0)
    probe.on_epoch_end(trainer, {"epoch": 4})
    assert est.tuned == ["reset", 5]  # the image of median foreground
    (shift, done, paused), = trainer.planner_.shifts
    # three images at the measured time, with the safety factor for the network at the end of training
    assert probe.measured >= 0.05 and probe.reserve == pytest.approx(3 * probe.measured * TUNING_SAFETY)
    assert shift == pytest.approx(1.0 - probe.reserve) and done == 4 and paused == probe.measured
    probe.on_epoch_end(trainer, {"epoch": 5})  # once only
    assert len(trainer.planner_.shifts) == 1 and not trainer.stop_training


@pytest.mark.parametrize("cap, expected", [(None, 3), (1000.0, 3), (0.14, 2), (0.07, 1), (0.01, 0)])
def test_tuning_probe_lowers_the_images_to_fit_the_cap(cap, expected):
    labels = [np.zeros((4, 4), int) for _ in range(3)]
    probe = TuningProbe(_Est(), [None] * 3, labels, reserve=1.0, cap=cap)
    probe.measured = None
    probe.on_epoch_end(_Trainer(), {"epoch": 1})
    per_image = probe.measured * TUNING_SAFETY  # about 0.05 s (the fake tuning sleeps that long), times the factor
    if cap is not None and 3 * per_image > cap:
        expected = int(cap // per_image)
    assert probe.n_images == expected and probe.reserve == pytest.approx(expected * per_image)


def test_tuning_subset_spreads_over_the_foreground_areas():
    labels = [np.zeros((10, 10), int) for _ in range(7)]
    for lab, n in zip(labels, (50, 10, 70, 30, 0, 60, 20)):
        lab.flat[:n] = 1
    assert tuning_subset(labels, 3) == [2, 3, 4]  # the smallest (0), the median (30) and the largest (70) area
    assert tuning_subset(labels, 1) == [3] and tuning_subset(labels, 9) == list(range(7))


def test_max_time_skips_a_tuning_that_does_not_fit_its_share(data, caplog):
    X, y = data
    seg = HarmonicSegmenter(max_time=5.0, validation_fraction=0.2, tune_postprocessing=True, random_state=0, **TINY)
    with caplog.at_level("WARNING", logger="harmonic_seg._fitting"):
        seg.fit(X, y)
    plan = seg.time_budget_
    if plan["tuning_probe_seconds"] > 0.25 * 5.0:  # one held-out image takes longer than the tuning's share
        assert plan["tuning_images"] == 0 and plan["tuning_reserve_seconds"] == 0.0
        assert "Raise max_time to tune" in caplog.text and not seg.tuning_results_
    else:  # a fast machine: the tuning fits and runs
        assert plan["tuning_images"] >= 1 and seg.tuning_results_
