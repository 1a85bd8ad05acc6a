import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harmonic_seg.cli import main
from harmonic_seg.io import load_nuclei_sample, write_label_map


def test_guides_on_embedded_sample(capsys):
    assert main(["guides", "--n-guides", "6"]) == 0
    out = capsys.readouterr().out
    assert "embedded nuclei sample" in out and "separated" in out


def test_guides_on_folder_json_and_no_overwrite(tmp_path, capsys):
    data = load_nuclei_sample(tile=256)
    for i, lab in enumerate(data.labels[:2]):
        write_label_map(tmp_path / f"m{i}.tif", lab)
    out = tmp_path / "report.json"
    assert main(["guides", str(tmp_path), "--json", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["label_maps"] == 2 and 0.9 <= report["separated_pair_fraction"] <= 1.0
    assert len(report["guides"]["phases"]) == 12
    capsys.readouterr()
    assert main(["guides", str(tmp_path), "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err


@pytest.mark.parametrize(
    "out, overwrite, match",
    [
        ("folder", True, "--out .*folder is a folder; name a file"),  # was an IsADirectoryError traceback
        ("no/such/r.json", False, "the folder .*no/such does not exist; create it first"),  # was the raw OS error
        ("keep.txt/r.json", False, "keep.txt is not a folder"),
    ],
)
def test_guides_refuses_an_out_file_it_cannot_write_before_fitting(tmp_path, capsys, monkeypatch, out, overwrite,
                                                                   match):
    from harmonic_seg.guides import GuideFunctionFitter

    (tmp_path / "folder").mkdir()
    (tmp_path / "keep.txt").write_text("data")
    monkeypatch.setattr(GuideFunctionFitter, "fit", lambda *a, **k: pytest.fail("the guides were fitted"))
    argv = ["guides", "--n-guides", "4", "--out", str(tmp_path / out)] + (["--overwrite"] if overwrite else [])
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and re.search(match, err), err
    assert (tmp_path / "keep.txt").read_text() == "data" and not any((tmp_path / "folder").iterdir())


def test_main_leaves_the_package_logger_as_it_found_it(capsys):
    import logging

    logger = logging.getLogger("harmonic_seg")
    handlers, level = list(logger.handlers), logger.level
    for _ in range(3):  # each call added a handler that stayed: messages were printed once more per call
        main(["-v", "guides", "--n-guides", "4"])
        main(["guides", "/no/such/folder"])
    assert logger.handlers == handlers and logger.level == level


def test_bad_path_is_one_line_and_nonzero(capsys):
    assert main(["guides", "/no/such/folder"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no .png/.tif label maps" in err


def test_python_dash_m_help():
    r = subprocess.run([sys.executable, "-m", "harmonic_seg", "guides", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "label maps" in r.stdout


def test_sample_tiles():
    d = load_nuclei_sample(tile=128)
    assert len(d) == 16 and d.images[0].shape == (128, 128)
    whole = load_nuclei_sample(tile=None)
    assert len(np.unique(whole.labels[0])) - 1 == 125
    with pytest.raises(ValueError, match="divisor of 512"):
        load_nuclei_sample(tile=100)


def _write_dataset(folder, n=3):
    from harmonic_seg.synthetic import make_instances

    d = make_instances(n_images=n, shape=(48, 48), n_instances=(3, 6), random_state=0)
    (folder / "img").mkdir()
    (folder / "lab").mkdir()
    import tifffile

    for i, (im, lab) in enumerate(zip(d.images, d.labels)):
        tifffile.imwrite(folder / "img" / f"s{i}.tif", (im * 1000).astype(np.uint16))
        write_label_map(folder / "lab" / f"s{i}_label.tif", lab)
    return d


def test_fit_predict_evaluate_round_trip(tmp_path, capsys):
    _write_dataset(tmp_path)
    model = tmp_path / "model"
    tiny = ["--depth", "2", "--width", "4", "--epochs", "1", "--crop-size", "32", "--batch-size", "2", "--device", "cpu"]
    assert main(["fit", str(tmp_path / "img"), str(tmp_path / "lab"), "--out", str(model), *tiny]) == 0
    assert (model / "config.json").is_file()
    bad_scale = ["fit", str(tmp_path / "img"), str(tmp_path / "lab"), "--out", str(tmp_path / "m2"), "--scale", "0"]
    assert main([*bad_scale, *tiny]) == 2
    assert "scale" in capsys.readouterr().err
    assert main(["fit", str(tmp_path / "img"), str(tmp_path / "lab"), "--out", str(model), *tiny]) == 2
    assert "exists" in capsys.readouterr().err
    pred = tmp_path / "pred"
    assert main(["predict", str(model), str(tmp_path / "img"), "--out", str(pred)]) == 0
    assert sorted(p.name for p in pred.iterdir()) == ["s0_label.tif", "s1_label.tif", "s2_label.tif"]
    assert main(["predict", str(model), str(tmp_path / "img"), "--out", str(pred)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    # evaluating the ground truth against itself is perfect
    assert main(["evaluate", str(tmp_path / "lab"), str(tmp_path / "lab"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    scores = next(iter(report.values()))
    assert scores["SBD"] == 1.0 and scores["AP@0.5 (TP/(TP+FP+FN))"] == 1.0
    assert main(["evaluate", str(pred), str(tmp_path / "lab")]) == 0
    capsys.readouterr()
    (pred / "s0_label.tif").unlink()
    assert main(["evaluate", str(pred), str(tmp_path / "lab")]) == 2
    assert "without prediction" in capsys.readouterr().err


MODEL_V1 = Path(__file__).resolve().parent / "data" / "model_v1"  # a tiny saved model (tests/data)


def _images(folder, names, seed=0):
    from harmonic_seg.synthetic import make_instances

    folder.mkdir(parents=True, exist_ok=True)
    d = make_instances(n_images=len(names), shape=(48, 48), n_instances=(3, 6), random_state=seed)
    for name, im in zip(names, d.images):
        im = (im * 200).clip(0, 255).astype(np.uint8)
        if name.endswith(".png"):
            from PIL import Image

            Image.fromarray(im).save(folder / name)
        else:
            import tifffile

            tifffile.imwrite(folder / name, im)
    return [folder / n for n in names]


def test_predict_names_outputs_uniquely_when_stems_collide(tmp_path, capsys):
    from harmonic_seg import HarmonicSegmenter
    from harmonic_seg.io import read_image, read_label_map

    files = _images(tmp_path / "in", ["a.png", "a.tif", "b.tif"])
    out = tmp_path / "out"
    assert main(["predict", str(MODEL_V1), str(tmp_path / "in"), "--out", str(out), "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.png_label.tif", "a.tif_label.tif", "b_label.tif"]
    seg = HarmonicSegmenter.load(MODEL_V1)
    for f, name in zip(files, ["a.png_label.tif", "a.tif_label.tif", "b_label.tif"]):
        np.testing.assert_array_equal(read_label_map(out / name), seg.predict([read_image(f)])[0])
    assert "a.png_label.tif" in subprocess.run(
        [sys.executable, "-m", "harmonic_seg", "predict", "--help"], capture_output=True, text=True
    ).stdout.replace("\n", " ").replace("  ", "")


def test_predict_checks_every_output_before_predicting(tmp_path, capsys, monkeypatch):
    from harmonic_seg import HarmonicSegmenter

    _images(tmp_path / "d1", ["a.tif", "b.tif"])
    _images(tmp_path / "d2", ["a.tif"], seed=1)
    out = tmp_path / "out"
    glob = str(tmp_path / "d*" / "*.tif")
    assert main(["predict", str(MODEL_V1), glob, "--out", str(out), "--overwrite"]) == 2
    assert "would both be written to" in capsys.readouterr().err
    assert not out.exists()  # nothing written, not even the folder
    out.mkdir()
    (out / "b_label.tif").write_bytes(b"earlier result")
    monkeypatch.setattr(HarmonicSegmenter, "predict", lambda *a, **k: pytest.fail("predicted before checking"))
    assert main(["predict", str(MODEL_V1), str(tmp_path / "d1"), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["b_label.tif"]


def test_predict_never_writes_over_an_input(tmp_path, capsys):
    files = _images(tmp_path / "in", ["a.tif", "a_label.tif"])
    before = files[1].read_bytes()
    # a.tif -> in/a_label.tif, which is an input
    assert main(["predict", str(MODEL_V1), str(tmp_path / "in"), "--out", str(tmp_path / "in"), "--overwrite"]) == 2
    assert "is one of the input images" in capsys.readouterr().err
    assert files[1].read_bytes() == before and sorted(p.name for p in (tmp_path / "in").iterdir()) == [
        "a.tif", "a_label.tif"]


def test_fit_refuses_an_output_it_may_not_write_before_training(tmp_path, capsys, monkeypatch):
    from harmonic_seg import HarmonicSegmenter

    _write_dataset(tmp_path)
    monkeypatch.setattr(HarmonicSegmenter, "fit", lambda *a, **k: pytest.fail("trained before checking --out"))
    (tmp_path / "plain").write_text("data")
    foreign = tmp_path / "results"
    foreign.mkdir()
    (foreign / "config.json").write_text('{"tool": "another"}')
    (foreign / "table.csv").write_text("1,2")
    for target in (tmp_path / "plain", foreign, tmp_path / "img"):
        args = ["fit", str(tmp_path / "img"), str(tmp_path / "lab"), "--out", str(target), "--overwrite"]
        assert main(args) == 2
        assert "refusing" in capsys.readouterr().err
    assert (tmp_path / "plain").read_text() == "data"
    assert sorted(p.name for p in foreign.iterdir()) == ["config.json", "table.csv"]
    assert len(list((tmp_path / "img").iterdir())) == 3


def test_fit_overwrite_keeps_files_it_did_not_write(tmp_path, capsys):
    _write_dataset(tmp_path)
    model = tmp_path / "model"
    tiny = ["--depth", "2", "--width", "4", "--epochs", "1", "--crop-size", "32", "--batch-size", "2", "--device", "cpu"]
    assert main(["fit", str(tmp_path / "img"), str(tmp_path / "lab"), "--out", str(model), *tiny]) == 0
    (model / "README.txt").write_text("trained on the March images")
    assert main(["fit", str(tmp_path / "img"), str(tmp_path / "lab"), "--out", str(model), "--overwrite", *tiny]) == 0
    assert (model / "README.txt").read_text() == "trained on the March images"
    assert sorted(p.name for p in model.iterdir()) == ["README.txt", "config.json", "weights.npz"]
