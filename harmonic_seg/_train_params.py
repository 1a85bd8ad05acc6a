"""The training parameters, declared once for :class:`~harmonic_seg.HarmonicSegmenter` and
:class:`~harmonic_seg.nn.TrainConfig` (numpy and scikit-learn only, no torch).

:data:`TRAINING_PARAMETERS` names the parameters that the segmenter passes to
the training loop as they are, with their constraints (scikit-learn's
``_parameter_constraints`` form) and, in :data:`EXTRA_RULES`, the rules such
constraints cannot express. The segmenter's ``_parameter_constraints`` include
them; :data:`LOSS_PARAMETERS` and :data:`AUGMENTATION_PARAMETERS` are those of
its nested ``loss`` and ``augmentation`` (:mod:`harmonic_seg.options`). ``fit``
builds its ``TrainConfig`` from the same names; ``TrainConfig`` checks the same
constraints and rules when a user builds one (:func:`check_values`).
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions, make_constraint

from ._validation import check_device, check_interval_pair

#: Largest ``fg_weight`` and ``boundary_weight``: larger ones make the float32 losses overflow to NaN.
MAX_LOSS_WEIGHT = 1e6

__all__ = ["ALL_TRAIN_CONFIG_PARAMETERS", "AUGMENTATION_PARAMETERS", "EXTRA_RULES", "LOSS_PARAMETERS",
           "TRAINING_PARAMETERS", "TRAIN_CONFIG_PARAMETERS", "check_values"]

#: Learning-rate schedules of the training loop.
SCHEDULES = ("cosine", "constant", "plateau")
#: Embedding losses of the training loop.
LOSSES = ("harmonic", "discriminative")

_POSITIVE_INT = Interval(Integral, 1, None, closed="left")

#: The parameters ``HarmonicSegmenter`` passes to ``TrainConfig`` unchanged: name -> constraints.
TRAINING_PARAMETERS = {
    "epochs": [_POSITIVE_INT],
    "steps_per_epoch": [_POSITIVE_INT, None],
    "batch_size": [_POSITIVE_INT],
    # at least 2 * 2**depth, which the trainer checks against the network (check_crop_size)
    "crop_size": [_POSITIVE_INT],
    "learning_rate": [Interval(Real, 0, None, closed="neither")],
    "lr_schedule": [StrOptions(set(SCHEDULES))],
    "validation_fraction": [Interval(Real, 0, 1, closed="left")],
    "device": [str],
    "amp": ["boolean", StrOptions({"auto"}), None],
    "num_threads": [_POSITIVE_INT, None],
    "verbose": ["verbose"],
}

#: ``TrainConfig``'s loss fields, which the segmenter takes from its ``loss`` (:class:`~harmonic_seg.Loss`:
#: ``name``, ``fg_weight``, ``boundary_weight``).
LOSS_PARAMETERS = {
    "loss": [StrOptions(set(LOSSES))],
    "fg_weight": [Interval(Real, 0, MAX_LOSS_WEIGHT, closed="both")],
    "boundary_weight": [Interval(Real, 0, MAX_LOSS_WEIGHT, closed="both")],
}

#: ``TrainConfig``'s augmentation fields, which the segmenter takes from its ``augmentation``
#: (:class:`~harmonic_seg.Augmentation`, same names).
AUGMENTATION_PARAMETERS = {
    "scale_range": [tuple, list, None],
    "flips": ["boolean"],
    "rotate": ["boolean"],
}

#: ``TrainConfig``'s own checked parameters (the segmenter sets ``max_time`` from its time budget; early
#: stopping is its ``callbacks``' :class:`~harmonic_seg.nn.EarlyStopping`).
TRAIN_CONFIG_PARAMETERS = {
    "max_time": [Interval(Real, 0, None, closed="left"), None],
    "weight_decay": [Interval(Real, 0, None, closed="left")],
    "patience": [_POSITIVE_INT, None],
}

#: Every checked field of ``TrainConfig``.
ALL_TRAIN_CONFIG_PARAMETERS = {**TRAINING_PARAMETERS, **LOSS_PARAMETERS, **AUGMENTATION_PARAMETERS,
                               **TRAIN_CONFIG_PARAMETERS}


def _scale_range(value, name):
    check_interval_pair(value, name, low_min=0, low_inclusive=False)


def _device_form(value, name):
    check_device(value, name, require_available=False)


#: Rules beyond the constraints: name -> ``rule(value, name)``, raising ``ValueError`` or ``TypeError``.
EXTRA_RULES = {"scale_range": _scale_range, "device": _device_form}


def _describe(constraint):
    """A constraint in words, as the messages of ``TrainConfig`` give it."""
    if isinstance(constraint, Interval):
        kind = "an integer" if constraint.type is Integral else "a number"
        lo = {"both": ">=", "left": ">=", "right": ">", "neither": ">"}[constraint.closed]
        hi = {"both": "<=", "left": "<", "right": "<=", "neither": "<"}[constraint.closed]
        if constraint.right is None:
            return f"{kind} {lo} {constraint.left:g}"
        if constraint.type is not Integral:
            kind = "a finite number"
        return f"{kind} {lo} {constraint.left:g} and {hi} {constraint.right:g}"
    if isinstance(constraint, StrOptions):
        return f"one of {tuple(sorted(constraint.options))}"
    if constraint is None:
        return "None"
    return {"boolean": "a bool", "verbose": "an integer >= 0"}.get(constraint, str(make_constraint(constraint)))


def _satisfies(value, constraint):
    if isinstance(constraint, Interval) and isinstance(value, (bool, np.bool_)):
        return False  # True is not a number of epochs, a weight or a fraction
    return make_constraint(constraint).is_satisfied_by(value)


def check_values(values, declarations, *, prefix=""):
    """Check ``values`` (name -> value) against the declarations (name -> constraints) and :data:`EXTRA_RULES`.

    Raises a ``ValueError`` naming the parameter (``prefix + name``), what it
    must be and what it got, e.g. "loss must be one of ('discriminative',
    'harmonic'); got 'l2'."
    """
    for name, constraints in declarations.items():
        value = values[name]
        if value is None and None in constraints:
            continue
        if not any(_satisfies(value, c) for c in constraints if c is not None):
            allowed = " or ".join(_describe(c) for c in constraints)
            raise ValueError(f"{prefix}{name} must be {allowed}; got {value!r}.")
        rule = EXTRA_RULES.get(name)
        if rule is not None:
            rule(value, prefix + name)
