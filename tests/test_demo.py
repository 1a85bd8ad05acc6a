import subprocess
import sys

import numpy as np
import pytest

from harmonic_seg import Network
from harmonic_seg.demo import free_path, run_demo

#: A tiny network without tuning: the tests check the mechanics, the demo itself is timed by hand.
FAST = {"network": Network(depth=2, base_width=4), "tune_postprocessing": False, "scale": 0.25}


def test_free_path_never_overwrites(tmp_path):
    p = tmp_path / "demo.png"
    assert free_path(p) == p
    p.write_bytes(b"x")
    assert free_path(p) == tmp_path / "demo-1.png"
    (tmp_path / "demo-1.png").write_bytes(b"x")
    assert free_path(p) == tmp_path / "demo-2.png"


def test_demo_runs_and_reports(tmp_path):
    out = tmp_path / "demo.png"
    out.write_bytes(b"precious")
    model = tmp_path / "model"
    report = run_demo(epochs=1, out=out, save_model=model, verbose=0, device="cpu", params=FAST)
    assert out.read_bytes() == b"precious"  # never overwritten
    assert report["model"] == str(model) and (model / "config.json").exists()
    # An existing model folder is refused before any training.
    with pytest.raises(FileExistsError, match="save_model"):
        run_demo(epochs=1, out=None, save_model=model, verbose=0, device="cpu")
    assert report["picture"] == str(tmp_path / "demo-1.png")
    assert (tmp_path / "demo-1.png").stat().st_size > 10_000
    assert report["train_wells"] == 16 and report["test_wells"] == 4
    for key in ("harmonic", "floor (connected components of the mask)"):
        assert 0.0 <= report[key]["SBD"] <= 1.0


def test_demo_picture_failure_keeps_the_scores(tmp_path, monkeypatch, caplog):
    import harmonic_seg.demo as demo

    def broken(*args, **kwargs):
        raise ImportError("no matplotlib here")

    monkeypatch.setattr(demo, "draw_demo", broken)
    report = run_demo(epochs=1, out=tmp_path / "x.png", verbose=0, device="cpu", params=FAST)
    assert report["picture"] is None and "SBD" in report["harmonic"]
    assert "could not be drawn" in caplog.text


def test_cli_demo_prints_scores_before_the_picture(tmp_path, monkeypatch, capsys):
    import harmonic_seg.demo as demo
    from harmonic_seg.cli import main

    calls = []
    real = demo.train_and_score

    def short(**kwargs):
        return real(**{**kwargs, "epochs": 1, "verbose": 0, "params": FAST})

    def broken(arrays, out):
        calls.append(capsys.readouterr().out)  # what was printed before the picture was attempted
        raise RuntimeError("drawing failed")

    monkeypatch.setattr(demo, "train_and_score", short)
    monkeypatch.setattr(demo, "draw_demo", broken)
    assert main(["demo", "--device", "cpu", "--out", str(tmp_path / "d.png")]) == 0
    assert "SBD" in calls[0] and "floor" in calls[0]
    assert "no picture" in capsys.readouterr().err


def test_worm_sample_matches_its_description():
    from harmonic_seg.io import load_worm_sample

    data = load_worm_sample()
    assert len(data) == 20 and data.images[0].shape == (520, 696)
    assert all(set(np.unique(im)) <= {0, 255} for im in data.images)
    for im, lab, ign in zip(data.images, data.labels, data.ignore):
        # the per-worm outlines of BBBC010 reach a pixel or two past the binary mask: up to 8 % of their pixels
        assert np.mean(im[lab > 0] > 0) > 0.9 and not np.any((lab > 0) & ign)


def test_demo_command_line_help():
    r = subprocess.run([sys.executable, "-m", "harmonic_seg", "demo", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "worm sample" in r.stdout


def test_cli_demo_passes_epochs_and_max_time(monkeypatch, capsys):
    import harmonic_seg.demo as demo
    from harmonic_seg.cli import main

    seen = []

    def fake(**kwargs):
        seen.append(kwargs)
        raise SystemExit(0)

    monkeypatch.setattr(demo, "train_and_score", fake)
    for argv, expected in ((["demo"], (30, None)), (["demo", "--epochs", "3"], (3, None)),
                           (["demo", "--max-time", "90"], (30, 90.0))):
        with pytest.raises(SystemExit):
            main(argv + ["--no-picture"])
        assert (seen[-1]["epochs"], seen[-1]["max_time"]) == expected
