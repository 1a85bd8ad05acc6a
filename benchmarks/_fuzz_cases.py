"""Cases of benchmarks/fuzz.py: the helpers cases use, their fixtures, folders and names.

A case is a few lines of Python (run with ``exec``) that call the public API or the command line with
inputs drawn from pools of valid and malformed values, plus the files of its folder that it is allowed
to change (``released``; every other file of the folder must keep its bytes). Case ``i`` of seed ``s``
is drawn from ``numpy.random.default_rng([s, i])`` alone, so ``fuzz.py --repro i --seed s`` replays it.

The names a case may use are those of :func:`namespace`; every case runs in a fresh folder made by
:func:`make_case_dir`, its working directory.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

# --------------------------------------------------------------------------------------------- helpers
SIDE = 24  # default image side: every case stays small


def lab(h=SIDE, w=SIDE, k=4, seed=0):
    """An int32 label map of ``k`` discs (later discs do not overwrite earlier ones)."""
    rng = np.random.default_rng(seed)
    out = np.zeros((h, w), np.int32)
    yy, xx = np.ogrid[:h, :w]
    for i in range(1, k + 1):  # a loop over instances, not pixels
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(1.5, max(2.0, min(h, w) / 3))
        disc = ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r) & (out == 0)
        out[disc] = i
    return out


def img(h=SIDE, w=SIDE, c=None, seed=0):
    """A float32 image of the discs of ``lab(h, w, seed=seed)`` plus noise; ``c`` channels last if given."""
    rng = np.random.default_rng(seed + 1000)
    base = (lab(h, w, seed=seed) > 0).astype(np.float32) + 0.1 * rng.standard_normal((h, w)).astype(np.float32)
    return base if c is None else np.repeat(base[..., None], c, axis=2)


def labs(n=2, h=SIDE, w=SIDE):
    return [lab(h, w, seed=i) for i in range(n)]


def imgs(n=2, h=SIDE, w=SIDE, c=None):
    return [img(h, w, c, seed=i) for i in range(n)]


def poke(a, value, n=3, seed=0):
    """A float copy of ``a`` with ``n`` pixels set to ``value`` (NaN, inf, ...)."""
    out = np.array(a, dtype=np.float64)
    flat = out.reshape(-1)
    flat[np.random.default_rng(seed).choice(flat.size, min(n, flat.size), replace=False)] = value
    return out


class LostOutput(Exception):
    """A command reported success but an output it should have written is missing."""


def expect_outputs(folder, n, pattern="*_label.*"):
    """Raise LostOutput unless ``folder`` holds at least ``n`` files matching ``pattern``."""
    found = sorted(Path(folder).glob(pattern))
    if len(found) < n:
        raise LostOutput(f"{n} inputs but {len(found)} outputs in {folder}: {[f.name for f in found]}")


def write_bytes(name, data):
    Path(name).parent.mkdir(parents=True, exist_ok=True)
    Path(name).write_bytes(data if isinstance(data, bytes) else str(data).encode())
    return name


def damage(folder, how):
    """Damage the saved model in ``folder`` in one of several ways (see DAMAGES)."""
    folder = Path(folder)
    cfg, w = folder / "config.json", folder / "weights.npz"
    if how == "truncate_config":
        cfg.write_bytes(cfg.read_bytes()[: len(cfg.read_bytes()) // 2])
    elif how == "truncate_weights":
        w.write_bytes(w.read_bytes()[: len(w.read_bytes()) // 2])
    elif how == "empty_config":
        cfg.write_bytes(b"")
    elif how == "empty_weights":
        w.write_bytes(b"")
    elif how == "config_list":
        cfg.write_text("[1, 2, 3]")
    elif how == "config_binary":
        cfg.write_bytes(bytes(range(256)))
    elif how == "no_weights":
        w.unlink()
    elif how == "weights_dir":
        w.unlink()
        w.mkdir()
    elif how == "weights_other_arrays":
        np.savez(w, a=np.zeros(3), b=np.ones((2, 2)))
    elif how == "weights_pickled":
        np.savez(w, a=np.array([{"x": 1}], dtype=object))
    elif how == "weights_bad_shape":
        with np.load(w) as z:
            arrays = {k: z[k] for k in z.files}
        first = sorted(arrays)[0]
        arrays[first] = np.zeros((1,) * (arrays[first].ndim + 1), arrays[first].dtype)
        np.savez(w, **arrays)
    elif how == "weights_nan":
        with np.load(w) as z:
            arrays = {k: np.full_like(z[k], np.nan) if z[k].dtype.kind == "f" else z[k] for k in z.files}
        np.savez(w, **arrays)
    else:  # edits of config.json: (section, key, value)
        section, key, value = DAMAGES[how]
        config = json.loads(cfg.read_text())
        target = config if section is None else config[section]
        if value is _DELETE:
            target.pop(key, None)
        else:
            target[key] = value
        cfg.write_text(json.dumps(config))


_DELETE = object()
#: config.json edits: name -> (section or None, key, new value or _DELETE).
DAMAGES = {
    "no_format": (None, "format", _DELETE),
    "format_version_99": (None, "format_version", 99),
    "format_version_str": (None, "format_version", "1"),
    "params_depth_str": ("network_params", "depth", "four"),
    "params_depth_neg": ("network_params", "depth", -3),
    "params_unknown": ("params", "colour", "blue"),
    "params_scale_nan": ("params", "scale", float("nan")),
    "params_tile_size_0": ("params", "tile_size", 0),
    "params_null": (None, "params", None),
    "no_network": (None, "network", _DELETE),
    "network_list": (None, "network", [1, 2]),
    "fitted_bandwidth_neg": ("fitted", "bandwidth_", -1.0),
    "fitted_metric_bad": ("fitted", "metric_", "cosine"),
    "fitted_min_size_str": ("fitted", "min_size_", "ten"),
    "fitted_channels_0": ("fitted", "n_channels_in_", 0),
    "guide_fitter_guides_empty": ("guide_fitter", "guides", {}),
    "guide_fitter_reference_1d": ("guide_fitter", "reference_shape", [5]),
    "history_str": (None, "history", "none"),
}
DAMAGE_KINDS = [
    "truncate_config", "truncate_weights", "empty_config", "empty_weights", "config_list", "config_binary",
    "no_weights", "weights_dir", "weights_other_arrays", "weights_pickled", "weights_bad_shape", "weights_nan",
    *DAMAGES,
]


# --------------------------------------------------------------------------------------------- fixtures
TINY = dict(epochs=1, crop_size=16, validation_fraction=0.0, device="cpu", random_state=0)
#: The network of :data:`TINY` (a case's ``network=...`` replaces it).
TINY_NETWORK = dict(depth=1, base_width=2)


def build_fixtures(folder):
    """A tiny fitted model saved in ``folder/model`` (seconds on one CPU thread)."""
    from harmonic_seg import GuideFunctionFitter, HarmonicSegmenter, Network

    folder = Path(folder)
    if (folder / "model" / "weights.npz").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    seg = HarmonicSegmenter(guides=GuideFunctionFitter(n_guides=4, max_iter=10, random_state=0),
                            network=Network(**TINY_NETWORK), **TINY)
    seg.fit(imgs(3, 32, 32), labs(3, 32, 32))
    seg.save(folder / "model.partial")
    os.replace(folder / "model.partial", folder / "model")
    return folder


def _write_image(path, array):
    from harmonic_seg.io import write_label_map

    path = Path(path)
    if path.suffix == ".png":
        from PIL import Image

        Image.fromarray(array).save(path)
    else:
        write_label_map(path, array)


def make_case_dir(folder, fixtures):
    """The folder a case runs in: inputs, a copy of the model and sentinel files."""
    folder = Path(folder)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    (folder / "keep.txt").write_bytes(rng.bytes(64))
    (folder / "keep_dir").mkdir()
    (folder / "keep_dir" / "inner.txt").write_bytes(rng.bytes(32))
    (folder / "foreign").mkdir()  # a folder that is not a saved model, though it has a config.json
    (folder / "foreign" / "config.json").write_text('{"name": "another program"}')
    (folder / "foreign" / "notes.txt").write_bytes(rng.bytes(16))
    shutil.copytree(Path(fixtures) / "model", folder / "model_copy")
    (folder / "existing_report.json").write_text('{"kept": true}')
    for sub in ("images", "labels", "pred", "twins"):
        (folder / sub).mkdir()
    for i, stem in enumerate(("a", "b")):
        lbl = lab(SIDE, SIDE, seed=i)
        _write_image(folder / "images" / f"{stem}.png", ((lbl > 0) * 200 + 20).astype(np.uint8))
        _write_image(folder / "labels" / f"{stem}.tif", lbl)
        _write_image(folder / "pred" / f"{stem}_label.tif", lab(SIDE, SIDE, seed=i + 7))
        _write_image(folder / "twins" / f"a.{('png', 'tif')[i]}", ((lbl > 0) * 200 + 20).astype(np.uint8))
    _write_image(folder / "existing_label.tif", lab(SIDE, SIDE, seed=3))
    return folder


def snapshot(*folders):
    """``{path: sha256}`` of every file under the folders."""
    out = {}
    for folder in folders:
        for root, _, files in os.walk(folder):
            for name in files:
                p = os.path.join(root, name)
                try:
                    with open(p, "rb") as f:
                        out[p] = hashlib.sha256(f.read()).hexdigest()
                except OSError:
                    out[p] = "unreadable"
    return out


# ------------------------------------------------------------------------------------------ namespace
_CACHE = {}


def namespace(fixtures):
    """The names a case may use."""
    import pickle

    import torch

    import harmonic_seg
    import harmonic_seg.clustering as C
    import harmonic_seg.guides.embeddings as E
    import harmonic_seg.guides as G
    import harmonic_seg.io as hio
    import harmonic_seg.metrics as M
    import harmonic_seg.nn as nn
    import harmonic_seg.postprocess as pp
    import harmonic_seg.preprocessing as pre
    from harmonic_seg import (
        Augmentation,
        ChannelSelector,
        GuideFunctionFitter,
        HarmonicSegmenter,
        Loss,
        Network,
        PercentileNormalizer,
        Tiling,
    )
    from harmonic_seg.clustering import EmbeddingClusterer

    model_dir = str(Path(fixtures, "model").resolve())

    def model():
        """A fresh copy of the fixture model (cases may change its parameters)."""
        if "model" not in _CACHE:
            _CACHE["model"] = HarmonicSegmenter.load(model_dir)
        return copy.deepcopy(_CACHE["model"])

    def tiny(**params):
        """A HarmonicSegmenter with tiny settings, ``params`` overriding them."""
        kw = dict(TINY, guides=GuideFunctionFitter(n_guides=4, max_iter=5, random_state=0),
                  network=Network(**TINY_NETWORK))
        kw.update(params)
        return HarmonicSegmenter(**kw)

    def fitter():
        return copy.deepcopy(model().guides_)

    def guides(n=4):
        return G.random_guides(n, (32, 32), random_state=0)

    return dict(
        np=np, torch=torch, pickle=pickle, Path=Path, harmonic_seg=harmonic_seg, C=C, E=E, G=G, hio=hio, M=M, nn=nn,
        pp=pp, pre=pre, HarmonicSegmenter=HarmonicSegmenter, GuideFunctionFitter=GuideFunctionFitter,
        PercentileNormalizer=PercentileNormalizer, ChannelSelector=ChannelSelector, lab=lab, img=img, labs=labs,
        imgs=imgs, poke=poke, damage=damage, write_bytes=write_bytes, expect_outputs=expect_outputs,
        SIDE=SIDE, MODEL=model_dir, model=model, tiny=tiny, fitter=fitter, guides=guides,
        Network=Network, Augmentation=Augmentation, Tiling=Tiling, Loss=Loss, EmbeddingClusterer=EmbeddingClusterer,
    )


def run_cli_subprocess(argv, timeout):
    """``python -m harmonic_seg *argv`` in the working directory: (returncode, stderr)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "harmonic_seg", *argv], capture_output=True, text=True,
                          timeout=timeout, env=env)
    return proc.returncode, proc.stderr
