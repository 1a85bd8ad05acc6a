"""Constructor parameters of earlier versions of :class:`~harmonic_seg.HarmonicSegmenter` that are now those of
its nested estimators: how a model saved (format version 1) or pickled by such a version gets them.

``HarmonicSegmenter(depth=3, bandwidth=0.3, tile_size=512, patience=5)`` of an
earlier version is ``HarmonicSegmenter(network=Network(depth=3),
clustering=EmbeddingClusterer(bandwidth=0.3), tiling=Tiling(size=512),
callbacks=[EarlyStopping(patience=5)])`` today
(:func:`nest_flat`). Numpy and scikit-learn only, except for ``patience``
(its callback is torch's).
"""

from __future__ import annotations

__all__ = ["FLAT", "nest_flat", "split_flat"]

#: Flat parameter of earlier versions -> (the parameter holding it today, its name there).
FLAT = {
    **{name: ("clustering", name) for name in ("bandwidth", "min_size", "split_components", "merge_small", "metric",
                                                "fg_threshold", "core_threshold", "core_fraction")},
    "scale_range": ("augmentation", "scale_range"),
    "flips": ("augmentation", "flips"),
    "rotate": ("augmentation", "rotate"),
    "tile_size": ("tiling", "size"),
    "tile_overlap": ("tiling", "overlap"),
    "fg_weight": ("loss", "fg_weight"),
    "boundary_weight": ("loss", "boundary_weight"),
    "patience": ("callbacks", "patience"),
    **{name: ("network", name) for name in ("depth", "base_width", "norm", "variant")},
}


def split_flat(values):
    """``(values without the flat parameters, {parameter: {name there: value}})``."""
    rest, nested = {}, {}
    for key, value in values.items():
        if key in FLAT:
            parameter, name = FLAT[key]
            nested.setdefault(parameter, {})[name] = value
        else:
            rest[key] = value
    return rest, nested


def _classes():
    from .clustering import EmbeddingClusterer
    from .options import Augmentation, Loss, Network, Tiling

    return {"network": Network, "clustering": EmbeddingClusterer, "augmentation": Augmentation, "tiling": Tiling,
            "loss": Loss}


def nest_flat(params, nested):
    """Constructor parameters ``params`` with the flat values of an earlier version (``nested``, from
    :func:`split_flat`) put into the nested estimators.

    A nested estimator given in ``params`` keeps its values (the flat ones then
    kept their defaults); one that is None stays None when every flat value is
    its default, and is built from them otherwise. A loss name becomes
    ``Loss(name=..., fg_weight=..., boundary_weight=...)`` only with weights
    other than the defaults; ``patience=k`` adds ``EarlyStopping(patience=k)``
    to ``callbacks``.
    """
    params = dict(params)
    for parameter, cls in _classes().items():
        values = nested.get(parameter)
        if not values:
            continue
        if "scale_range" in values and values["scale_range"] is not None:
            values = {**values, "scale_range": tuple(values["scale_range"])}
        defaults = cls().get_params()
        if all(_same(v, defaults[k]) for k, v in values.items()):
            continue
        current = params.get(parameter)
        if parameter == "loss":
            if isinstance(current, str) or current is None:
                params["loss"] = cls(name="discriminative" if current is None else current, **values)
        elif current is None:
            params[parameter] = cls(**values)
    patience = nested.get("callbacks", {}).get("patience")
    if patience is not None:
        from .nn import EarlyStopping

        params["callbacks"] = [*(params.get("callbacks") or []), EarlyStopping(patience=int(patience))]
    return params


def _same(value, default):
    if isinstance(value, (list, tuple)) and isinstance(default, (list, tuple)):
        return tuple(value) == tuple(default)
    if isinstance(value, bool) != isinstance(default, bool):
        return False
    return value == default
