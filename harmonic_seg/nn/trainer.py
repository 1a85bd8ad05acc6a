"""Training loop for the embedding network: :class:`TrainConfig`, :class:`Trainer`, callbacks.

:meth:`Trainer.fit` checks its input once, then initialises the run
(:meth:`Trainer._initialize`: samplers, optimiser, schedule, a checkpoint to
resume from) and runs epochs (:meth:`Trainer._run_epoch`: the training steps,
the validation loss of :meth:`Trainer._validate`, the record, the schedule and
the best weights). Checkpoints, progress reports and early stopping are
callbacks (:mod:`harmonic_seg.nn.callbacks`), called with the user's.

Validation
----------
With ``validation_fraction > 0`` whole images are held out. The validation
loss is computed once per epoch, in eval mode and without augmentation, on one
*centre crop* of ``crop_size`` of every held-out image (the whole image,
padded and ignored beyond its border, when it is smaller); targets are
computed on the full image first. Centre crops keep the cost and memory of
validation bounded and comparable with the training loss.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import os
import time

import numpy as np
import torch

from .._fit_checks import check_crop_size, clip_crop_size, min_crop_size
from ..guides import GuideFunctions
from ._plan import EpochPlanner, validation_split
from ._seeding import new_seed, run_seeds, torch_rng_scope
from ._threads import torch_threads
from ._train_utils import Callback, TrainConfig, _check_callbacks, check_fit_inputs, resolve_amp, resolve_device
from .callbacks import Checkpoint, EarlyStopping, EpochLogger, ProgressBar
from .data import CropSampler
from .losses import discriminative_loss, harmonic_loss

logger = logging.getLogger(__name__)

__all__ = ["TrainConfig", "Trainer", "Callback", "resolve_device"]

def _state_to_cpu(module):
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


class Trainer:
    """Trains a :class:`~harmonic_seg.nn.unet.HarmonicUNet` on augmented crops.

    Parameters
    ----------
    module : torch.nn.Module
        Network with ``in_channels``, ``n_outputs`` attributes and
        ``forward(x, origin) -> (embedding, fg_logit)``.
    guides : GuideFunctions
        Guides defining the target embeddings (``n_guides == module.n_outputs``).
    config : TrainConfig or None, default=None
    callbacks : list of Callback or None, default=None

    Attributes
    ----------
    history : list of dict
        One record per epoch: ``epoch, train_loss, train_l1, train_fg, val_loss,
        val_l1, lr, dur`` (val entries are None without validation); the last
        record gets ``interrupted=True`` after a KeyboardInterrupt.
    best_epoch_, best_score_ : int, float
        Epoch (1-based) and value of the best monitored loss.
    interrupted_ : bool
    stopped_early_ : bool
    train_indices_, val_indices_ : ndarray
        Images used for training and validation.
    device_ : torch.device
    crop_size_ : int
        Side of the crops used: ``config.crop_size``, clipped to the longest
        side of the training images.
    amp_dtype_ : torch.dtype or None
        Autocast dtype of the run (float16 on CUDA, bfloat16 on CPU), None for
        float32 (:func:`~harmonic_seg.nn.resolve_amp`); ``amp_`` is whether it is set.
    planned_epochs_ : int or None
        With ``config.max_time``: the epochs planned at the end of training
        (the number run, unless early stopping or a callback stopped sooner);
        None without a budget.
    planner_ : EpochPlanner or None
        The plan of a run with ``config.max_time`` (a callback may move its
        end with ``planner_.shift``); None without a budget.
    callbacks_ : list of Callback
        The callbacks of the last ``fit``, in the order they are called: a
        :class:`~harmonic_seg.nn.callbacks.Checkpoint` with
        ``config.checkpoint_path``, a :class:`~harmonic_seg.nn.callbacks.ProgressBar`
        with ``config.verbose >= 1``, an :class:`~harmonic_seg.nn.callbacks.EpochLogger`
        with ``verbose >= 2``, then ``callbacks``, then
        :class:`~harmonic_seg.nn.callbacks.EarlyStopping` with ``config.patience``.
    monitor_ : str
        The monitored loss: ``"val_loss"``, or ``"train_loss"`` without validation.
    epochs_since_best_ : int
        Epochs since the monitored loss last improved (early stopping reads it).
    optimizer_, scheduler_, scaler_
        The Adam optimiser, the learning-rate schedule (or None) and the
        gradient scaler of the run (what a checkpoint saves).
    seed_ : int
        The run's seed (``config.random_state``, a checkpoint's, or a fresh one).
    """

    def __init__(self, module, guides, config=None, callbacks=None):
        if not isinstance(guides, GuideFunctions):
            raise TypeError(f"guides must be a GuideFunctions instance; got {type(guides).__name__}.")
        config = TrainConfig() if config is None else config
        if not isinstance(config, TrainConfig):
            raise TypeError(f"config must be a TrainConfig; got {type(config).__name__}.")
        n_out = getattr(module, "n_outputs", guides.n_guides)
        if n_out != guides.n_guides:
            raise ValueError(f"module has {n_out} embedding outputs but guides has {guides.n_guides} guides.")
        self.module = module
        self.guides = guides
        self.config = config
        self.callbacks = _check_callbacks(callbacks)
        self.history = []
        self.stop_training = False

    # --- helpers -------------------------------------------------------------
    def _make_scheduler(self, opt):
        cfg = self.config
        if cfg.lr_schedule == "cosine" and cfg.max_time is not None:
            return None  # the planner sets the rate of every epoch (EpochPlanner.lr)
        if cfg.lr_schedule == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs, eta_min=cfg.learning_rate * 0.01)
        if cfg.lr_schedule == "plateau":  # a third of the early stopping's patience (config's or a callback's)
            stopping = [cb.patience for cb in self.callbacks if isinstance(cb, EarlyStopping)]
            pat = max(1, (cfg.patience or (stopping[0] if stopping else None) or 10) // 3)
            return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=pat)
        return None

    def _to_device(self, arrays):
        dev = self.device_
        img, tgt, lab, ign, org = (torch.from_numpy(np.ascontiguousarray(a)) for a in arrays)
        nb = dev.type == "cuda"
        return (img.to(dev, non_blocking=nb), tgt.to(dev, non_blocking=nb), lab.to(dev, non_blocking=nb),
                ign.to(dev, non_blocking=nb), org.to(dev, non_blocking=nb))

    def _forward_loss(self, batch):
        img, tgt, lab, ign, org = batch
        with torch.autocast(self.device_.type, dtype=self.amp_dtype_ or torch.float32, enabled=self.amp_):
            emb, logit = self.module(img, org)
        if self.config.loss == "discriminative":
            return discriminative_loss(emb, lab, logit, ign, fg_weight=self.config.fg_weight)
        cfg = self.config
        return harmonic_loss(
            emb, tgt, logit, lab, ign, fg_only=cfg.fg_only, fg_weight=cfg.fg_weight, boundary_weight=cfg.boundary_weight
        )

    def _train_epoch(self, sampler, rng, steps, opt, scaler, deadline=None):
        """Mean losses of ``steps`` optimiser steps (fewer once ``time.perf_counter()`` passes ``deadline``)."""
        self.module.train()
        sums = torch.zeros(3, dtype=torch.float64, device=self.device_)
        done = 0
        while done < steps and (done == 0 or deadline is None or time.perf_counter() < deadline):
            batch = self._to_device(sampler.batch(rng, self.config.batch_size))
            loss, parts = self._forward_loss(batch)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            sums += torch.stack([loss.detach(), parts["l1"], parts["fg"]]).double()
            done += 1
        self._steps_done = done
        return (sums / done).tolist()

    def _validate(self, val_samples):
        self.module.eval()
        bs = self.config.batch_size
        sums = torch.zeros(2, dtype=torch.float64, device=self.device_)
        with torch.inference_mode():
            for s in range(0, len(val_samples), bs):
                chunk = val_samples[s : s + bs]
                batch = self._to_device(tuple(np.stack(p) for p in zip(*chunk)))
                loss, parts = self._forward_loss(batch)
                sums += torch.stack([loss, parts["l1"]]).double() * len(chunk)
        return (sums / len(val_samples)).tolist()

    def _checkpoint_state(self):
        """What :class:`~harmonic_seg.nn.callbacks.Checkpoint` writes and ``fit(resume=True)`` reads."""
        sched = self.scheduler_
        return dict(
            model=self.module.state_dict(), optimizer=self.optimizer_.state_dict(),
            scheduler=None if sched is None else sched.state_dict(), scaler=self.scaler_.state_dict(),
            history=self.history, best_state=self._best_state, best_score=self.best_score_,
            best_epoch=self.best_epoch_, bad_epochs=self.epochs_since_best_, seed=self.seed_,
            numpy_rng=self._rng.bit_generator.state, torch_rng=torch.get_rng_state(),
            cuda_rng=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            config=self.config.to_dict(),
        )

    def _read_checkpoint(self):
        """The checkpoint to resume from (``fit(resume=True)``), or None when there is none yet."""
        cfg = self.config
        if cfg.checkpoint_path is None:
            raise ValueError("resume=True needs config.checkpoint_path.")
        if not os.path.exists(cfg.checkpoint_path):
            logger.warning("No checkpoint at %s; training from scratch.", cfg.checkpoint_path)
            return None
        ckpt = torch.load(cfg.checkpoint_path, map_location="cpu", weights_only=True)
        saved_loss = ckpt.get("config", {}).get("loss", "harmonic")
        if saved_loss != cfg.loss:
            raise ValueError(
                f"the checkpoint at {cfg.checkpoint_path} was trained with loss={saved_loss!r} but this "
                f"config has loss={cfg.loss!r}; resume with the same loss or start a new checkpoint."
            )
        return ckpt

    def _default_callbacks(self):
        """The callbacks the config asks for, around the given ones (see ``callbacks_``)."""
        cfg = self.config
        before = [Checkpoint(cfg.checkpoint_path)] if cfg.checkpoint_path is not None else []
        before += [ProgressBar()] if cfg.verbose >= 1 else []
        before += [EpochLogger()] if cfg.verbose >= 2 else []
        after = [EarlyStopping(cfg.patience)] if cfg.patience is not None else []
        return before + list(self.callbacks) + after

    def _notify(self, hook, *args):
        for cb in self.callbacks_:
            getattr(cb, hook)(self, *args)

    # --- public API ----------------------------------------------------------
    def fit(self, images, labels, ignore=None, resume=False):
        """Train the module.

        Parameters
        ----------
        images : list of ndarray of shape (C, H, W)
            Normalised float32 images (sizes may differ).
        labels : list of ndarray of shape (H, W)
            Integer label maps, 0 = background.
        ignore : list of (ndarray of shape (H, W) or None), or None
            True where pixels are excluded from the loss.
        resume : bool, default=False
            Continue from ``config.checkpoint_path`` when it exists (the
            history then matches an uninterrupted run with the same config).

        Returns
        -------
        self

        Notes
        -----
        The training loop draws nothing from torch's random generators (the
        crops come from ``config.random_state``) and restores them as it
        found them.
        """
        t_start = time.perf_counter()  # ``max_time`` counts from here
        data = check_fit_inputs(images, labels, ignore, self.module.in_channels)
        device = resolve_device(self.config.device)
        depth = getattr(self.module, "depth", None)
        if depth is not None:
            check_crop_size(self.config.crop_size, depth, name="config.crop_size")
        return self._fit_training_set(data, resume=resume, device=device, t_start=t_start)

    def _fit_training_set(self, data, *, resume=False, device=None, t_start=None):
        """:meth:`fit` on a :class:`~harmonic_seg._training_set.TrainingSet` its caller validated
        (:meth:`HarmonicSegmenter.fit <harmonic_seg.HarmonicSegmenter.fit>`): nothing is checked again."""
        cfg = self.config
        self._t_start = time.perf_counter() if t_start is None else t_start
        self.device_ = resolve_device(cfg.device) if device is None else device
        depth = getattr(self.module, "depth", None)
        minimum = 1 if depth is None else min_crop_size(depth)
        self.crop_size_ = clip_crop_size(cfg.crop_size, [lab.shape for lab in data.labels], minimum)
        if self.crop_size_ < cfg.crop_size:
            logger.info("crop_size=%d is larger than every training image; crops of %d pixels are used.",
                        cfg.crop_size, self.crop_size_)
        with torch_rng_scope(device=self.device_):
            return self._fit(data, resume)

    def _fit(self, data, resume):
        cfg = self.config
        self._initialize(data, resume)
        self.interrupted_ = self.stopped_early_ = self.stop_training = False
        self.planner_ = self.planned_epochs_ = None
        threads = torch_threads(cfg.num_threads) if cfg.num_threads is not None else contextlib.nullcontext()
        with threads:
            try:
                self._notify("on_train_begin")
                if cfg.max_time is not None:  # the budget plans the epochs; ``epochs`` is not used
                    self.planner_ = EpochPlanner(cfg.max_time - (time.perf_counter() - self._t_start),
                                                 start_epoch=len(self.history))
                    epochs = itertools.count(len(self.history))
                else:
                    epochs = range(len(self.history), cfg.epochs)
                for epoch in epochs:
                    record, out_of_time = self._run_epoch(epoch)
                    self._notify("on_epoch_end", record)
                    if self.stop_training or out_of_time:
                        break
            except KeyboardInterrupt:
                self.interrupted_ = True
                if self.history:
                    self.history[-1]["interrupted"] = True
                logger.warning("Training interrupted after %d epoch(s); keeping the best weights so far (epoch %s).",
                               len(self.history), self.best_epoch_)
            finally:
                for cb in self.callbacks_:
                    if isinstance(cb, ProgressBar):
                        cb.close()
        if self.planner_ is not None:
            self.planned_epochs_ = self.planner_.planned  # as a callback may have moved it
        if self._best_state is not None and (cfg.restore_best or self.interrupted_):
            self.module.load_state_dict(self._best_state)
        self.module.eval()
        self._notify("on_train_end")
        return self

    def _initialize(self, data, resume):
        """Everything before the first epoch: the seed, the validation split, the crop samplers, the
        optimiser, schedule and gradient scaler, the callbacks, and the state of a checkpoint to resume."""
        cfg = self.config
        crop_size = self.crop_size_
        self.amp_dtype_ = resolve_amp(cfg.amp, self.device_)
        self.amp_ = self.amp_dtype_ is not None
        ckpt = self._read_checkpoint() if resume else None
        if ckpt is not None:
            self.seed_ = int(ckpt["seed"])
        else:
            self.seed_ = int(new_seed() if cfg.random_state is None else cfg.random_state)
        split_ss, sample_ss = run_seeds(self.seed_)
        n = len(data)
        if cfg.validation_fraction > 0 and n < 2:
            logger.warning("validation_fraction > 0 but only one image: training without validation.")
        self.val_indices_, self.train_indices_ = validation_split(n, cfg.validation_fraction, split_ss)
        self._sampler = CropSampler._from_training_set(data.subset(self.train_indices_), self.guides, crop_size,
                                                       cfg.scale_range, cfg.flips, cfg.rotate)
        self._val_samples = None
        if len(self.val_indices_):
            self._val_samples = CropSampler._from_training_set(data.subset(self.val_indices_), self.guides,
                                                               crop_size, None, False).center_crops()
        self._steps = cfg.steps_per_epoch or max(
            1, math.ceil(sum(lab.size for lab in self._sampler.labels) / crop_size**2 / cfg.batch_size)
        )
        self._rng = np.random.default_rng(sample_ss)

        module = self.module.to(self.device_)
        self.optimizer_ = torch.optim.Adam(module.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        self.scheduler_ = self._make_scheduler(self.optimizer_)
        # Loss scaling is for float16 only; bfloat16 has float32's exponent range.
        self.scaler_ = torch.amp.GradScaler(self.device_.type, enabled=self.amp_dtype_ == torch.float16)
        self.history = []
        self._best_state, self.best_score_, self.best_epoch_, self.epochs_since_best_ = None, math.inf, None, 0
        if ckpt is not None:
            module.load_state_dict(ckpt["model"])
            self.optimizer_.load_state_dict(ckpt["optimizer"])
            if self.scheduler_ is not None and ckpt["scheduler"] is not None:
                self.scheduler_.load_state_dict(ckpt["scheduler"])
            self.scaler_.load_state_dict(ckpt["scaler"])
            self.history = list(ckpt["history"])
            self._best_state, self.best_score_, self.best_epoch_, self.epochs_since_best_ = (
                ckpt["best_state"], ckpt["best_score"], ckpt["best_epoch"], ckpt["bad_epochs"])
            self._rng.bit_generator.state = ckpt["numpy_rng"]
            torch.set_rng_state(ckpt["torch_rng"])
            if ckpt.get("cuda_rng") is not None and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(ckpt["cuda_rng"])
            logger.info("Resuming from %s after epoch %d.", cfg.checkpoint_path, len(self.history))
        self.monitor_ = "val_loss" if self._val_samples else "train_loss"
        self.callbacks_ = self._default_callbacks()

    def _run_epoch(self, epoch):
        """Epoch ``epoch`` (0-based): its training steps, its validation loss, its record (appended to the
        history), the schedule's step and the best weights; returns the record and whether the budget is spent."""
        cfg, opt, planner = self.config, self.optimizer_, self.planner_
        t0 = time.perf_counter()
        if planner is not None and cfg.lr_schedule == "cosine":
            for group in opt.param_groups:
                group["lr"] = planner.lr(epoch, cfg.learning_rate, cfg.learning_rate * 0.01)
        lr = opt.param_groups[0]["lr"]
        deadline = None if planner is None else planner.epoch_deadline(t0)
        tl, tl1, tfg = self._train_epoch(self._sampler, self._rng, self._steps, opt, self.scaler_, deadline)
        if not math.isfinite(tl):
            raise FloatingPointError(
                f"training loss is {tl} at epoch {epoch + 1}; lower learning_rate or check the inputs."
            )
        vl = vl1 = None
        if self._val_samples:
            vl, vl1 = self._validate(self._val_samples)
        rec = dict(epoch=epoch + 1, train_loss=tl, train_l1=tl1, train_fg=tfg, val_loss=vl, val_l1=vl1, lr=lr,
                   dur=time.perf_counter() - t0)
        out_of_time = False
        if planner is not None:
            rec["steps"] = self._steps_done
            out_of_time = planner.epoch_end(epoch + 1)
            if cfg.steps_per_epoch is None:  # epochs short enough for the plan (EpochPlanner)
                self._steps = planner.steps_per_epoch(self._steps, self._steps_done, rec["dur"])
            self.planned_epochs_ = rec["planned_epochs"] = planner.planned
        self.history.append(rec)
        score = rec[self.monitor_]
        if self.scheduler_ is not None:
            self.scheduler_.step(score) if cfg.lr_schedule == "plateau" else self.scheduler_.step()
        if score < self.best_score_:
            self._best_state, self.best_score_, self.best_epoch_ = _state_to_cpu(self.module), score, epoch + 1
            self.epochs_since_best_ = 0
        else:
            self.epochs_since_best_ += 1
        return rec, out_of_time
