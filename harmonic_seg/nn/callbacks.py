"""Callbacks of the training loop: checkpoints, early stopping and progress reports.

:class:`~harmonic_seg.nn.Trainer` builds them from its
:class:`~harmonic_seg.nn.TrainConfig` (``checkpoint_path``, ``verbose``,
``patience``) and calls their hooks as it calls those of the callbacks it is
given (:class:`~harmonic_seg.nn.Callback`), in this order: after every epoch
the checkpoint is written, the progress reported, the given callbacks called,
then early stopping decides (``Trainer.callbacks_`` lists them all). They read
the trainer's state (its history, ``best_epoch_``, ``epochs_since_best_``,
``planner_``) and may set ``trainer.stop_training``.
"""

from __future__ import annotations

import logging
import os

import torch

from ._train_utils import Callback

logger = logging.getLogger(__name__)

__all__ = ["Checkpoint", "EarlyStopping", "EpochLogger", "ProgressBar"]


class Checkpoint(Callback):
    """Write the trainer's state after every epoch, for ``Trainer.fit(..., resume=True)``.

    The weights, the optimiser, schedule and loss-scaling states, the history,
    the best weights so far and the random generators' states go to ``path``
    (written to a temporary file first, then renamed: a checkpoint is never
    half written).

    Parameters
    ----------
    path : str or path-like
    """

    def __init__(self, path):
        self.path = path

    def on_epoch_end(self, trainer, record):
        path = os.fspath(self.path)
        tmp = f"{path}.tmp{os.getpid()}"
        torch.save(trainer._checkpoint_state(), tmp)
        os.replace(tmp, path)


class EarlyStopping(Callback):
    """Stop training after ``patience`` epochs without improvement of the monitored loss.

    The monitored loss is the validation loss, or the training loss without
    validation (``trainer.monitor_``); ``trainer.epochs_since_best_`` counts
    the epochs since it last improved. Sets ``trainer.stopped_early_``.

    Parameters
    ----------
    patience : int
    """

    def __init__(self, patience):
        self.patience = patience

    def on_epoch_end(self, trainer, record):
        if trainer.epochs_since_best_ >= self.patience:
            trainer.stopped_early_ = trainer.stop_training = True
            logger.info("Early stopping after epoch %d (best epoch %s).", record["epoch"], trainer.best_epoch_)


class ProgressBar(Callback):
    """A progress bar over the epochs (tqdm), with the last losses.

    With a time budget (``max_time``) its length is the planned number of
    epochs, updated after every epoch.
    """

    def __init__(self):
        self.bar_ = None

    def on_train_begin(self, trainer):
        from tqdm.auto import tqdm

        total = trainer.config.epochs if trainer.config.max_time is None else None
        self.bar_ = tqdm(total=total, initial=len(trainer.history), desc="epochs", unit="epoch")

    def on_epoch_end(self, trainer, record):
        if self.bar_ is None:
            return
        if trainer.planner_ is not None:
            self.bar_.total = trainer.planner_.planned
        self.bar_.update(1)
        val = record["val_loss"]
        self.bar_.set_postfix(loss=f"{record['train_loss']:.4f}", **({"val": f"{val:.4f}"} if val is not None else {}))

    def on_train_end(self, trainer):
        self.close()

    def close(self):
        """Close the bar (also when training ends with an error)."""
        if self.bar_ is not None:
            self.bar_.close()
            self.bar_ = None


class EpochLogger(Callback):
    """One ``INFO`` log record per epoch: the losses, the learning rate and the duration."""

    def on_epoch_end(self, trainer, record):
        total = trainer.config.epochs if trainer.planner_ is None else trainer.planner_.planned
        val = record["val_loss"]
        logger.info("epoch %d/%d train_loss=%.5f val_loss=%s lr=%.2e (%.1fs)", record["epoch"], total,
                    record["train_loss"], "n/a" if val is None else f"{val:.5f}", record["lr"], record["dur"])
