"""harmonic-seg fit reaches every training setting; -v anywhere; predict on the best device with a progress bar."""

import numpy as np
import pytest
import tifffile

from harmonic_seg import HarmonicSegmenter, Network
from harmonic_seg.cli import build_parser, main
from harmonic_seg.io import write_label_map
from harmonic_seg.synthetic import make_instances

FIT_FLAGS = ["--out", "--overwrite", "--warm-start", "--n-guides", "--margin", "--depth", "--width", "--scale",
             "--loss", "--max-time", "--epochs", "--validation-fraction", "--tune", "--no-tune", "--amp", "--no-amp",
             "--crop-size", "--batch-size", "--threads", "--device", "--seed", "--verbose"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_fit")
    d = make_instances(n_images=3, shape=(48, 48), n_instances=(3, 6), random_state=0)
    (root / "img").mkdir()
    (root / "lab").mkdir()
    for i, (im, lab) in enumerate(zip(d.images, d.labels)):
        tifffile.imwrite(root / "img" / f"s{i}.tif", (im * 1000).astype(np.uint16))
        write_label_map(root / "lab" / f"s{i}_label.tif", lab)
    return root


@pytest.fixture
def captured(monkeypatch):
    """HarmonicSegmenter.fit replaced by one that records the estimator's parameters and stops."""
    seen = {}

    def fake_fit(self, X, y, **kw):
        seen.update(self.get_params(deep=True), fitted=hasattr(self, "module_"), n_images=len(X))
        raise ValueError("fit captured")

    monkeypatch.setattr(HarmonicSegmenter, "fit", fake_fit)
    return seen


def _fit(folders, *flags):
    return main(["fit", str(folders / "img"), str(folders / "lab"), "--out", str(folders / "never"), *flags])


def test_fit_help_lists_every_flag_with_its_default(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["fit", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag in FIT_FLAGS:
        assert flag in text, flag
    for default in ("(default: 50)", "(default: auto)", "(default: discriminative)", "(default: 0.1)",
                    "(default: True)", "(default: 192)"):
        assert default in text, default


@pytest.mark.parametrize("flags, expected", [
    ([], dict(loss="discriminative", max_time=None, scale="auto", tune_postprocessing=True, amp="auto",
              num_threads=None, epochs=50, validation_fraction=0.1, warm_start=False, device="auto", random_state=0,
              network__base_width="auto", crop_size=192, learning_rate=2e-3)),
    (["--loss", "harmonic"], dict(loss="harmonic")),
    (["--scale", "1"], dict(scale=1.0)),
    (["--width", "32"], dict(network__base_width=32)),
    (["--max-time", "90"], dict(max_time=90.0)),
    (["--scale", "auto"], dict(scale="auto")),
    (["--scale", "0.25"], dict(scale=0.25)),
    (["--tune"], dict(tune_postprocessing=True)),
    (["--no-tune"], dict(tune_postprocessing=False)),
    (["--amp"], dict(amp=True)),
    (["--no-amp"], dict(amp=False)),
    (["--threads", "3"], dict(num_threads=3)),
    (["--epochs", "7"], dict(epochs=7)),
    (["--validation-fraction", "0.25"], dict(validation_fraction=0.25)),
    (["--width", "auto", "--depth", "3", "--crop-size", "64", "--batch-size", "2", "--seed", "5", "--device", "cpu"],
     dict(network__base_width="auto", network__depth=3, crop_size=64, batch_size=2, random_state=5, device="cpu")),
    (["--n-guides", "6", "--margin", "0.7"], {"guides__n_guides": 6, "guides__margin": 0.7}),
])
def test_each_fit_flag_reaches_the_estimator(folders, captured, capsys, flags, expected):
    assert _fit(folders, *flags) == 2
    assert "fit captured" in capsys.readouterr().err
    guides = captured["guides"].get_params()
    for name, value in expected.items():
        got = guides[name.split("__")[1]] if name.startswith("guides__") else captured[name]
        assert got == value, name
    assert captured["n_images"] == 3 and not captured["fitted"]


def test_bad_scale_and_width_are_refused_by_the_parser(folders, capsys):
    for flags in (["--scale", "big"], ["--width", "wide"]):
        with pytest.raises(SystemExit):
            _fit(folders, *flags)
        assert "expected" in capsys.readouterr().err


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    d = make_instances(n_images=2, shape=(48, 48), random_state=1)
    path = tmp_path_factory.mktemp("cli_model") / "model"
    HarmonicSegmenter(network=Network(depth=2, base_width=4), epochs=1, crop_size=32, validation_fraction=0,
                      random_state=0).fit(d.images, d.labels).save(path)
    return path


def test_fit_warm_start_goes_on_with_the_saved_model(folders, saved_model, tmp_path, captured, capsys):
    assert _fit(folders, "--warm-start", str(saved_model), "--epochs", "3", "--max-time", "20", "--depth", "5") == 2
    assert "fit captured" in capsys.readouterr().err
    assert captured["warm_start"] and captured["fitted"] and captured["epochs"] == 3 and captured["max_time"] == 20
    assert captured["network__depth"] == 2 and captured["network__base_width"] == 4  # the model's, not --depth
    assert _fit(folders, "--warm-start", str(tmp_path / "nothing")) == 2
    assert "not found" in capsys.readouterr().err


def test_verbose_before_or_after_the_sub_command():
    parser = build_parser()
    for argv, level in ((["-v", "evaluate", "a", "b"], 1), (["evaluate", "a", "b", "-vv"], 2),
                        (["-v", "fit", "i", "l", "--out", "o", "-v"], 2), (["predict", "m", "i", "--out", "o"], 0)):
        args = parser.parse_args(argv)
        assert args.verbose + args.sub_verbose == level


def test_fit_with_a_budget_then_predict_on_auto_device_with_a_progress_bar(folders, tmp_path, capsys):
    model = tmp_path / "model"
    assert main(["fit", str(folders / "img"), str(folders / "lab"), "--out", str(model), "--depth", "2", "--width",
                 "4", "--crop-size", "32", "--batch-size", "2", "--max-time", "3", "--scale", "auto",
                 "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "epochs in" in out and "scale 1" in out
    assert build_parser().parse_args(["predict", "m", "i", "--out", "o"]).device == "auto"
    assert main(["predict", str(model), str(folders / "img"), "--out", str(tmp_path / "pred"), "-v"]) == 0
    captured = capsys.readouterr()
    assert "3/3" in captured.err and captured.out.count("instances ->") == 3
    # and go on training it, into the same folder
    assert main(["fit", str(folders / "img"), str(folders / "lab"), "--out", str(model), "--overwrite",
                 "--warm-start", str(model), "--epochs", "2", "--threads", "1", "--crop-size", "32"]) == 0
    first = HarmonicSegmenter.load(model)
    assert first.n_epochs_ == 2 and len(first.history_) > 2 and first.warm_start
