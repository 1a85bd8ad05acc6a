"""The time budget of :class:`~harmonic_seg.HarmonicSegmenter` (``max_time``).

``fit`` starts a :class:`TimeBudget` when it is called. Stage 1 (the guide
functions) runs first; the training loop then gets what is left of
``max_time`` less a reserve for the post-processing tuning, and plans its
epochs to end on it (``max_time`` of :class:`harmonic_seg.nn.TrainConfig`).

The tuning's cost depends on what the trained network predicts (an
untrained one finds little foreground, a trained one finds the objects) and
on the tuning grid, so it is measured rather than modelled: the reserve
starts as :data:`INITIAL_TUNING_SHARE` of the time left, and once
:data:`PROBE_AT` of the training time has passed :class:`TuningProbe` runs
the tuning itself on one held-out image with the network as it is, scales
the time by the number of held-out images and by :data:`TUNING_SAFETY`, and moves the end of training by
the difference (the epochs are re-planned; the probe's own time comes out of
training). The tuning never gets more than :data:`MAX_TUNING_SHARE` of the
budget: where all held-out images would take longer, it runs on as many as
fit in that share, chosen across the range of their foreground areas
(:func:`tuning_subset`), and not at all (with a warning) where not even one
does.
"""

from __future__ import annotations

import logging
import time

import numpy as np

__all__ = ["INITIAL_TUNING_SHARE", "MAX_TUNING_SHARE", "PROBE_AT", "TUNING_SAFETY", "TimeBudget", "TuningProbe",
           "tuning_subset"]

logger = logging.getLogger(__name__)

#: Share of the time left after stage 1 kept for the tuning until it is measured (on worms, leaves and
#: HeLa cells the tuning took 7-17 % of a 12-minute fit).
INITIAL_TUNING_SHARE = 0.15
#: Share of the training time after which the tuning is measured on one held-out image.
PROBE_AT = 0.25
#: Largest share of ``max_time`` the post-processing tuning may take (a tuning on many large held-out
#: images, such as 8 DIC-HeLa frames of 512 x 512 at about a minute each, would otherwise leave the
#: network little training).
MAX_TUNING_SHARE = 0.25
#: The probe's time per image is multiplied by this: the network at the end of training finds more
#: objects than at the probe, and its tuning takes longer.
TUNING_SAFETY = 1.25


def tuning_subset(labels, n):
    """Indices of ``n`` of the label maps, spread evenly over the range of their foreground areas (one: the median)."""
    order = np.argsort([np.count_nonzero(lab) for lab in labels], kind="stable")
    if n >= len(order):
        return sorted(int(i) for i in order)
    picks = [(len(order) - 1) // 2] if n == 1 else np.round(np.linspace(0, len(order) - 1, n)).astype(int)
    return sorted(int(order[p]) for p in picks)


class TimeBudget:
    """Wall-clock seconds of one ``fit``, counted from the creation of the object.

    Parameters
    ----------
    max_time : float or None
        The budget; None: no budget (:attr:`active` is False).
    """

    def __init__(self, max_time):
        self.max_time = None if max_time is None else float(max_time)
        self.start = time.perf_counter()
        self.marks = {}

    @property
    def active(self):
        return self.max_time is not None

    def elapsed(self):
        return time.perf_counter() - self.start

    def mark(self, name):
        """Record the seconds elapsed so far under ``name``."""
        self.marks[name] = self.elapsed()
        return self.marks[name]

    def left(self):
        """Seconds left of the budget (negative when it is overspent)."""
        return self.max_time - self.elapsed()

    def training_seconds(self, reserve=0.0):
        """Seconds for the training loop: what is left less ``reserve`` (never below 0)."""
        left = self.left() - float(reserve)
        if left <= 0:
            logger.warning(
                "max_time=%gs is spent before training (%.1fs so far, %.1fs kept for the post-processing tuning): "
                "one epoch is trained. Raise max_time.", self.max_time, self.elapsed(), reserve)
        return max(0.0, left)


class TuningProbe:
    """Training callback that measures the post-processing tuning partway through a budgeted training.

    After the first epoch that ends past ``at`` of the trainer's budget, it
    tunes the post-processing of ``est`` on the held-out image with the
    median foreground (the tuning ``fit`` runs after training, on one image)
    and takes that time, times the number of held-out images, as the
    tuning's reserve; the trainer's end moves by the change of reserve
    (:meth:`harmonic_seg.nn._plan.EpochPlanner.shift`). The fitted
    post-processing it sets is reset by ``fit`` after training.

    Parameters
    ----------
    est : HarmonicSegmenter
        Whose ``module_`` is the network being trained.
    chw : list of ndarray of shape (C, H, W)
        The held-out images, normalised, at full size.
    labels : list of ndarray of shape (H, W)
        Their label maps.
    reserve : float
        The reserve the trainer's budget was set with.
    at : float, default=PROBE_AT
    cap : float or None, default=None
        Most seconds the tuning may take; the number of images it tunes on is
        lowered to fit (0: not even one image fits, and the tuning is skipped).

    Attributes
    ----------
    reserve : float
        The current reserve (the measured one once measured).
    measured : float or None
        Seconds of the tuning on one image, None until measured.
    n_images : int
        Held-out images the tuning will use (all until measured).
    """

    def __init__(self, est, chw, labels, reserve, at=PROBE_AT, cap=None):
        self.est, self.chw, self.labels = est, chw, labels
        self.reserve, self.at, self.measured = float(reserve), float(at), None
        self.cap = None if cap is None else float(cap)
        self.n_images = len(chw)

    def on_train_begin(self, trainer):
        pass

    def on_train_end(self, trainer):
        pass

    def on_epoch_end(self, trainer, record):
        planner = getattr(trainer, "planner_", None)
        if self.measured is not None or planner is None:
            return
        if time.perf_counter() - planner.started < self.at * planner.seconds:
            return
        fg = [np.count_nonzero(lab) for lab in self.labels]
        k = int(np.argsort(fg)[(len(fg) - 1) // 2])
        quiet = logging.getLogger("harmonic_seg.clustering._estimator")
        was_disabled, quiet.disabled = quiet.disabled, True  # this tuning's result is not the fit's
        t0 = time.perf_counter()
        try:
            self.est._reset_postprocessing()
            self.est._tune([self.chw[k]], [self.labels[k]], "sbd")
        finally:
            quiet.disabled = was_disabled
        self.measured = time.perf_counter() - t0
        per_image = self.measured * TUNING_SAFETY
        if self.cap is not None and per_image * len(self.chw) > self.cap:
            self.n_images = int(min(len(self.chw), self.cap // max(per_image, 1e-9)))
        new = per_image * self.n_images
        logger.info("post-processing tuning timed at %.2fs on one of %d held-out images: %.1fs kept for it "
                    "on %d of them (%.1fs before)", self.measured, len(self.chw), new, self.n_images, self.reserve)
        if planner.shift(self.reserve - new, record["epoch"], paused=self.measured):
            trainer.stop_training = True
        self.reserve = new
