"""Pickling and the safe save format of HarmonicSegmenter.

Pickling (joblib): the torch network is stored as its JSON configuration and a
dict of numpy arrays, so a model fitted on a GPU unpickles on a CPU-only
machine (with a warning that says so).

Safe format (``save``/``load``): a folder with ``config.json`` (format
version, library version, constructor parameters, fitted attributes, guide
functions, network configuration, tuning results) and ``weights.npz`` (numpy
arrays, loaded with ``allow_pickle=False``). Loading it never executes code,
and checks both files against the format (``_model_format``) before it builds
anything. Saving replaces only these two files, each through a temporary file
in the same folder, and leaves anything else in the folder alone.
"""

from __future__ import annotations

import inspect
import io
import json
import logging
import os
import secrets
import stat
import warnings
from pathlib import Path

import numpy as np

from ._model_format import FITTED, FORMAT_NAME, FORMAT_VERSIONS, FormatError
from ._version import __version__

logger = logging.getLogger(__name__)

FORMAT_VERSION = FORMAT_VERSIONS[-1]
#: The nested estimators saved in a section ``<name>_params`` each (``loss`` when not a name); None: absent.
NESTED_SECTIONS = ("network", "clustering", "augmentation", "tiling")
_DAMAGED = "; the file is damaged or was not written by HarmonicSegmenter.save(). Save the fitted model again."


def _module_payload(module):
    import torch

    state = {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}
    device = next(iter(module.parameters()), torch.zeros(0)).device
    return module.config, state, str(device)


def _build_module(config, state, device):
    import torch

    from .nn import HarmonicUNet

    module = HarmonicUNet.from_config(config)
    module.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()})
    return module.to(device).eval()


#: Values of the parameters whose default changed in 0.2.0, as they were before: a model saved or pickled
#: by an older version without one of them was fitted with this value, not with today's default.
LEGACY_DEFAULTS = {
    "base_width": 32, "crop_size": 256, "learning_rate": 1e-3, "loss": "harmonic", "scale": 1.0,
    "tune_postprocessing": False, "amp": None,
}


def _legacy_fitted(est, network, history):
    """Fitted attributes of a model saved or pickled before they were recorded."""
    defaults = {"scale_": est.scale, "base_width_": network.get("base_width", 32), "n_epochs_": len(history or []),
                "time_budget_": None}
    for name, value in defaults.items():
        if name not in est.__dict__:
            setattr(est, name, value)


def getstate(est):
    state = est.__dict__.copy()
    module = state.pop("module_", None)
    if module is not None:
        state["_module_config"], state["_module_state"], state["_module_device"] = _module_payload(module)
    return state


def setstate(est, state):
    state = dict(state)
    config = state.pop("_module_config", None)
    weights = state.pop("_module_state", None)
    device = state.pop("_module_device", "cpu")
    # pickled before the network, clustering, augmentation, tiling and loss were nested estimators: their flat
    # values go into them
    from ._legacy_params import nest_flat, split_flat

    state, flat = split_flat(state)
    if flat:
        state = nest_flat(state, flat)
    est.__dict__.update(state)
    # parameters added after the object was pickled take their defaults
    for name, param in inspect.signature(type(est).__init__).parameters.items():
        if param.kind is param.KEYWORD_ONLY and name not in est.__dict__:
            setattr(est, name, LEGACY_DEFAULTS.get(name, param.default))
    if config is None:
        return
    if "validation_indices_" not in est.__dict__:  # pickled before it was recorded
        est.validation_indices_ = None
    if "clustering_" not in est.__dict__:  # pickled before the clustering was an estimator: its fitted values
        from ._clustering import FITTED, adopt_flat_fitted

        adopt_flat_fitted(est, {k: est.__dict__.pop(k) for k in FITTED if k in est.__dict__})
    _legacy_fitted(est, config, est.__dict__.get("history_"))
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        warnings.warn(
            f"this HarmonicSegmenter was fitted on {device}, which is not available here; "
            "its network was moved to the CPU.",
            UserWarning,
            stacklevel=3,
        )
        device = "cpu"
    est.module_ = _build_module(config, weights, device)


def _jsonable(value):
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (tuple, np.ndarray)):
        return [_jsonable(v) for v in value]
    return value


def _json_default(value):
    out = _jsonable(value)
    if out is value:
        raise TypeError(f"{type(value).__name__} {value!r:.80} cannot be written to config.json")
    return out


def _range(value):
    """A JSON-loaded ``init_range``: ``"auto"`` stays, a list becomes a tuple."""
    return value if isinstance(value, str) else tuple(value)


def _random_state_to_json(rs, name):
    state = rs.get_state(legacy=False)
    if state["bit_generator"] != "MT19937":
        raise TypeError(
            f"{name} is a RandomState on the {state['bit_generator']} generator, which cannot be saved; "
            "use an int or numpy.random.RandomState(seed)."
        )
    return {
        "bit_generator": "MT19937",
        "key": [int(k) for k in state["state"]["key"]],
        "pos": int(state["state"]["pos"]),
        "has_gauss": int(state["has_gauss"]),
        "cached_gaussian": float(state["gauss"]),
    }


def _random_state_from_json(d):
    rs = np.random.RandomState()
    rs.set_state(("MT19937", np.asarray(d["key"], dtype=np.uint32), d["pos"], d["has_gauss"], d["cached_gaussian"]))
    return rs


def _saved_params(params, section, random_states):
    """Constructor parameters as JSON values; a RandomState goes to ``random_states[section]``."""
    params = dict(params)
    if isinstance(params.get("random_state"), np.random.RandomState):
        random_states[section] = _random_state_to_json(params["random_state"], f"{section}.random_state")
        params["random_state"] = None
    return {k: _jsonable(v) for k, v in params.items()}


def _is_model_folder(path):
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and config.get("format") == FORMAT_NAME


def as_path(path, name="path"):
    """``Path(path)`` for a str, bytes or os.PathLike ``path``; a TypeError naming ``name`` otherwise."""
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a str or pathlib.Path naming a model folder; got {type(path).__name__} "
                        f"{path!r}"[:300] + ".")
    if not str(path):
        raise ValueError(f"{name} must name a model folder; got an empty string.")
    return Path(path)


def check_save_target(path, overwrite, *, option="overwrite=True"):
    """Refuse a target ``save`` may not write into, before any work.

    ``path`` may be absent, an empty folder, or (with ``overwrite``) a folder
    holding a saved model, whose ``config.json`` and ``weights.npz`` are then
    replaced (other files in it are left alone). ``option`` is how the message
    names the overwrite switch.
    """
    path = as_path(path)
    if not os.path.lexists(path):
        for parent in path.absolute().parents:  # the first one that exists must be a folder
            if os.path.lexists(parent):
                if not parent.is_dir():
                    raise FileExistsError(
                        f"cannot save to {path}: {parent} exists and is not a folder. Save the model to a folder "
                        "whose parents are folders."
                    )
                break
        return
    if not path.is_dir():
        raise FileExistsError(
            f"{path} exists and is not a folder; refusing to replace it. Save the model to a new folder."
        )
    if not any(path.iterdir()):
        return  # an empty folder: nothing in it to lose
    if not _is_model_folder(path):
        raise FileExistsError(
            f"{path} exists and is not a saved HarmonicSegmenter (it has no config.json written by "
            "HarmonicSegmenter.save()); refusing to write into it. Save the model to a new or empty folder."
        )
    if not overwrite:
        raise FileExistsError(f"{path} exists and holds a saved model; pass {option} to replace it.")


def _write_temp(target, data):
    """Write ``data`` to a new temporary file beside ``target``; return its path."""
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    # created with mode 0o666 less the umask, like any file the user writes
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if target.is_file():
            os.chmod(tmp, stat.S_IMODE(os.stat(target).st_mode))  # a replaced file keeps its permissions
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _replace_files(contents):
    """Replace files by ``{path: bytes}``: all written to temporary files first, then each moved in place."""
    temps = {}
    try:
        for target, data in contents.items():
            temps[target] = _write_temp(target, data)
        for target, tmp in temps.items():
            os.replace(tmp, target)
    finally:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)  # only those not moved in place: after an error


def save(est, path, *, overwrite=False):
    from sklearn.utils.validation import check_is_fitted

    from ._model_format import check_config, sha256_bytes

    path = as_path(path)
    check_is_fitted(est, "module_")
    check_save_target(path, overwrite)
    random_states = {}
    params = est.get_params(deep=False)
    guides = params.pop("guides")
    nested = {name: params.pop(name) for name in NESTED_SECTIONS}
    if not isinstance(params["loss"], str):  # a Loss: its section
        nested["loss"] = params.pop("loss")
    params["callbacks"] = None  # user objects: not saved (they are code, not configuration)
    net_config, weights, _ = _module_payload(est.module_)
    buffer = io.BytesIO()
    np.savez(buffer, **weights)
    weights_bytes = buffer.getvalue()
    config = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "params": _saved_params(params, "params", random_states),
        "guides_params": None if guides is None else _saved_params(guides.get_params(), "guides_params", random_states),
        "fitted": {k: _jsonable(getattr(est, k)) for k in FITTED},
        "guide_fitter": {
            "params": _saved_params(est.guides_.get_params(), "guide_fitter", random_states),
            "guides": est.guides_.guides_.to_dict(),
            "reference_shape": list(est.guides_.reference_shape_),
            "separation": est.guides_.separation_,
        },
        "history": est.history_,
        "validation_indices": getattr(est, "validation_indices_", None),
        "network": net_config,
        "tuning_results": getattr(est, "tuning_results_", []),
        "weights_sha256": sha256_bytes(weights_bytes),
    }
    for name, value in nested.items():  # absent when None
        if value is not None:
            config[f"{name}_params"] = {k: _jsonable(v) for k, v in value.get_params().items()}
    if random_states:
        config["random_states"] = random_states
    text = json.dumps(config, indent=2, default=_json_default)
    try:  # never write a file that load would refuse
        check_config(json.loads(text), type(est))
    except FormatError as exc:
        raise ValueError(f"this {type(est).__name__} cannot be saved: config.json: {exc}.") from None
    # Only the library's two files are written, both in full before either
    # replaces a file; weights first: a save stopped between the two moves
    # leaves weights that do not match the config's checksum, which load reports.
    path.mkdir(parents=True, exist_ok=True)  # mode 0o777 less the umask
    _replace_files({path / "weights.npz": weights_bytes, path / "config.json": text.encode("utf-8")})


def _read_config(cfg_file):
    try:
        return json.loads(cfg_file.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"{cfg_file}: not a readable JSON file ({type(exc).__name__}: {exc}){_DAMAGED}") from None


def load(cls, path, *, device="cpu"):
    from ._clustering import FITTED as CLUSTERING_FITTED
    from ._clustering import adopt_flat_fitted
    from ._model_format import check_config, expected_weights, read_weights, sha256
    from ._legacy_params import nest_flat, split_flat
    from ._validation import check_device
    from .clustering import EmbeddingClusterer
    from .guides import GuideFunctionFitter, GuideFunctions
    from .options import Augmentation, Loss, Network, Tiling

    device = check_device(device, "device", resolve=True)  # before reading anything: a clear error, not torch's

    path = as_path(path)
    cfg_file, w_file = path / "config.json", path / "weights.npz"
    for f in (cfg_file, w_file):
        if not f.is_file():
            raise FileNotFoundError(f"{f} not found: {path} is not a folder written by HarmonicSegmenter.save().")
    config = _read_config(cfg_file)
    fmt = config.get("format") if isinstance(config, dict) else None
    if fmt != FORMAT_NAME:
        raise ValueError(f"{cfg_file} is not a saved HarmonicSegmenter (format {fmt!r}).")
    if config.get("format_version") not in FORMAT_VERSIONS:
        raise ValueError(
            f"{path} was saved in format version {config.get('format_version')!r} by harmonic_seg "
            f"{config.get('library_version')}; this is harmonic_seg {__version__}, which reads format version "
            f"{FORMAT_VERSION}. Load it with a matching harmonic_seg version and save it again."
        )
    try:
        check_config(config, cls)
        expected = expected_weights(config["network"])
        guides = GuideFunctions.from_dict(config["guide_fitter"]["guides"])
    except (FormatError, TypeError, ValueError) as exc:
        where = "" if isinstance(exc, FormatError) else "network or guide functions: "
        raise ValueError(f"{cfg_file}: {where}{exc}{_DAMAGED}") from None
    if "weights_sha256" in config and sha256(w_file) != config["weights_sha256"]:
        raise ValueError(
            f"{w_file} is not the weights file saved with {cfg_file} (its SHA-256 checksum differs): the "
            "folder was changed after saving, or a save into it was interrupted. Save the fitted model again."
        )
    try:
        weights = read_weights(w_file, expected)
    except FormatError as exc:
        raise ValueError(f"{w_file}: {exc}{_DAMAGED}") from None

    random_states = {k: _random_state_from_json(v) for k, v in config.get("random_states", {}).items()}

    def constructor_args(saved, section):
        # format 1 only: later formats save every parameter (and base_width is no longer one of params)
        legacy = section == "params" and config["format_version"] == 1
        args = dict(LEGACY_DEFAULTS, **saved) if legacy else dict(saved)
        for key in ("scale_range", "percentiles"):
            if args.get(key) is not None:
                args[key] = tuple(args[key])
        if "init_range" in args:
            args["init_range"] = _range(args["init_range"])
        if section in random_states:
            args["random_state"] = random_states[section]
        return args

    gp = config["guides_params"]
    params, flat = split_flat(constructor_args(config["params"], "params"))  # flat: format version 1
    for name, nested_cls in (("network", Network), ("clustering", EmbeddingClusterer), ("augmentation", Augmentation),
                             ("tiling", Tiling), ("loss", Loss)):
        saved = config.get(f"{name}_params")
        if saved is not None:
            params[name] = nested_cls(**constructor_args(saved, f"{name}_params"))
    params = nest_flat(params, flat)
    est = cls(guides=None if gp is None else GuideFunctionFitter(**constructor_args(gp, "guides_params")), **params)
    gf = config["guide_fitter"]
    fitter = GuideFunctionFitter(**constructor_args(gf["params"], "guide_fitter"))
    fitter.guides_ = guides
    fitter.reference_shape_ = tuple(gf["reference_shape"])
    fitter.n_guides_ = fitter.guides_.n_guides
    fitter.separation_ = gf["separation"]
    est.guides_ = fitter
    fitted = dict(config["fitted"])  # the keys check_config allowed: FITTED only
    clustering = {k: fitted.pop(k) for k in CLUSTERING_FITTED if k in fitted}
    for k, v in fitted.items():
        setattr(est, k, v)
    est.history_ = config["history"]
    _legacy_fitted(est, config["network"], est.history_)
    est.validation_indices_ = config.get("validation_indices")  # None: saved before it was recorded
    # the fitted clusterer; values saved before they were recorded take what such a model did
    adopt_flat_fitted(est, {**clustering, "tuning_results_": config.get("tuning_results", [])})
    est.module_ = _build_module(config["network"], weights, device)
    return est
