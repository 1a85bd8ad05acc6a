import json
import subprocess
import sys

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
