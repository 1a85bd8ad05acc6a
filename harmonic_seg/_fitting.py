"""``HarmonicSegmenter.fit``: the three stages, the automatic choices, the time budget and warm starts.

Kept apart from :mod:`harmonic_seg.segmenter`, which holds the estimator's
parameters, prediction and persistence. torch is imported inside
:func:`fit_segmenter` only.
"""

from __future__ import annotations

import logging

from sklearn.base import clone

from ._auto import auto_scale, resolve_base_width
from ._budget import INITIAL_TUNING_SHARE, MAX_TUNING_SHARE, TimeBudget, TuningProbe, tuning_subset
from ._fit_checks import check_extra_params, check_network_fit, min_image_side
from ._train_params import TRAINING_PARAMETERS
from ._training_set import training_set
from ._validation import check_images_and_labels, check_masks
from .guides import GuideFunctionFitter
from .options import resolved, training_values
from .preprocessing import rescale_training_set

__all__ = ["fit_segmenter", "check_warm_start", "resolve_scale"]

logger = logging.getLogger(__name__)

#: Parameters of ``network`` that shape the network: a warm start keeps the fitted one.
_ARCHITECTURE = ("depth", "variant", "norm", "base_width")


def resolve_scale(est, images, labels):
    """``est.scale``, or with ``scale="auto"`` the one chosen from the objects of ``labels``
    (:func:`harmonic_seg._auto.auto_scale`), never so small that an image gets too small for the network."""
    if not isinstance(est.scale, str):
        return float(est.scale)
    need = min_image_side(resolved(est, "network").depth)
    min_scale = max(need / min(im.shape[:2]) for im in images)
    scale, median = auto_scale(labels, min_scale=min_scale)
    logger.info("scale='auto': median object size %.1f px -> scale %.3g", median, scale)
    return scale


def check_warm_start(est, images):
    """Refuse, before any work, new training images or parameters a fitted network cannot continue with."""
    n_channels = 1 if images[0].ndim == 2 else images[0].shape[2]
    if n_channels != est.n_channels_in_:
        raise ValueError(
            f"warm_start=True continues training the fitted network, which takes {est.n_channels_in_} channel(s); "
            f"X has {n_channels}. Pass images with {est.n_channels_in_} channel(s), or set warm_start=False to "
            "train a new network."
        )
    if not isinstance(est.scale, str) and float(est.scale) != est.scale_:
        raise ValueError(
            f"warm_start=True keeps the fitted scale_={est.scale_:g} (the guide functions are in its pixels); got "
            f"scale={est.scale!r}. Set scale={est.scale_:g} or scale='auto', or warm_start=False to train anew."
        )
    config = est.module_.config
    network = resolved(est, "network")
    for name in _ARCHITECTURE:
        fitted = config.get(name)
        value = getattr(network, name)
        if name == "base_width" and isinstance(value, str):
            continue  # "auto": the fitted width
        if fitted is not None and value != fitted:
            raise ValueError(
                f"warm_start=True continues training the fitted network, built with network.{name}={fitted!r}; "
                f"got network.{name}={value!r}. Set network__{name}={fitted!r}, or warm_start=False to train a new "
                "network."
            )


def fit_segmenter(est, X, y, ignore=None):
    """Fit ``est`` (a :class:`~harmonic_seg.HarmonicSegmenter`): see its ``fit``."""
    budget = TimeBudget(est.max_time)
    check_extra_params(est)
    images, labels = check_images_and_labels(X, y)
    ignore = check_masks(ignore, [lab.shape for lab in labels], "ignore", "y", allow_none=True)
    warm = bool(est.warm_start) and hasattr(est, "module_")
    if warm:
        check_warm_start(est, images)
    scale = est.scale_ if warm else resolve_scale(est, images, labels)
    check_network_fit(est, images, scale=scale)

    from .nn import EarlyStopping, HarmonicUNet, TrainConfig, Trainer
    from .nn._plan import validation_split
    from .nn._seeding import fit_seeds, run_seeds, torch_rng_scope
    from .nn._train_utils import resolve_device

    seed_guides, seed_net = fit_seeds(est.random_state)

    chw = est._prepare(images)
    # what the network and the guides see: the images reduced by the scale, validated above and not again
    data = training_set(*rescale_training_set(chw, labels, ignore, scale))
    if not warm:
        fitter = clone(est.guides) if est.guides is not None else GuideFunctionFitter(random_state=seed_guides)
        if est.guides is not None and fitter.random_state is None:
            fitter.set_params(random_state=seed_guides)
        fitter.set_params(verbose=max(fitter.verbose, est.verbose - 1))
        est.n_channels_in_ = 1 if images[0].ndim == 2 else images[0].shape[2]
        est.scale_ = scale
        est.guides_ = fitter.fit(data.labels)
    guides = est.guides_.guides_
    budget.mark("stage1_seconds")
    # the parameters declared once for both (checked by the segmenter's _validate_params, not again)
    # and those of the nested options (loss, augmentation), unpacked here once
    config = TrainConfig._from_checked(**{name: getattr(est, name) for name in TRAINING_PARAMETERS},
                                       **training_values(est), random_state=seed_net)
    previous = list(est.history_) if warm else []
    with est._threads():
        if warm:
            module = est.module_
        else:
            network = resolved(est, "network")  # built here from its parameters
            est.base_width_ = resolve_base_width(network.base_width, resolve_device(est.device))
            with torch_rng_scope(seed_net):  # the initial weights; torch's global generator is left as it was
                module = HarmonicUNet(
                    est.n_channels_in_, guides.n_guides, guides=guides if network.variant == "sin" else None,
                    variant=network.variant, depth=network.depth, base_width=est.base_width_, norm=network.norm,
                    reference_shape=est.guides_.reference_shape_,
                )
        callbacks, probe = list(est.callbacks or []), None
        # early stopping decides last, after every other callback (as the trainer orders its own)
        callbacks.sort(key=lambda cb: isinstance(cb, EarlyStopping))
        if budget.active:
            # the trainer's split (its seeds come from run_seeds too), whose held-out images the tuning will use
            val, _ = validation_split(len(images), est.validation_fraction, run_seeds(seed_net)[0])
            reserve = INITIAL_TUNING_SHARE * max(budget.left(), 0.0) if est.tune_postprocessing and len(val) else 0.0
            if reserve:
                est.module_ = module  # the probe tunes with the network being trained
                probe = TuningProbe(est, [chw[i] for i in val], [labels[i] for i in val], reserve,
                                    cap=MAX_TUNING_SHARE * budget.max_time)
                callbacks.insert(len([cb for cb in callbacks if not isinstance(cb, EarlyStopping)]), probe)
            config = _replace(config, max_time=budget.training_seconds(reserve))
        budget.mark("training_start_seconds")
        trainer = Trainer(module, guides, config, callbacks=callbacks)._fit_training_set(data)
    budget.mark("training_done_seconds")
    budget.marks["tuning_reserve_seconds"] = 0.0 if probe is None else probe.reserve
    budget.marks["tuning_probe_seconds"] = None if probe is None else probe.measured
    budget.marks["tuning_images"] = None if probe is None else probe.n_images
    est.module_ = trainer.module
    est.module_.eval()
    new = [dict(rec, epoch=rec["epoch"] + len(previous)) for rec in trainer.history]
    est.history_ = previous + new
    est.n_epochs_ = len(new)
    est._reset_postprocessing()  # clustering_: the configured clusterer (bandwidth_, min_size_, ... are its)
    val = [int(i) for i in getattr(trainer, "val_indices_", [])]
    est.validation_indices_ = val
    if est.tune_postprocessing:
        if val:
            tuned = val
            if probe is not None and probe.n_images == 0:
                logger.warning("max_time=%gs leaves %.0fs for the post-processing tuning, less than one held-out "
                               "image takes (%.0fs): the defaults are kept. Raise max_time to tune.",
                               budget.max_time, MAX_TUNING_SHARE * budget.max_time, probe.measured)
                tuned = []
            elif probe is not None and probe.n_images < len(val):  # what fits in the budget's share for tuning
                tuned = [val[i] for i in tuning_subset([labels[i] for i in val], probe.n_images)]
                logger.info("tuning on %d of the %d held-out images (max_time leaves %.0fs for it)", len(tuned),
                            len(val), MAX_TUNING_SHARE * budget.max_time)
            if tuned:
                with est._threads():
                    est._tune([chw[i] for i in tuned], [labels[i] for i in tuned], "sbd")
        else:
            logger.warning("tune_postprocessing=True but no validation image was held out; keeping the defaults.")
    est.time_budget_ = _budget_record(budget, config, trainer) if budget.active else None
    return est


def _replace(config, **changes):
    return type(config)._from_checked(**{**config.to_dict(), **changes})


def _budget_record(budget, config, trainer):
    """``time_budget_``: the plan of a fit with ``max_time`` and what it took."""
    marks = budget.marks
    total = budget.elapsed()
    return {
        "max_time": budget.max_time,
        "stage1_seconds": marks["stage1_seconds"],
        "tuning_reserve_seconds": marks["tuning_reserve_seconds"],
        "tuning_probe_seconds": marks.get("tuning_probe_seconds"),
        "tuning_images": marks.get("tuning_images"),
        "training_budget_seconds": config.max_time,
        "planned_epochs": trainer.planned_epochs_,
        "training_seconds": marks["training_done_seconds"] - marks["training_start_seconds"],
        "tuning_seconds": total - marks["training_done_seconds"],
        "fit_seconds": total,
    }
