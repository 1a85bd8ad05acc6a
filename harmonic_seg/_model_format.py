"""What a saved HarmonicSegmenter folder may contain, declared as data, and its checks.

``config.json`` is checked against :data:`CONFIG_SCHEMA` (allowed keys and
types per section, bounds of the network configuration) and a few rules
between sections (:func:`check_config`); the constructor parameters are
checked with the estimators' own ``_parameter_constraints``.
``weights.npz`` is checked array by array (name, shape, dtype read from the
``.npy`` headers) against the network the configuration describes, built on
torch's ``meta`` device, which allocates nothing (:func:`read_weights`).
Every failure is a ``ValueError`` that names the file and the field at fault.
The numpy part imports without torch.
"""

from __future__ import annotations

import hashlib
import inspect
import math
import zipfile
import zlib

import numpy as np

FORMAT_NAME = "harmonic_seg.HarmonicSegmenter"
#: Format versions this library reads (and the one it writes, the last). Version 2: the network,
#: clustering, augmentation, tiling and loss parameters in sections of their own (``<name>_params``), no
#: longer in ``params`` (version 1's flat ones, ``depth``, ``bandwidth``, ``tile_size``, ..., are mapped to
#: them on loading).
FORMAT_VERSIONS = (1, 2)
#: Largest channel count of any network level, of the input and of the embedding.
MAX_CHANNELS = 8192
MAX_GUIDES = 1024
_MT19937_WORDS = 624


class FormatError(ValueError):
    """A field of a model file that the format does not allow (``where`` is its dotted name)."""

    def __init__(self, where, message):
        super().__init__(f"{where} {message}" if where else message)
        self.where = where


def _join(where, key):
    return f"{where}.{key}" if where else str(key)


def _got(value):
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# ------------------------------------------------------------------ field types
class Field:
    """One JSON value of the format.

    Parameters
    ----------
    kind : {"int", "float", "str", "bool", "scalar", "null", "list", "section", "mapping", "any_of"}
        ``"section"``: an object with the keys of ``fields`` only;
        ``"mapping"``: an object with any string keys, values of ``item``;
        ``"any_of"``: one of ``options``.
    low, high : number or None
        Bounds (``open_low``/``open_high`` exclude them).
    finite : bool
        Floats must be finite (no NaN or infinity).
    choices : tuple or None
        Allowed values.
    nullable : bool
        ``null`` is also allowed.
    optional : bool
        The key may be absent from its section.
    length, max_length : int or None
        Exact and largest length of a list.
    item : Field or None
        Type of the items of a list or mapping.
    fields : dict of str to Field or None
        Keys of a section.
    """

    def __init__(self, kind, *, low=None, high=None, open_low=False, open_high=False, finite=True, choices=None,
                 nullable=False, optional=False, length=None, max_length=None, item=None, fields=None, options=()):
        self.kind, self.low, self.high, self.open_low, self.open_high = kind, low, high, open_low, open_high
        self.finite, self.choices, self.nullable, self.optional = finite, choices, nullable, optional
        self.length, self.max_length, self.item, self.fields, self.options = length, max_length, item, fields, options

    def describe(self):
        k = self.kind
        if self.choices is not None:
            text = "one of " + ", ".join(repr(c) for c in self.choices)
        elif k in ("int", "float"):
            noun = "an integer" if k == "int" else "a number"
            if self.low == 0 and self.open_low and self.high is None:
                text = "a positive " + ("integer" if k == "int" else "number")
            elif self.low is not None and self.high is not None:
                left, right = "(" if self.open_low else "[", ")" if self.open_high else "]"
                text = f"{noun} in {left}{self.low}, {self.high}{right}"
            elif self.low is not None:
                text = f"{noun} {'>' if self.open_low else '>='} {self.low}"
            else:
                text = noun
        elif k == "list":
            size = f"{self.length} " if self.length is not None else ""
            text = f"a list of {size}items, each {self.item.describe()}"
            if self.max_length is not None:
                text += f" (at most {self.max_length})"
        elif k == "any_of":
            text = " or ".join(o.describe() for o in self.options)
        else:
            text = {"str": "a string", "bool": "true or false", "scalar": "a number, string, boolean or null",
                    "null": "null", "section": "an object", "mapping": "an object"}[k]
        return text + (" or null" if self.nullable and k != "null" else "")

    def check(self, value, where):
        """Raise :class:`FormatError` unless ``value`` is allowed; ``where`` names it."""
        if value is None and (self.nullable or self.kind in ("null", "scalar")):
            return
        k = self.kind
        if k == "any_of":
            for option in self.options:
                try:
                    option.check(value, where)
                    return
                except FormatError:
                    pass
            self._fail(value, where)
        if k == "section" or k == "mapping":
            if not isinstance(value, dict):
                self._fail(value, where)
            if k == "mapping":
                for key, v in value.items():
                    self.item.check(v, _join(where, key))
                return
            for key, v in value.items():
                if key not in self.fields:
                    allowed = ", ".join(sorted(self.fields))
                    raise FormatError(_join(where, key), f"is not a field of the format (allowed in "
                                                         f"{where or 'the file'}: {allowed})")
                self.fields[key].check(v, _join(where, key))
            for key, f in self.fields.items():
                if key not in value and not f.optional:
                    raise FormatError(_join(where, key), f"is missing (it must be {f.describe()})")
            return
        if k == "list":
            if not isinstance(value, list) or (self.length is not None and len(value) != self.length) or (
                    self.max_length is not None and len(value) > self.max_length):
                self._fail(value, where)
            for i, v in enumerate(value):
                self.item.check(v, f"{where}[{i}]")
            return
        ok = {
            "int": isinstance(value, int) and not isinstance(value, bool),
            "float": isinstance(value, (int, float)) and not isinstance(value, bool),
            "str": isinstance(value, str),
            "bool": isinstance(value, bool),
            "scalar": isinstance(value, (int, float, str, bool)),
            "null": False,
        }[k]
        if ok and k in ("int", "float"):
            ok = self._in_bounds(value)
        if ok and self.choices is not None:
            ok = value in self.choices
        if not ok:
            self._fail(value, where)

    def _in_bounds(self, value):
        if not math.isfinite(value):
            return not self.finite and self.low is None and self.high is None
        if self.low is not None and (value <= self.low if self.open_low else value < self.low):
            return False
        return self.high is None or (value < self.high if self.open_high else value <= self.high)

    def _fail(self, value, where):
        raise FormatError(where, f"must be {self.describe()}; got {_got(value)}")


def _int(low=None, high=None, **kw):
    return Field("int", low=low, high=high, **kw)


def _float(low=None, high=None, **kw):
    return Field("float", low=low, high=high, **kw)


def _choice(*choices, **kw):
    return Field("str", choices=choices, **kw)


def _list(item, **kw):
    return Field("list", item=item, **kw)


def _section(fields, **kw):
    return Field("section", fields=fields, **kw)


_POSITIVE = {"low": 0, "open_low": True}
_SHAPE = _list(_int(1, 2**31 - 1), length=2)
_GUIDES = _section({
    "frequencies": _list(_list(_float(), length=2), max_length=MAX_GUIDES),
    "phases": _list(_float(), max_length=MAX_GUIDES),
    "kind": _choice("sin", "linear", optional=True),
})
#: State of a ``numpy.random.RandomState`` (``get_state()``, legacy MT19937).
_RANDOM_STATE = _section({
    "bit_generator": _choice("MT19937"),
    "key": _list(_int(0, 2**32 - 1), length=_MT19937_WORDS),
    "pos": _int(0, _MT19937_WORDS),
    "has_gauss": _int(0, 1),
    "cached_gaussian": _float(),
}, optional=True)
#: Fitted attributes of the estimator: the only ones ``load`` sets from ``fitted``.
FITTED = {
    "n_channels_in_": _int(1, MAX_CHANNELS),
    "bandwidth_": _float(**_POSITIVE),
    "min_size_": _int(0),
    "metric_": _choice("euclidean", "l1"),
    "core_fraction_": _float(0, 1, open_low=True, nullable=True, optional=True),  # absent: saved before it existed
    "fg_threshold_": _float(0, 1, open_low=True, open_high=True, optional=True),
    "recovery_": _choice("split", "components", "mean_shift", optional=True),  # absent: saved before it existed
    "min_share_": _float(0, 1, optional=True),  # absent: saved before it existed
    # absent: saved before they existed (``load`` takes ``scale``, the network's width, the history's length, None)
    "scale_": _float(**_POSITIVE, optional=True),
    "base_width_": _int(1, MAX_CHANNELS, optional=True),
    "n_epochs_": _int(0, optional=True),
    "time_budget_": Field("mapping", item=Field("scalar"), nullable=True, optional=True),
}
NETWORK = {
    "in_channels": _int(1, MAX_CHANNELS),
    "n_outputs": _int(1, MAX_GUIDES),
    "guides": Field("section", fields=_GUIDES.fields, nullable=True, optional=True),
    "variant": _choice("sin", "coord", "none", optional=True),
    "depth": _int(0, 8, optional=True),
    "base_width": _int(1, MAX_CHANNELS, optional=True),
    "norm": _choice("batch", "group", "instance", nullable=True, optional=True),
    "reference_shape": _list(_int(1, 2**31 - 1), length=2, nullable=True, optional=True),
    "upsample": _choice("bilinear", "transpose", optional=True),
    "max_width": _int(1, MAX_CHANNELS, nullable=True, optional=True),
    "pad_mode": _choice("reflect", "replicate", "constant", optional=True),
}
_TUNING_ROW = _section({
    "recovery": _choice("split", "components", "mean_shift", optional=True),
    "metric": _choice("euclidean", "l1", nullable=True, optional=True),  # null: the floor (no clustering)
    "bandwidth": _float(**_POSITIVE, nullable=True, optional=True),
    "core_fraction": _float(0, 1, open_low=True, nullable=True, optional=True),
    "min_size": _int(0, optional=True),
    "min_share": _float(0, 1, nullable=True, optional=True),
    "score": _float(finite=False, optional=True),
    "pooled_score": _float(finite=False, optional=True),
    "check_sbd": _float(finite=False, optional=True),  # the floor check of the tuning (keep_floor_unless_better)
    "check_coco_ap": _float(finite=False, optional=True),
    "fg_threshold": _float(0, 1, open_low=True, open_high=True, optional=True),
})
#: Constructor parameters are checked with the estimator's ``_parameter_constraints``,
#: except these, whose saved form differs from what the constructor takes.
PARAM_FIELDS = {
    "callbacks": Field("null", optional=True),  # user code: never saved
    "random_state": _int(0, 2**32 - 1, nullable=True, optional=True),  # a RandomState: ``random_states``
    "scale_range": _list(_float(), length=2, nullable=True, optional=True),
    "percentiles": _list(_float(), length=2, nullable=True, optional=True),
    "init_range": Field("any_of", options=(_choice("auto", "auto-length"), _list(_float(), length=2)),
                        optional=True),
}
#: Constructor parameters as saved: JSON scalars, and lists of scalars for the tuple ones.
_PARAMS = Field("mapping", item=Field("any_of", options=(Field("scalar"), _list(Field("scalar")))))
#: The sections of ``config.json``; "params" and "guides_params" (constructor
#: parameters) are checked by :func:`check_params`.
CONFIG_SCHEMA = _section({
    "format": _choice(FORMAT_NAME),
    "format_version": _int(choices=FORMAT_VERSIONS),
    "library_version": Field("str"),
    "params": _PARAMS,
    "guides_params": Field("mapping", item=_PARAMS.item, nullable=True),
    "network_params": Field("mapping", item=_PARAMS.item, nullable=True, optional=True),
    "clustering_params": Field("mapping", item=_PARAMS.item, nullable=True, optional=True),
    "augmentation_params": Field("mapping", item=_PARAMS.item, nullable=True, optional=True),
    "tiling_params": Field("mapping", item=_PARAMS.item, nullable=True, optional=True),
    "loss_params": Field("mapping", item=_PARAMS.item, nullable=True, optional=True),
    "fitted": _section(FITTED),
    "guide_fitter": _section({
        "params": _PARAMS,
        "guides": _GUIDES,
        "reference_shape": _SHAPE,
        "separation": _float(finite=False, nullable=True),
    }),
    "history": _list(Field("mapping", item=Field("scalar"))),
    "validation_indices": _list(_int(0), nullable=True, optional=True),
    "network": _section(NETWORK),
    "tuning_results": _list(_TUNING_ROW, optional=True),
    "random_states": _section({"params": _RANDOM_STATE, "guides_params": _RANDOM_STATE,
                               "guide_fitter": _RANDOM_STATE}, optional=True),
    "weights_sha256": Field("str", optional=True),  # of weights.npz
})


#: Constructor parameters saved in sections of their own (``loss`` only when not a name), never in ``params``.
_NESTED = ("guides", "network", "clustering", "augmentation", "tiling")


def _nested_classes():
    from .clustering import EmbeddingClusterer
    from .options import Augmentation, Loss, Network, Tiling

    return {"network": Network, "clustering": EmbeddingClusterer, "augmentation": Augmentation, "tiling": Tiling,
            "loss": Loss}


def check_params(values, cls, where):
    """Constructor parameters: known names only, each allowed by ``cls._parameter_constraints``."""
    from sklearn.utils._param_validation import InvalidParameterError, validate_parameter_constraints

    names = [n for n, p in inspect.signature(cls.__init__).parameters.items() if p.kind is p.KEYWORD_ONLY]
    constraints = getattr(cls, "_parameter_constraints", {})
    for key, value in values.items():
        here = _join(where, key)
        if key not in names or key in _NESTED:
            allowed = ", ".join(n for n in names if n not in _NESTED)
            raise FormatError(here, f"is not a parameter of {cls.__name__} (allowed: {allowed})")
        if key in PARAM_FIELDS:
            PARAM_FIELDS[key].check(value, here)
            if key in ("percentiles", "scale_range") and value is not None:
                _check_pair(key, value, here)
        elif key in constraints:
            if isinstance(value, list):
                raise FormatError(here, f"must be a single value; got {_got(value)}")
            try:
                validate_parameter_constraints({key: constraints[key]}, {key: value}, caller_name=cls.__name__)
            except InvalidParameterError as exc:
                raise FormatError(here, f"is not allowed: {str(exc).rstrip('.')}") from None
        elif isinstance(value, list):
            raise FormatError(here, f"must be a single value; got {_got(value)}")


def _check_pair(key, value, where):
    from ._validation import check_interval_pair

    try:
        if key == "percentiles":
            check_interval_pair(value, key, low_min=0, high_max=100, strict=True)
        else:
            check_interval_pair(value, key, low_min=0, low_inclusive=False)
    except (TypeError, ValueError) as exc:
        raise FormatError(where, f"is not allowed: {str(exc).rstrip('.')}") from None


def _n_guides(guides, where):
    n = len(guides["phases"])
    if len(guides["frequencies"]) != n or n == 0:
        raise FormatError(f"{where}.frequencies", f"must have one (fy, fx) pair per phase ({n} phases, at least "
                                                   f"1); got {len(guides['frequencies'])} pairs")
    return n


def check_config(config, est_cls):
    """Check a parsed ``config.json``; raise :class:`FormatError` naming the field at fault."""
    from .guides import GuideFunctionFitter

    if not isinstance(config, dict):
        raise FormatError("", f"must hold a JSON object; got {type(config).__name__}")
    CONFIG_SCHEMA.check(config, "")
    params, flat = config["params"], {}
    if config["format_version"] == 1:  # the flat parameters of version 1, checked as those of the nested ones
        from ._legacy_params import split_flat

        params, flat = split_flat(params)
    check_params(params, est_cls, "params")
    classes = _nested_classes()
    for name, values in flat.items():
        if name == "callbacks":
            _int(1, nullable=True).check(values["patience"], "params.patience")
        else:
            check_params(values, classes[name], "params")
    if config["guides_params"] is not None:
        check_params(config["guides_params"], GuideFunctionFitter, "guides_params")
    check_params(config["guide_fitter"]["params"], GuideFunctionFitter, "guide_fitter.params")
    for name, cls in classes.items():
        if config.get(f"{name}_params") is not None:
            check_params(config[f"{name}_params"], cls, f"{name}_params")
    for section in config.get("random_states") or {}:
        params = config["guide_fitter"]["params"] if section == "guide_fitter" else config[section]
        if params is None or params.get("random_state") is not None:
            raise FormatError(f"random_states.{section}", f"is given, so {section}.random_state must be null")
    net = config["network"]
    n_guides = _n_guides(config["guide_fitter"]["guides"], "guide_fitter.guides")
    if net["n_outputs"] != n_guides:
        raise FormatError("network.n_outputs", f"must equal the number of guide functions ({n_guides}); "
                                               f"got {net['n_outputs']}")
    if net["in_channels"] != config["fitted"]["n_channels_in_"]:
        raise FormatError("network.in_channels", f"must equal fitted.n_channels_in_ "
                                                 f"({config['fitted']['n_channels_in_']}); got {net['in_channels']}")
    variant = net.get("variant", "sin")
    if variant == "sin":
        if net.get("guides") is None:
            raise FormatError("network.guides", "must be given for variant 'sin'; got null")
        _n_guides(net["guides"], "network.guides")
    if variant == "coord" and net.get("reference_shape") is None:
        raise FormatError("network.reference_shape", "must be given for variant 'coord'; got null")
    depth, width, cap = net.get("depth", 4), net.get("base_width", 32), net.get("max_width")
    widest = min(width * 2**depth, cap if cap is not None else math.inf)
    if widest > MAX_CHANNELS:
        raise FormatError("network.base_width", f"with depth {depth} gives a level of {widest} channels; at most "
                                                f"{MAX_CHANNELS} are allowed; got {width}")


# ---------------------------------------------------------------------- weights
def sha256_bytes(data):
    """Hex SHA-256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def sha256(path):
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def expected_weights(net_config):
    """``{name: (shape, numpy dtype)}`` of the network ``net_config`` describes (nothing allocated)."""
    import torch

    from .nn import HarmonicUNet

    with torch.device("meta"):
        module = HarmonicUNet.from_config(net_config)
    return {k: (tuple(v.shape), np.dtype(str(v.dtype).removeprefix("torch."))) for k, v in module.state_dict().items()}


def _npy_header(f):
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(f)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(f)
    raise ValueError(f"unsupported .npy format version {version}")


def read_weights(w_file, expected):
    """Check every array of ``w_file`` against ``expected`` (headers first), then read them.

    Returns
    -------
    weights : dict of str to ndarray
    """
    what = "the network described in config.json"
    try:
        with zipfile.ZipFile(w_file) as zf:
            members = zf.namelist()
            names = {m[: -len(".npy")] for m in members if m.endswith(".npy")}
            odd = [m for m in members if not m.endswith(".npy")]
            if odd:
                raise FormatError(odd[0], "is not a numpy array (.npy) member")
            missing, extra = sorted(set(expected) - names), sorted(names - set(expected))
            if missing:
                raise FormatError(missing[0], f"is missing: {what} needs an array of shape {expected[missing[0]][0]}")
            if extra:
                raise FormatError(extra[0], f"is not an array of {what}")
            for name, (shape, dtype) in expected.items():
                with zf.open(name + ".npy") as f:
                    got_shape, _, got_dtype = _npy_header(f)
                if tuple(got_shape) != shape or got_dtype != dtype:
                    raise FormatError(name, f"must be an array of shape {shape} and dtype {dtype} for {what}; "
                                            f"got shape {tuple(got_shape)} and dtype {got_dtype}")
        with np.load(w_file, allow_pickle=False) as npz:
            return {k: npz[k] for k in expected}
    except FormatError:
        raise
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, KeyError) as exc:
        raise FormatError("", f"is not a readable numpy .npz archive ({type(exc).__name__}: {exc})") from None
