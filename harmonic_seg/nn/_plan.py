"""Epochs of a training loop on a wall-clock budget (``TrainConfig.max_time``).

The first epoch of a run warms up (allocations, caches) and is not taken as
typical. After every epoch the time per epoch is estimated (median of the
last :data:`WINDOW` epochs after the warm-up, the warm-up's own time while
there is no other) and the number of epochs re-planned: as many as fit in
the time left. The cosine schedule anneals over the planned epochs, so it
ends on the last one even when the machine slows down or speeds up during
the run; until an epoch after the warm-up has been timed it keeps the
initial learning rate (the start of the cosine is flat).

Epochs that cover the training images once can be long (a minute each for
full-size images on a CPU): a budget of a few such epochs would be planned
coarsely and a first epoch could outlast it. So every step checks the end of
the budget; the warm-up epoch also stops after ``1 / MIN_EPOCHS`` of the
budget; and when the steps per epoch are the library's to choose, the later
epochs take as many as fit in that share (at least :data:`MIN_EPOCHS` epochs).
"""

from __future__ import annotations

import math
import time

import numpy as np

__all__ = ["EpochPlanner", "cosine_lr", "validation_split"]

#: Epoch times the plan takes the median of (the most recent ones after the warm-up).
WINDOW = 5
#: Fewest epochs a budget is cut into when the epochs' length is the library's to choose: the warm-up
#: epoch stops after ``1 / MIN_EPOCHS`` of the budget, and the later ones take as many steps as fit in it.
MIN_EPOCHS = 20
#: Epochs :meth:`EpochPlanner.shift` leaves for the end of the schedule when it moves the end of the loop
#: earlier than now (the learning rate then falls to its end over them instead of training stopping at a
#: high rate).
TAIL_EPOCHS = 2


def cosine_lr(epoch, n_epochs, lr0, eta_min):
    """Learning rate of the 0-based ``epoch`` of a cosine schedule over ``n_epochs``
    (``torch.optim.lr_scheduler.CosineAnnealingLR``'s values)."""
    progress = min(epoch, n_epochs) / max(n_epochs, 1)
    return eta_min + (lr0 - eta_min) * (1.0 + math.cos(math.pi * progress)) / 2.0


def validation_split(n, fraction, seed):
    """The held-out and the training images of :class:`~harmonic_seg.nn.Trainer`.

    Parameters
    ----------
    n : int
        Number of images.
    fraction : float
        ``validation_fraction``: ``round(fraction * n)`` images are held out,
        at least one when ``fraction > 0`` and ``n >= 2``, never all.
    seed : int or numpy.random.SeedSequence
        The split's seed (a SeedSequence spawned from the run's seed).

    Returns
    -------
    val, train : ndarray of int
        Sorted indices.
    """
    n_val = int(round(fraction * n))
    if fraction > 0:
        n_val = max(1, n_val) if n >= 2 else 0
    n_val = min(n_val, n - 1)
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[:n_val]), np.sort(perm[n_val:])


class EpochPlanner:
    """Plans the epochs of a loop that must end within ``seconds`` of its creation.

    Parameters
    ----------
    seconds : float
        Wall-clock budget of the loop.
    start_epoch : int, default=0
        Epochs already done (a resumed run); the plan counts them.
    warmup : int, default=1
        Epochs of this run not taken as typical.
    """

    def __init__(self, seconds, *, start_epoch=0, warmup=1):
        self.seconds = float(seconds)
        self.started = time.perf_counter()
        self.deadline = self.started + self.seconds
        self._last = self.started
        self.start_epoch = int(start_epoch)
        self.warmup = int(warmup)
        self.durations = []
        self.planned = None  # total epochs, done ones included

    @property
    def timed(self):
        """Whether an epoch after the warm-up has been timed (the plan then sets the schedule)."""
        return len(self.durations) > self.warmup

    def seconds_per_epoch(self):
        """Median of the recent epoch times after the warm-up (the warm-up's while there is no other)."""
        recent = self.durations[self.warmup:] or self.durations
        return float(np.median(recent[-WINDOW:]))

    def epoch_end(self, epochs_done):
        """Record the end of an epoch; return True when no further epoch fits in the budget.

        Parameters
        ----------
        epochs_done : int
            Epochs done so far (done ones of a resumed run included).
        """
        now = time.perf_counter()
        self.durations.append(now - self._last)
        self._last = now
        return self._plan(epochs_done, now)

    def _plan(self, epochs_done, now):
        fit = math.floor((self.deadline - now) / max(self.seconds_per_epoch(), 1e-9))
        self.planned = int(epochs_done + max(fit, 0))
        return fit <= 0

    def shift(self, seconds, epochs_done, *, paused=0.0):
        """Move the end of the loop by ``seconds`` (earlier when negative) and plan again.

        ``paused``: seconds spent since the last epoch's end on something else
        than training (left out of the next epoch's time). An end moved
        earlier still leaves :data:`TAIL_EPOCHS` epochs (never more than the
        end before the move), so that the schedule ends rather than stops.
        Returns True when no further epoch fits.
        """
        now = time.perf_counter()
        tail = min(self.deadline, now + (TAIL_EPOCHS + 0.5) * self.seconds_per_epoch())
        self.deadline = max(self.deadline + float(seconds), tail)
        self._last += float(paused)
        return self._plan(epochs_done, now)

    def epoch_deadline(self, epoch_start):
        """When the epoch starting at ``epoch_start`` must stop: the end of the budget, and for the warm-up
        epoch also ``1 / MIN_EPOCHS`` of the budget after its start (a long epoch must not eat the budget)."""
        if not self.durations:
            return min(self.deadline, epoch_start + self.seconds / MIN_EPOCHS)
        return self.deadline

    def steps_per_epoch(self, steps, steps_done, seconds):
        """Steps of the epochs after the warm-up: ``steps``, or fewer so that an epoch takes at most
        ``1 / MIN_EPOCHS`` of the budget (from the warm-up's ``steps_done`` steps in ``seconds``)."""
        if len(self.durations) != 1:
            return steps
        per_step = seconds / max(steps_done, 1)
        return int(max(1, min(steps, math.floor(self.seconds / MIN_EPOCHS / max(per_step, 1e-9)))))

    def lr(self, epoch, lr0, eta_min):
        """Cosine learning rate of the 0-based ``epoch`` over the planned epochs (``lr0`` until planned)."""
        if not self.timed or self.planned is None:
            return lr0
        return cosine_lr(epoch, self.planned, lr0, eta_min)
