"""Small estimators that configure parts of :class:`~harmonic_seg.HarmonicSegmenter` (numpy and scikit-learn
only, no torch).

Each is a scikit-learn estimator that only stores its parameters, nested in
the segmenter as ``clustering`` is: ``HarmonicSegmenter(augmentation=Augmentation(rotate=True))``,
reachable as ``augmentation__rotate`` by ``set_params`` and ``GridSearchCV``.
Their constraints are data (``_parameter_constraints``); the segmenter checks
them before any work, in errors that name the nested argument
(``augmentation.scale_range``). The training ones declare their constraints
once, with :class:`~harmonic_seg.nn.TrainConfig` (:mod:`harmonic_seg._train_params`).
"""

from __future__ import annotations

from numbers import Integral

from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import Interval, StrOptions

from ._train_params import AUGMENTATION_PARAMETERS, LOSS_PARAMETERS, check_values

__all__ = ["Augmentation", "Loss", "Network", "Tiling"]


class _Options(BaseEstimator):
    """Parameters that only configure: ``_check(name)`` validates them, naming each ``name.param``."""

    #: Parameter -> the ``TrainConfig`` field it sets (training options only).
    _fields = {}

    def _check(self, name):
        values = self.get_params(deep=False)
        for param, constraints in self._parameter_constraints.items():
            check_values({param: values[param]}, {param: constraints}, prefix=f"{name}.")

    def _training_values(self):
        """``{TrainConfig field: value}``."""
        return {field: getattr(self, param) for param, field in self._fields.items()}


class Augmentation(_Options):
    """Random augmentation of the training crops of :class:`~harmonic_seg.HarmonicSegmenter`.

    Parameters
    ----------
    scale_range : tuple of float or None, default=(0.75, 1.33)
        Random scaling of training images by a factor in this range; None: no scaling.
    flips : bool, default=True
        Random left-right and up-down flips.
    rotate : bool, default=False
        Random rotations of training images by any angle (after scaling and
        flips); the pixels a rotation brings in from outside the image are
        left out of the loss. Targets are computed in the rotated frame.

    Examples
    --------
    >>> from harmonic_seg import Augmentation, HarmonicSegmenter
    >>> seg = HarmonicSegmenter(augmentation=Augmentation(rotate=True))
    >>> seg.get_params()["augmentation__rotate"]
    True
    """

    _parameter_constraints = dict(AUGMENTATION_PARAMETERS)
    _fields = {"scale_range": "scale_range", "flips": "flips", "rotate": "rotate"}

    def __init__(self, *, scale_range=(0.75, 1.33), flips=True, rotate=False):
        self.scale_range = scale_range
        self.flips = flips
        self.rotate = rotate


class Tiling(_Options):
    """How :class:`~harmonic_seg.HarmonicSegmenter` predicts large images: tile by tile.

    Parameters
    ----------
    size : int or None, default=1024
        Images larger than this (at least 16; in the pixels the network sees,
        after ``scale``) are predicted tile by tile, the memory bounded by the
        tile; None always predicts whole images.
    overlap : int or None, default=None
        Overlap of the tiles; None uses the network's receptive field, which
        makes tiled and untiled predictions agree.
    """

    _parameter_constraints = {
        "size": [Interval(Integral, 16, None, closed="left"), None],
        "overlap": [Interval(Integral, 0, None, closed="left"), None],
    }

    def __init__(self, *, size=1024, overlap=None):
        self.size = size
        self.overlap = overlap


class Loss(_Options):
    """The training loss of :class:`~harmonic_seg.HarmonicSegmenter`.

    ``HarmonicSegmenter(loss="harmonic")`` is short for
    ``HarmonicSegmenter(loss=Loss(name="harmonic"))``.

    Parameters
    ----------
    name : {"discriminative", "harmonic"}, default="discriminative"
        What the embedding head learns: the discriminative loss of De
        Brabandere et al. (2017) with its margins 0.5 and 1.5 (the paper's
        baseline), or the guided harmonic embeddings (L1 to the targets, the
        paper's method); see the segmenter's ``loss``.
    fg_weight : float, default=1.0
        Weight of the foreground loss beside the embedding loss (at most 1e6).
    boundary_weight : float, default=0.0
        Extra weight (at most 1e6) of the embedding L1 loss where two instances
        touch (pixels with another instance within 2 pixels of the network's
        input): ``1 + boundary_weight`` there, 1 elsewhere; the harmonic loss only.
    """

    _parameter_constraints = {"name": LOSS_PARAMETERS["loss"], "fg_weight": LOSS_PARAMETERS["fg_weight"],
                              "boundary_weight": LOSS_PARAMETERS["boundary_weight"]}
    _fields = {"name": "loss", "fg_weight": "fg_weight", "boundary_weight": "boundary_weight"}

    def __init__(self, *, name="discriminative", fg_weight=1.0, boundary_weight=0.0):
        self.name = name
        self.fg_weight = fg_weight
        self.boundary_weight = boundary_weight


class Network(_Options):
    """The U-Net that :class:`~harmonic_seg.HarmonicSegmenter` builds and trains in ``fit``.

    Parameters
    ----------
    depth : int, default=4
        Pooling steps of the U-Net (0 to 8).
    base_width : int or "auto", default="auto"
        Channels of its first level (doubled at every level); "auto": 16
        where the network trains on a CPU, 32 on a GPU (the segmenter's
        ``base_width_``).
    norm : {"batch", "group", "instance"} or None, default="batch"
        Normalisation layers of the U-Net.
    variant : {"sin", "coord", "none"}, default="sin"
        Decoder convolutions see the guide maps (SinConv), plain coordinates
        (CoordConv) or nothing (the paper's ablations).

    Examples
    --------
    >>> from harmonic_seg import HarmonicSegmenter, Network
    >>> seg = HarmonicSegmenter(network=Network(depth=3, base_width=8))
    >>> seg.get_params()["network__depth"]
    3
    """

    _parameter_constraints = {
        "depth": [Interval(Integral, 0, 8, closed="both")],
        "base_width": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "norm": [StrOptions({"batch", "group", "instance"}), None],
        "variant": [StrOptions({"sin", "coord", "none"})],
    }

    def __init__(self, *, depth=4, base_width="auto", norm="batch", variant="sin"):
        self.depth = depth
        self.base_width = base_width
        self.norm = norm
        self.variant = variant


#: The segmenter's nested options: parameter -> class (None means its default instance).
NESTED = {"network": Network, "augmentation": Augmentation, "tiling": Tiling, "loss": Loss}


def resolved(est, name):
    """``est``'s option ``name`` as an instance: None is the default one, a loss name ``Loss(name=...)``."""
    value = getattr(est, name)
    if value is None:
        return NESTED[name]()
    if isinstance(value, str):  # loss="harmonic"
        return Loss(name=value)
    return value


def check_nested(est):
    """Check the nested options of ``est`` (errors name ``augmentation.scale_range`` and the like)."""
    for name, cls in NESTED.items():
        value = getattr(est, name)
        if isinstance(value, cls):
            value._check(name)


def training_values(est):
    """The ``TrainConfig`` fields set by the nested options of ``est``."""
    values = {}
    for name in ("loss", "augmentation"):
        values.update(resolved(est, name)._training_values())
    return values


def loss_name(est):
    """The loss ``est`` trains with: "discriminative" or "harmonic"."""
    return resolved(est, "loss").name
