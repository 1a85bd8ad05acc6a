"""Model files: the saved folder format, pickles, and what loading a damaged or crafted file does."""

import json
import pickle
import os
import re
import shutil
import stat
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch

from harmonic_seg import HarmonicSegmenter

DATA = Path(__file__).resolve().parent / "data"


# ------------------------------------------------------------- back compatibility
def _check_expected(seg):
    expected = np.load(DATA / "model_v1_expected.npz")
    labels = seg.predict([expected["image"]])[0]
    np.testing.assert_array_equal(labels, expected["labels"])
    assert labels.max() == 3  # a non-trivial label map
    embedding, fg_prob = seg.predict_embeddings([expected["image"]])[0]
    # float results may differ in the last bits between CPU instruction sets
    np.testing.assert_allclose(embedding, expected["embedding"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(fg_prob, expected["fg_prob"], rtol=0, atol=1e-5)


def test_model_folder_saved_by_version_1_loads_and_predicts_the_same():
    seg = HarmonicSegmenter.load(DATA / "model_v1")
    assert (seg.network.depth, seg.network.base_width, seg.guides_.n_guides_) == (2, 4, 4)
    _check_expected(seg)


def test_model_pickled_by_version_1_loads_and_predicts_the_same():
    seg = joblib.load(DATA / "model_v1.joblib")
    assert isinstance(seg, HarmonicSegmenter)
    _check_expected(seg)


# ------------------------------------------------------------------ saving safely
@pytest.fixture
def model():
    """A fitted segmenter, loaded from the version-1 fixture (no training)."""
    return HarmonicSegmenter.load(DATA / "model_v1")


def test_overwrite_replaces_only_the_model_files(model, tmp_path):
    target = tmp_path / "model"
    model.save(target)
    (target / "notes.txt").write_text("keep me")
    (target / "plots").mkdir()
    (target / "plots" / "loss.png").write_bytes(b"png")
    model.fg_threshold_ = 0.35
    model.save(target, overwrite=True)
    assert (target / "notes.txt").read_text() == "keep me" and (target / "plots" / "loss.png").is_file()
    assert HarmonicSegmenter.load(target).fg_threshold_ == 0.35
    assert sorted(p.name for p in target.iterdir()) == ["config.json", "notes.txt", "plots", "weights.npz"]


def test_save_refuses_targets_that_are_not_model_folders(model, tmp_path):
    (tmp_path / "file").write_text("data")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "config.json").write_text('{"name": "another tool"}')  # a config.json, not ours
    (foreign / "data.csv").write_text("1,2")
    for target in (tmp_path / "file", foreign):
        with pytest.raises(FileExistsError, match="not"):
            model.save(target, overwrite=True)
    assert (tmp_path / "file").read_text() == "data"
    assert sorted(p.name for p in foreign.iterdir()) == ["config.json", "data.csv"]
    (tmp_path / "empty").mkdir()
    model.save(tmp_path / "empty")  # an empty folder: nothing to lose
    assert HarmonicSegmenter.load(tmp_path / "empty").bandwidth_ == model.bandwidth_


def test_save_under_a_file_is_refused_naming_it(model, tmp_path):
    (tmp_path / "keep.txt").write_text("data")
    for target in (tmp_path / "keep.txt" / "sub", tmp_path / "keep.txt" / "a" / "b"):
        # was a NotADirectoryError from mkdir, after the model had been serialised
        with pytest.raises(FileExistsError, match="keep.txt exists and is not a folder"):
            model.save(target)
    assert (tmp_path / "keep.txt").read_text() == "data"


@pytest.mark.parametrize("path", [None, 5, 1.5, ["model"]])
def test_save_and_load_refuse_paths_that_are_not_path_like(model, path):
    # were pathlib's "expected str, bytes or os.PathLike object"
    with pytest.raises(TypeError, match="path must be a str or pathlib.Path"):
        model.save(path)
    with pytest.raises(TypeError, match="path must be a str or pathlib.Path"):
        HarmonicSegmenter.load(path)


def test_save_refuses_an_empty_path(model):
    with pytest.raises(ValueError, match="path must name a model folder"):
        model.save("")


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_saved_files_get_the_users_permissions(model, tmp_path):
    old = os.umask(0o027)
    try:
        model.save(tmp_path / "model")
        (tmp_path / "model" / "config.json").chmod(0o600)
        model.save(tmp_path / "model", overwrite=True)
    finally:
        os.umask(old)
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    assert mode(tmp_path / "model") == 0o750  # not 0o700
    assert mode(tmp_path / "model" / "weights.npz") == 0o640
    assert mode(tmp_path / "model" / "config.json") == 0o600  # a replaced file keeps its permissions


def test_failed_save_leaves_the_previous_model(model, tmp_path, monkeypatch):
    target = tmp_path / "model"
    model.save(target)
    before = {p.name: p.read_bytes() for p in target.iterdir()}

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    model.fg_threshold_ = 0.35
    with pytest.raises(OSError, match="disk full"):
        model.save(target, overwrite=True)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before  # no temporary file left either
    assert HarmonicSegmenter.load(target).fg_threshold_ == 0.5


def test_weights_changed_after_saving_are_refused(model, tmp_path):
    model.save(tmp_path / "model")
    with np.load(tmp_path / "model" / "weights.npz") as npz:
        weights = {k: npz[k] * 2 for k in npz.files}
    np.savez(tmp_path / "model" / "weights.npz", **weights)  # same names, shapes and dtypes
    with pytest.raises(ValueError, match=r"weights\.npz is not the weights file saved with .*config\.json"):
        HarmonicSegmenter.load(tmp_path / "model")


def test_tuning_results_and_random_states_are_saved(model, tmp_path):
    rows = [{"metric": "l1", "bandwidth": np.float64(0.4), "core_fraction": None, "min_size": 3,
             "score": np.float64(0.81), "fg_threshold": 0.5}, {"fg_threshold": 0.3, "score": 0.7}]
    model.tuning_results_ = rows
    rs, rs_guides = np.random.RandomState(3), np.random.RandomState(4)
    rs.rand(5), rs.standard_normal()  # a state in the middle of the stream, with a cached Gaussian
    model.set_params(random_state=rs, guides__random_state=rs_guides)
    model.guides_.set_params(random_state=np.random.RandomState(5))
    model.save(tmp_path / "model")
    loaded = HarmonicSegmenter.load(tmp_path / "model")
    assert loaded.tuning_results_ == [{k: (float(v) if isinstance(v, np.floating) else v) for k, v in r.items()}
                                      for r in rows]
    for got, want in ((loaded.random_state, rs), (loaded.guides.random_state, rs_guides),
                      (loaded.guides_.random_state, model.guides_.random_state)):
        assert isinstance(got, np.random.RandomState)
        a, b = got.get_state(), want.get_state()
        assert a[0] == b[0] and np.array_equal(a[1], b[1]) and a[2:] == b[2:]
    assert loaded.random_state.rand() == rs.rand()


def test_save_refuses_what_load_would_refuse_before_writing(model, tmp_path):
    model.set_params(network__depth=99)  # set_params does not check
    with pytest.raises(ValueError, match=r"cannot be saved: config\.json: network_params\.depth"):
        model.save(tmp_path / "model")
    assert not (tmp_path / "model").exists()


# ---------------------------------------------------------- damaged or crafted files
def _copy_v1(tmp_path):
    target = tmp_path / "model"
    shutil.copytree(DATA / "model_v1", target)
    return target


def _edit_config(folder, edit):
    cfg = json.loads((folder / "config.json").read_text())
    edit(cfg)
    (folder / "config.json").write_text(json.dumps(cfg))


def _set(section, key, value):
    def edit(cfg):
        cfg[section][key] = value
    return edit


def _delete(section, key=None):
    def edit(cfg):
        del (cfg if key is None else cfg[section])[key or section]
    return edit


@pytest.mark.parametrize("edit, match", [
    (_delete("network"), r"network is missing"),
    (_delete("fitted", "bandwidth_"), r"fitted\.bandwidth_ is missing"),
    (_set("fitted", "bandwidth_", "x"), r"fitted\.bandwidth_ must be a positive number; got 'x'"),
    (_set("fitted", "min_size_", -1), r"fitted\.min_size_ must be an integer >= 0; got -1"),
    (_set("fitted", "predict", "not a method"), r"fitted\.predict is not a field of the format"),
    (_set("fitted", "module_", None), r"fitted\.module_ is not a field of the format"),
    (_set("params", "depth", 99), r"params\.depth is not allowed"),
    (_set("params", "os_command", "rm"), r"params\.os_command is not a parameter of HarmonicSegmenter"),
    (_set("params", "percentiles", [99, 1]), r"params\.percentiles is not allowed"),
    (_set("network", "base_width", 10**6), r"network\.base_width must be an integer in \[1, 8192\]"),
    (lambda cfg: cfg["network"].update(depth=8, base_width=64),
     r"network\.base_width with depth 8 gives a level of 16384 channels; at most 8192"),
    (_set("network", "in_channels", 3), r"network\.in_channels must equal fitted\.n_channels_in_"),
    (_set("network", "variant", "paint"), r"network\.variant must be one of 'sin', 'coord', 'none'"),
    (_set("guide_fitter", "reference_shape", [48]), r"guide_fitter\.reference_shape must be a list of 2"),
    (_set("history", 0, [1]), r"history\[0\] must be an object"),
])
def test_damaged_config_is_refused_naming_the_file_and_field(tmp_path, edit, match, monkeypatch):
    from harmonic_seg.nn import HarmonicUNet

    folder = _copy_v1(tmp_path)
    _edit_config(folder, edit)

    def never(*args, **kwargs):
        raise AssertionError("a network was built from a file that the format does not allow")

    monkeypatch.setattr(HarmonicUNet, "__init__", never)  # refused before anything is built
    with pytest.raises(ValueError, match=match) as info:
        HarmonicSegmenter.load(folder)
    assert str(folder) in str(info.value) and "save" in str(info.value)


def test_truncated_files_are_refused_naming_the_file(tmp_path):
    folder = _copy_v1(tmp_path)
    text = (folder / "config.json").read_text()
    (folder / "config.json").write_text(text[: len(text) // 2])
    with pytest.raises(ValueError, match=rf"{re.escape(str(folder / 'config.json'))}: not a readable JSON file"):
        HarmonicSegmenter.load(folder)
    (folder / "config.json").write_text(text)
    data = (folder / "weights.npz").read_bytes()
    (folder / "weights.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=rf"{re.escape(str(folder / 'weights.npz'))}: is not a readable numpy"):
        HarmonicSegmenter.load(folder)


def _edit_weights(folder, edit):
    with np.load(folder / "weights.npz") as npz:
        weights = {k: npz[k] for k in npz.files}
    edit(weights)
    np.savez(folder / "weights.npz", **weights)


@pytest.mark.parametrize("edit, match", [
    (lambda w: w.pop("head.bias"), r"head\.bias is missing"),
    (lambda w: w.update(extra=np.zeros(3)), r"extra is not an array of the network"),
    (lambda w: w.update({"head.weight": np.zeros((5, 4, 3, 3), np.float32)}),
     r"head\.weight must be an array of shape \(5, 4, 1, 1\) and dtype float32.*got shape \(5, 4, 3, 3\)"),
    (lambda w: w.update({"head.weight": w["head.weight"].astype(np.float64)}),
     r"head\.weight must be an array of shape \(5, 4, 1, 1\) and dtype float32.*dtype float64"),
    (lambda w: w.update({"head.bias": np.array([None] * 5, dtype=object)}), r"head\.bias must be an array"),
])
def test_weights_not_matching_the_network_are_refused(tmp_path, edit, match):
    folder = _copy_v1(tmp_path)
    _edit_weights(folder, edit)
    with pytest.raises(ValueError, match=match) as info:
        HarmonicSegmenter.load(folder)
    assert str(folder / "weights.npz") in str(info.value)


def test_incompatible_format_version(model, tmp_path):
    model.save(tmp_path / "model")
    cfg = json.loads((tmp_path / "model" / "config.json").read_text())
    cfg["format_version"] = 99
    (tmp_path / "model" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="format version 99"):
        HarmonicSegmenter.load(tmp_path / "model")
    with pytest.raises(FileNotFoundError, match="not a folder written by"):
        HarmonicSegmenter.load(tmp_path / "nothing")


def test_gpu_fitted_model_unpickles_on_cpu_with_warning(model, monkeypatch):
    state = model.__getstate__()
    state["_module_device"] = "cuda:0"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    est = HarmonicSegmenter.__new__(HarmonicSegmenter)
    with pytest.warns(UserWarning, match="moved to the CPU"):
        est.__setstate__(pickle.loads(pickle.dumps(state)))
    assert next(est.module_.parameters()).device.type == "cpu"
