"""The subpackage of stage 1: its names, its imports without torch, and the deprecated old module paths."""

import importlib
import pickle
import subprocess
import sys

import numpy as np
import pytest

import harmonic_seg
import harmonic_seg.guides as guides

from .test_fitting import grid_labels

MODULES = ("functions", "fitting", "embeddings", "fitter")

#: old module path -> its new place (the module paths of stage 1 before it became a subpackage)
MOVED = {"harmonic_seg.fitter": "harmonic_seg.guides.fitter",
         "harmonic_seg.embeddings": "harmonic_seg.guides.embeddings",
         "harmonic_seg.guide_fitting": "harmonic_seg.guides.fitting"}


def test_the_package_reexports_the_public_names_of_its_modules():
    names = []
    for short in MODULES:
        module = importlib.import_module(f"harmonic_seg.guides.{short}")
        for name in module.__all__:
            assert getattr(guides, name) is getattr(module, name), (short, name)
        names += module.__all__
    assert sorted(guides.__all__) == sorted(names)
    # the top-level names of stage 1 are the same objects
    for name, where in harmonic_seg._LAZY.items():
        if where == ".guides":
            assert getattr(harmonic_seg, name) is getattr(guides, name), name


def test_stage_1_metrics_io_and_preprocessing_import_without_torch():
    modules = ["harmonic_seg.guides", *(f"harmonic_seg.guides.{m}" for m in MODULES),
               "harmonic_seg.metrics", "harmonic_seg.io", "harmonic_seg.preprocessing"]
    code = (
        "import sys\n"
        f"for m in {modules!r}:\n"
        "    __import__(m)\n"
        "import harmonic_seg\n"
        "harmonic_seg.GuideFunctionFitter, harmonic_seg.embedding_map, harmonic_seg.fit_guides\n"
        "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    # each module imports first in a fresh interpreter (no import circle), and the new paths do not warn
    for module in modules[:5]:
        out = subprocess.run([sys.executable, "-W", "error::FutureWarning", "-c", f"import {module}"],
                             capture_output=True, text=True)
        assert out.returncode == 0, (module, out.stderr)


def _import_fresh(old, monkeypatch):
    """Import ``old`` as a first import would (a module is executed, and warns, once per process)."""
    monkeypatch.delitem(sys.modules, old, raising=False)
    with pytest.warns(FutureWarning, match=rf"{old}\b.*moved to {MOVED[old]}.*future version") as record:
        module = importlib.import_module(old)
    assert len([w for w in record if issubclass(w.category, FutureWarning)]) == 1
    return module


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_module_paths_warn_and_give_the_same_objects(old, monkeypatch):
    module = _import_fresh(old, monkeypatch)
    new = importlib.import_module(MOVED[old])
    assert module.__all__ == new.__all__
    for name in new.__all__:
        assert getattr(module, name) is getattr(new, name), name
    # the names outside __all__ (and the private ones) resolve as they did before the move
    extra = {"harmonic_seg.fitter": ["STRATEGIES"], "harmonic_seg.embeddings": ["check_table_size", "_lookup"],
             "harmonic_seg.guide_fitting": ["reference_shape", "_instance_lengths"]}[old]
    for name in extra:
        assert getattr(module, name) is getattr(new, name), name
    with pytest.raises(AttributeError):
        module.no_such_name


def test_the_names_of_the_old_guides_module_still_import_from_the_package():
    from harmonic_seg.guides import check_origin, window_coordinates
    from harmonic_seg.guides.functions import check_origin as origin, window_coordinates as coordinates

    assert (check_origin, window_coordinates) == (origin, coordinates)


def _old_pickle(obj, renames):
    """``obj`` pickled as an earlier version wrote it: its classes named by their old module paths."""
    data = pickle.dumps(obj, protocol=2)  # protocol 2 names a class as the text "c<module>\n<name>\n"
    for (new, name), old in renames.items():
        text, old_text = f"c{new}\n{name}\n".encode(), f"c{old}\n{name}\n".encode()
        assert data.count(text) == 1, (new, name)
        data = data.replace(text, old_text)
    return data


def test_a_fitter_pickled_under_the_old_module_paths_unpickles(monkeypatch):
    labels = grid_labels(n_images=2, shape=(32, 32), cells=4)
    fitter = guides.GuideFunctionFitter(n_guides=4, strategy="random", random_state=0).fit(labels)
    data = _old_pickle(fitter, {("harmonic_seg.guides.fitter", "GuideFunctionFitter"): "harmonic_seg.fitter",
                                ("harmonic_seg.guides.functions", "GuideFunctions"): "harmonic_seg.guides"})
    assert b"charmonic_seg.fitter\nGuideFunctionFitter\n" in data
    monkeypatch.delitem(sys.modules, "harmonic_seg.fitter", raising=False)
    with pytest.warns(FutureWarning, match="harmonic_seg.fitter moved"):
        loaded = pickle.loads(data)
    assert type(loaded) is guides.GuideFunctionFitter and type(loaded.guides_) is guides.GuideFunctions
    assert loaded.get_params() == fitter.get_params()
    np.testing.assert_array_equal(loaded.transform(labels)[0], fitter.transform(labels)[0])
    # pickled again, it names the new path
    assert b"harmonic_seg.guides.fitter" in pickle.dumps(loaded, protocol=2)


def test_a_guide_search_result_pickled_under_the_old_module_path_unpickles(monkeypatch):
    result = guides.fit_guides(grid_labels(n_images=2, shape=(32, 32), cells=4), n_guides=4, max_iter=2,
                               random_state=0)
    data = _old_pickle(result, {("harmonic_seg.guides.fitting", "GuideFitResult"): "harmonic_seg.guide_fitting",
                                ("harmonic_seg.guides.functions", "GuideFunctions"): "harmonic_seg.guides"})
    monkeypatch.delitem(sys.modules, "harmonic_seg.guide_fitting", raising=False)
    with pytest.warns(FutureWarning, match="harmonic_seg.guide_fitting moved"):
        loaded = pickle.loads(data)
    assert type(loaded) is guides.GuideFitResult
    assert loaded.guides.to_dict() == result.guides.to_dict()
