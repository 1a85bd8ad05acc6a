"""Pickling and the safe save format of HarmonicSegmenter.

Pickling (joblib): the torch network is stored as its JSON configuration and a
dict of numpy arrays, so a model fitted on a GPU unpickles on a CPU-only
machine (with a warning that says so).

Safe format (``save``/``load``): a folder with ``config.json`` (format
version, library version, constructor parameters, fitted attributes, guide
functions, network configuration) and ``weights.npz`` (numpy arrays, loaded
with ``allow_pickle=False``). Loading it never executes code.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np

from ._version import __version__

logger = logging.getLogger(__name__)

FORMAT_NAME = "harmonic_seg.HarmonicSegmenter"
FORMAT_VERSION = 1
_FITTED_SCALARS = ("n_channels_in_", "bandwidth_", "min_size_", "metric_", "core_fraction_", "fg_threshold_")


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
    est.__dict__.update(state)
    # parameters added after the object was pickled take their defaults
    for name, param in inspect.signature(type(est).__init__).parameters.items():
        if param.kind is param.KEYWORD_ONLY and name not in est.__dict__:
            setattr(est, name, param.default)
    if config is None:
        return
    if "validation_indices_" not in est.__dict__:  # pickled before it was recorded
        est.validation_indices_ = None
    if "core_fraction_" not in est.__dict__:
        est.core_fraction_ = est.core_fraction
    if "fg_threshold_" not in est.__dict__:
        est.fg_threshold_ = est.fg_threshold
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
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def _range(value):
    """A JSON-loaded ``init_range``: ``"auto"`` stays, a list becomes a tuple."""
    return value if isinstance(value, str) else tuple(value)


def save(est, path, *, overwrite=False):
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(est, "module_")
    path = Path(path)
    if path.exists():
        if not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True to replace it.")
        if not (path / "config.json").is_file():
            raise FileExistsError(f"{path} exists and is not a saved HarmonicSegmenter; refusing to replace it.")
    params = est.get_params(deep=False)
    guides = params.pop("guides")
    params["callbacks"] = None  # user objects: not saved (they are code, not configuration)
    params["random_state"] = params["random_state"] if isinstance(params["random_state"], (int, type(None))) else None
    net_config, weights, _ = _module_payload(est.module_)
    config = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "params": {k: _jsonable(v) for k, v in params.items()},
        "guides_params": None if guides is None else {k: _jsonable(v) for k, v in guides.get_params().items()},
        "fitted": {k: _jsonable(getattr(est, k)) for k in _FITTED_SCALARS},
        "guide_fitter": {
            "params": {k: _jsonable(v) for k, v in est.guides_.get_params().items()},
            "guides": est.guides_.guides_.to_dict(),
            "reference_shape": list(est.guides_.reference_shape_),
            "separation": est.guides_.separation_,
        },
        "history": est.history_,
        "validation_indices": getattr(est, "validation_indices_", None),
        "network": net_config,
    }
    # Write into a temporary folder beside the target, then move it in place:
    # an interrupted save never leaves a half-written model behind.
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        (tmp / "config.json").write_text(json.dumps(config, indent=2, default=_jsonable))
        np.savez(tmp / "weights.npz", **weights)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def load(cls, path, *, device="cpu"):
    from ._validation import check_device
    from .fitter import GuideFunctionFitter
    from .guides import GuideFunctions

    device = check_device(device, "device", resolve=True)  # before reading anything: a clear error, not torch's

    path = Path(path)
    cfg_file, w_file = path / "config.json", path / "weights.npz"
    for f in (cfg_file, w_file):
        if not f.is_file():
            raise FileNotFoundError(f"{f} not found: {path} is not a folder written by HarmonicSegmenter.save().")
    config = json.loads(cfg_file.read_text())
    if config.get("format") != FORMAT_NAME:
        raise ValueError(f"{cfg_file} is not a saved HarmonicSegmenter (format {config.get('format')!r}).")
    if config.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path} was saved in format version {config.get('format_version')} by harmonic_seg "
            f"{config.get('library_version')}; this is harmonic_seg {__version__}, which reads format version "
            f"{FORMAT_VERSION}. Load it with a matching harmonic_seg version and save it again."
        )
    params = dict(config["params"])
    for key in ("scale_range", "percentiles"):
        if params.get(key) is not None:
            params[key] = tuple(params[key])
    gp = config["guides_params"]
    if gp is not None:
        gp["init_range"] = _range(gp["init_range"])
    est = cls(guides=None if gp is None else GuideFunctionFitter(**gp), **params)
    gf = config["guide_fitter"]
    fp = dict(gf["params"])
    fp["init_range"] = _range(fp["init_range"])
    fitter = GuideFunctionFitter(**fp)
    fitter.guides_ = GuideFunctions.from_dict(gf["guides"])
    fitter.reference_shape_ = tuple(gf["reference_shape"])
    fitter.n_guides_ = fitter.guides_.n_guides
    fitter.separation_ = gf["separation"]
    est.guides_ = fitter
    est.core_fraction_ = est.core_fraction  # saved before core_fraction_ was recorded
    est.fg_threshold_ = est.fg_threshold  # saved before fg_threshold_ was recorded
    for k, v in config["fitted"].items():
        setattr(est, k, v)
    est.history_ = config["history"]
    est.validation_indices_ = config.get("validation_indices")  # None: saved before it was recorded
    est.tuning_results_ = []
    with np.load(w_file, allow_pickle=False) as npz:
        weights = {k: npz[k] for k in npz.files}
    est.module_ = _build_module(config["network"], weights, device)
    return est
