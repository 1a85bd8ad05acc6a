import subprocess
import sys

import pytest

from harmonic_seg.demo import free_path, run_demo


def test_free_path_never_overwrites(tmp_path):
    p = tmp_path / "demo.png"
    assert free_path(p) == p
    p.write_bytes(b"x")
    assert free_path(p) == tmp_path / "demo-1.png"
    (tmp_path / "demo-1.png").write_bytes(b"x")
    assert free_path(p) == tmp_path / "demo-2.png"


def test_demo_runs_and_reports(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "demo.png"
    out.write_bytes(b"precious")
    model = tmp_path / "model"
    report = run_demo(epochs=1, steps_per_epoch=2, out=out, save_model=model, verbose=0, device="cpu")
    assert out.read_bytes() == b"precious"  # never overwritten
    assert report["model"] == str(model) and (model / "config.json").exists()
    # An existing model folder is refused before any training.
    with pytest.raises(FileExistsError, match="save_model"):
        run_demo(epochs=1, steps_per_epoch=2, out=None, save_model=model, verbose=0, device="cpu")
    assert report["picture"] == str(tmp_path / "demo-1.png")
    assert (tmp_path / "demo-1.png").stat().st_size > 10_000
    assert report["train_tiles"] == 12 and report["test_tiles"] == 4
    for key in ("harmonic", "floor (connected components of predicted foreground)"):
        assert 0.0 <= report[key]["SBD"] <= 1.0


def test_demo_command_line_help():
    r = subprocess.run([sys.executable, "-m", "harmonic_seg", "demo", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "embedded nuclei sample" in r.stdout
