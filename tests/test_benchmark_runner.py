"""The reproduction runner (benchmarks/run.py) and its configs: every config builds a valid estimator, the hand
recipes are reproduce.py's, and a run writes the result file that docs/render.py turns into the summary."""

import json
import sys
from pathlib import Path

import pytest

from .test_docs_render import render

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

run = pytest.importorskip("run")

#: What a config file may say (benchmarks/run.py's docstring).
CONFIG_KEYS = {"label", "method", "dataset", "train_truth", "max_time", "num_threads", "budget_minutes", "seeds",
               "params"}


def _configs():
    return sorted((BENCHMARKS / "configs").glob("*/*.json"))


def test_configs_exist_for_every_method_the_summary_shows():
    names = {p.parent.name for p in _configs()}
    assert {"defaults", "recipe", "cellpose", "oracle"} <= names
    for config in ("defaults", "recipe", "cellpose", "oracle"):
        assert {p.stem for p in (BENCHMARKS / "configs" / config).glob("*.json")} == set(run.DATASETS), config


@pytest.mark.parametrize("path", _configs(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_config_is_valid(path):
    from harmonic_seg import HarmonicSegmenter

    cfg = run.read_config(path.parent.name, path.stem)
    assert set(cfg) <= CONFIG_KEYS, set(cfg) - CONFIG_KEYS
    assert path.stem in run.DATASETS and isinstance(cfg.get("label"), str)
    assert cfg.get("train_truth", "gold") == ("silver" if path.stem == "ctc_dic_c2dh_hela" else "gold") or \
        cfg["method"] == "oracle"
    if cfg["method"] == "harmonic":
        params = dict(cfg["params"], max_time=cfg["max_time"], num_threads=cfg.get("num_threads"), random_state=3)
        seg = HarmonicSegmenter(**run.segmenter_params(params, 3))
        seg._validate_params()  # the parameter constraints, nested estimators included
        for name, value in cfg["params"].items():
            if isinstance(value, dict):  # nested: every key reaches the estimator, the guides take the seed
                nested = getattr(seg, name).get_params()
                for key, v in value.items():
                    assert nested[key] == (tuple(v) if isinstance(v, list) else v), (name, key)
                if name == "guides":
                    assert nested["random_state"] == 3
    elif cfg["method"] == "cellpose":
        assert cfg["budget_minutes"] > 0 and set(cfg["params"]) <= {"lr", "batch_size", "bsize", "device", "epochs"}
    else:
        from oracle import oracle  # noqa: F401 -- the function the config's params are passed to
        assert set(cfg["params"]) <= {"scales", "guides"}


@pytest.mark.parametrize("dataset", ["bbbc010", "ctc_dic_c2dh_hela"])
def test_recipe_configs_build_the_recipes_of_reproduce(dataset):
    import reproduce

    from harmonic_seg import GuideFunctionFitter, HarmonicSegmenter

    guides = reproduce.GUIDE_CHOICES[reproduce.RECIPE_GUIDES[dataset]]
    cfg = run.read_config("recipe", dataset)
    old = dict(reproduce.RECIPES[dataset], guides=GuideFunctionFitter(n_guides=12, margin=0.5, random_state=1, **guides),
               variant="sin", loss=cfg["params"]["loss"], steps_per_epoch=20, validation_fraction=0.1,
               tune_postprocessing=True, num_threads=2, random_state=1, amp=True, max_time=720)
    a = HarmonicSegmenter(**reproduce.segmenter_params(old)).get_params(deep=True)
    b = HarmonicSegmenter(**run.segmenter_params(dict(cfg["params"], max_time=720, random_state=1, num_threads=2),
                                                 1)).get_params(deep=True)
    plain = lambda d: {k: v for k, v in d.items() if not hasattr(v, "get_params")}  # noqa: E731
    assert plain(a) == plain(b)


def test_a_run_writes_what_the_summary_renders(tmp_path, monkeypatch):
    import train_embedding

    from harmonic_seg.synthetic import make_instances

    configs = tmp_path / "configs" / "defaults"
    configs.mkdir(parents=True)
    tiny = {"label": "defaults", "method": "harmonic", "seeds": [0], "num_threads": 1, "params": {
        "epochs": 1, "crop_size": 32, "validation_fraction": 0, "tune_postprocessing": False, "scale": 1.0,
        "network": {"depth": 2, "base_width": 4}, "guides": {"n_guides": 4, "max_iter": 5}}}
    (configs / "cvppp_a1.json").write_text(json.dumps(tiny))
    monkeypatch.setattr(run, "CONFIGS", tmp_path / "configs")
    data = {split: make_instances(n_images=2, shape=(48, 48), random_state=i) for i, split in enumerate(("train", "test"))}
    monkeypatch.setattr(train_embedding, "load", lambda name, split, truth="gold": data[split])
    out = tmp_path / "project" / "benchmarks" / "results"
    run.main(["defaults", "cvppp_a1", "--out", str(out)])
    result = json.loads((out / "defaults_cvppp_a1_seed0.json").read_text())
    assert result["config"] == "defaults" and result["seed"] == 0 and result["method"] == "harmonic"
    assert result["command"] == "python benchmarks/run.py defaults cvppp_a1 --seeds 0"
    assert result["settings"] == tiny and result["params"]["random_state"] == 0
    assert {"harmonic, predicted foreground", "floor: connected components of the predicted foreground",
            "harmonic, given foreground"} <= set(result["rows"])
    assert result["fit_seconds"] > 0 and result["n_epochs"] == 1 and "date" in result["machine"]
    # nothing is overwritten: a second run keeps the first file under a new name
    run.main(["defaults", "cvppp_a1", "--out", str(out)])
    assert (out / "defaults_cvppp_a1_seed0-1.json").is_file()
    (out / "defaults_cvppp_a1_seed0-1.json").unlink()
    # the summary and the per-seed table render from it, with the runner's command
    page = tmp_path / "project" / "docs" / "page.md"
    page.parent.mkdir()
    page.write_text("<!-- table:defaults -->\n<!-- /table:defaults -->\n", encoding="utf-8")
    assert render.main([], root=tmp_path / "project") == 0
    text = page.read_text(encoding="utf-8")
    sbd = result["rows"]["harmonic, predicted foreground"]["SBD"]
    row = next(line for line in text.splitlines() if line.startswith("| CVPPP A1 leaves | defaults, `epochs=1, "))
    assert row.split(" | ")[2:4] == ["1", f"{sbd:.3f}"]
    assert "`python benchmarks/run.py defaults cvppp_a1`" in text


def test_runner_refuses_unknown_configs_and_existing_model_folders(tmp_path, capsys):
    with pytest.raises(SystemExit, match="no config"):
        run.main(["no_such_config", "bbbc010"])
    (tmp_path / "bbbc010_seed0").mkdir()
    with pytest.raises(SystemExit):
        run.main(["defaults", "bbbc010", "--seeds", "0", "--save-models", str(tmp_path)])
    assert "exists" in capsys.readouterr().err
