"""Configuration, callbacks and input checks of :class:`harmonic_seg.nn.trainer.Trainer`."""

from __future__ import annotations

import contextvars
import functools
import logging
from dataclasses import asdict, dataclass

import numpy as np
import torch

from .._train_params import ALL_TRAIN_CONFIG_PARAMETERS, check_values
from .._training_set import training_set
from .._validation import check_device, check_label_map
from ._seeding import torch_rng_scope  # noqa: F401  (seeding lives in _seeding; imported from here too)

logger = logging.getLogger(__name__)

__all__ = ["TrainConfig", "Callback", "resolve_device", "resolve_amp", "check_fit_inputs", "torch_rng_scope"]

#: Set while ``TrainConfig._from_checked`` builds a config of checked values.
_TRUSTED = contextvars.ContextVar("harmonic_seg_trusted_train_config", default=False)


def resolve_device(device="auto"):
    """``"auto"`` -> cuda when available, else cpu; anything else -> ``torch.device(device)``.

    Unknown names and GPUs this torch cannot use are refused with a
    ``ValueError`` (:func:`harmonic_seg._validation.check_device`).
    """
    return torch.device(check_device("auto" if device is None else device, "device", resolve=True))


def cpu_has_native_bfloat16():
    """Whether the CPU computes bfloat16 natively (AVX-512 BF16 or AMX instructions, as torch sees them)."""
    return bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)() or getattr(
        torch.cpu, "_is_amx_tile_supported", lambda: False)())


@functools.lru_cache(maxsize=1)
def _check_cpu_bfloat16():
    """Whether the CPU computes bfloat16 natively; warns (once per process) when it does not."""
    native = cpu_has_native_bfloat16()
    if not native:
        logger.warning("amp=True on a CPU without native bfloat16 instructions (AVX-512 BF16 or AMX): "
                       "bfloat16 is emulated and may be slower than float32; use amp=None for float32.")
    return native


def resolve_amp(amp, device):
    """Autocast dtype for ``amp`` on ``device``, or None for float32.

    ``None`` means float16 on CUDA and float32 elsewhere; ``True`` means
    float16 on CUDA and bfloat16 on CPU (fast where the CPU has AVX-512 BF16
    or AMX instructions, emulated and slower elsewhere); ``False`` float32;
    ``"auto"`` float16 on CUDA, bfloat16 on a CPU that computes it natively
    (:func:`cpu_has_native_bfloat16`), float32 elsewhere.
    """
    device = torch.device(device)
    if isinstance(amp, str) and amp == "auto":
        if device.type == "cuda":
            return torch.float16
        return torch.bfloat16 if device.type == "cpu" and cpu_has_native_bfloat16() else None
    if amp is None:
        amp = device.type == "cuda"
    if not amp:
        return None
    if device.type == "cuda":
        return torch.float16
    if device.type == "cpu":
        _check_cpu_bfloat16()
        return torch.bfloat16
    logger.warning("amp=True is not supported on %s; running in float32.", device)
    return None


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of :class:`Trainer`.

    The values are checked when the config is built, by the rules of the
    :class:`~harmonic_seg.HarmonicSegmenter` parameters of the same names
    (a ``ValueError`` names the parameter, what it must be and what it got).

    Parameters
    ----------
    epochs : int, default=50
        Epochs to train; ignored when ``max_time`` is set.
    max_time : float or None, default=None
        Wall-clock seconds of the training loop (from the start of
        :meth:`Trainer.fit`). The first epoch warms up; every later epoch is
        timed and the number of epochs re-planned (median of the last five
        epoch times) so that the loop ends within ``max_time``; the cosine
        schedule anneals over the planned epochs. At least one step runs;
        every step checks the budget. With ``steps_per_epoch=None`` the
        warm-up epoch stops after 1/20 of the budget and the later epochs
        take as many steps as fit in 1/20 (at most the usual number), so that
        the budget holds at least 20 epochs. ``Trainer.planned_epochs_``
        holds the plan; every history record gets ``planned_epochs`` and
        ``steps``. None: ``epochs`` epochs.
    steps_per_epoch : int or None, default=None
        Optimiser steps per epoch; None: enough crops to cover the training
        images' area once, ``ceil(sum(H*W) / crop_size**2 / batch_size)``.
    batch_size : int, default=4
    crop_size : int, default=256
        Side of the square training crops. :meth:`Trainer.fit` refuses one
        smaller than ``2 * 2**depth`` of the module (its deepest level keeps
        2 x 2 pixels) and clips one longer than every training image's sides
        to the longest side (``Trainer.crop_size_``).
    learning_rate : float, default=1e-3
    weight_decay : float, default=0.0
        Adam's (L2) weight decay.
    lr_schedule : {"cosine", "constant", "plateau"}, default="cosine"
        Cosine annealing to 1% of ``learning_rate`` over ``epochs``; constant;
        or halving after a plateau of the monitored loss.
    validation_fraction : float, default=0.1
        Fraction of whole images held out (0 allowed; at least one image stays
        for training).
    patience : int or None, default=None
        Stop after this many epochs without improvement of the monitored loss
        (validation loss, or training loss without validation); None: off.
    fg_weight : float, default=1.0
        Weight of the foreground BCE term (at most 1e6).
    fg_only : bool, default=True
        L1 term over foreground pixels only (paper eq. 5).
    boundary_weight : float, default=0.0
        Extra L1 weight (at most 1e6) of the pixels where instances touch (harmonic loss
        only; :func:`~harmonic_seg.nn.losses.harmonic_loss`).
    loss : {"harmonic", "discriminative"}, default="harmonic"
        The embedding term: L1 to the guided targets (the paper), or the
        discriminative loss of De Brabandere et al. (2017), the paper's
        baseline (:func:`~harmonic_seg.nn.losses.discriminative_loss`, which
        ignores the targets). The history's ``train_l1``/``val_l1`` hold the
        embedding term of whichever loss is used.
    scale_range : tuple of float or None, default=(0.75, 1.33)
    flips : bool, default=True
    rotate : bool, default=False
        Random rotations by any angle (:func:`~harmonic_seg.nn.augment.random_rotation`).
    device : str, default="auto"
    amp : bool, "auto" or None, default=None
        Mixed precision (autocast); None: float16 on CUDA, float32 on CPU;
        True: float16 on CUDA, bfloat16 on CPU; "auto": bfloat16 only on a
        CPU that computes it natively (:func:`resolve_amp`).
    num_threads : int or None, default=None
        ``torch.set_num_threads`` during fit (restored after); None: unchanged.
    checkpoint_path : str or None, default=None
        Where to write a checkpoint after every epoch (atomically).
    restore_best : bool, default=True
        Load the best weights (monitored loss) at the end of training.
    random_state : int or None, default=None
        Seeds the validation split, the crops and their augmentation. The
        initial weights are the module's: seed torch before building it (the
        training loop draws nothing from torch's generators and leaves them
        as it found them).
    verbose : int, default=0
        0 silent; 1 progress bar over epochs (:class:`~harmonic_seg.nn.ProgressBar`);
        2 or more also log every epoch (:class:`~harmonic_seg.nn.EpochLogger`).
    """

    epochs: int = 50
    max_time: float | None = None
    steps_per_epoch: int | None = None
    batch_size: int = 4
    crop_size: int = 256
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    lr_schedule: str = "cosine"
    validation_fraction: float = 0.1
    patience: int | None = None
    fg_weight: float = 1.0
    fg_only: bool = True
    boundary_weight: float = 0.0
    loss: str = "harmonic"
    scale_range: tuple | None = (0.75, 1.33)
    flips: bool = True
    rotate: bool = False
    device: str = "auto"
    amp: bool | str | None = None
    num_threads: int | None = None
    checkpoint_path: str | None = None
    restore_best: bool = True
    random_state: int | None = None
    verbose: int = 0

    def __post_init__(self):
        if not _TRUSTED.get():  # HarmonicSegmenter's parameters are checked by its own fit
            values = dict(self.__dict__)
            if isinstance(self.device, torch.device):
                values["device"] = str(self.device)
            check_values(values, ALL_TRAIN_CONFIG_PARAMETERS)
        if self.scale_range is not None:
            object.__setattr__(self, "scale_range", tuple(float(v) for v in self.scale_range))

    @classmethod
    def _from_checked(cls, **values):
        """A config of values already checked (:data:`~harmonic_seg._train_params.ALL_TRAIN_CONFIG_PARAMETERS`)."""
        token = _TRUSTED.set(True)
        try:
            return cls(**values)
        finally:
            _TRUSTED.reset(token)

    def to_dict(self):
        return asdict(self)


class Callback:
    """Base class of training callbacks (all hooks do nothing).

    A callback may set ``trainer.stop_training = True`` to stop after the
    current epoch, or raise :class:`KeyboardInterrupt` (handled like Ctrl-C).
    """

    def on_train_begin(self, trainer):
        pass

    def on_epoch_end(self, trainer, record):
        pass

    def on_train_end(self, trainer):
        pass


def check_fit_inputs(images, labels, ignore, in_channels):
    """The gate of :meth:`Trainer.fit`: ``images`` (C, H, W), ``labels`` and ``ignore`` checked once.

    Returns
    -------
    TrainingSet
        float32 images, int32 label maps (ids ``1..K``), bool masks
        (:func:`harmonic_seg._training_set.training_set`), which the training
        loop does not check again.
    """
    for name, seq in (("images", images), ("labels", labels)):
        if isinstance(seq, np.ndarray) or not isinstance(seq, (list, tuple)):
            raise ValueError(f"{name} must be a list of arrays; got {type(seq).__name__}.")
        if len(seq) == 0:
            raise ValueError(f"{name} must contain at least one array; got an empty list.")
    if len(images) != len(labels):
        raise ValueError(f"images and labels must have the same length; got {len(images)} and {len(labels)}.")
    if ignore is not None and (not isinstance(ignore, (list, tuple)) or len(ignore) != len(images)):
        raise ValueError("ignore must be None or a list with one (H, W) mask per image.")
    out_i, out_l, out_g = [], [], []
    for i, (im, lab) in enumerate(zip(images, labels)):
        im = np.asarray(im)
        if im.ndim != 3 or im.size == 0:
            raise ValueError(f"images[{i}] must be a non-empty (C, H, W) array; got shape {im.shape}.")
        if not np.issubdtype(im.dtype, np.number) or np.iscomplexobj(im):
            raise ValueError(f"images[{i}] must be a real numeric array; got dtype {im.dtype}.")
        if im.shape[0] != in_channels:
            raise ValueError(
                f"images[{i}] has {im.shape[0]} channel(s) (shape {im.shape}) but the module expects {in_channels}."
            )
        im = np.ascontiguousarray(im, dtype=np.float32)
        if not np.all(np.isfinite(im)):
            raise ValueError(f"images[{i}] contains NaN or infinite values.")
        lab = check_label_map(lab, f"labels[{i}]")
        if lab.shape != im.shape[1:]:
            raise ValueError(f"labels[{i}] has shape {lab.shape} but images[{i}] has spatial shape {im.shape[1:]}.")
        ign = None
        if ignore is not None and ignore[i] is not None:
            ign = np.asarray(ignore[i])
            if ign.shape != lab.shape:
                raise ValueError(f"ignore[{i}] has shape {ign.shape} but labels[{i}] has shape {lab.shape}.")
        out_i.append(im)
        out_l.append(lab)
        out_g.append(ign)
    return training_set(out_i, out_l, out_g)


_HOOKS = ("on_train_begin", "on_epoch_end", "on_train_end")


def _check_callbacks(callbacks):
    """``callbacks`` as a list of objects with the three hooks of :class:`Callback`."""
    if callbacks is None:
        return []
    if not isinstance(callbacks, (list, tuple)):
        raise TypeError(f"callbacks must be a list of Callback objects or None; got {type(callbacks).__name__}.")
    for i, cb in enumerate(callbacks):
        missing = [h for h in _HOOKS if not callable(getattr(cb, h, None))]
        if missing:
            raise TypeError(
                f"callbacks[{i}] ({type(cb).__name__}) has no {', '.join(missing)} method; subclass "
                "harmonic_seg.nn.Callback (its hooks do nothing) and override the ones you need."
            )
    return list(callbacks)
