"""The scripts in examples/ run (``--quick``) and write what they promise, never overwriting files."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None

#: script -> (JSON report, other files, pictures that need matplotlib)
OUTPUTS = {
    "quickstart.py": ("quickstart.json", [], ["quickstart_comparison.png"]),
    "guide_functions.py": ("guide_functions.json", [], ["guide_functions.png"]),
    "grid_search.py": ("grid_search.json", [], []),
    "large_image.py": ("large_image.json", ["large_image_labels.tif"], ["large_image_overlay.png"]),
    "evaluation.py": ("evaluation.json", [], []),
    "dask_sweep.py": ("dask_sweep.json", [], []),
}


def run_example(script, *args, cwd):
    env = dict(os.environ)
    # Gentle on shared machines, and no window: the scripts only save pictures.
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MPLBACKEND="Agg")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def check_ok(result):
    assert result.returncode == 0, f"exit code {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


def test_every_example_is_covered():
    # _common.py (and any other "_" module) is shared plumbing, not an example.
    assert sorted(p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_")) == sorted(OUTPUTS)


@pytest.mark.parametrize("script", sorted(OUTPUTS))
def test_example_runs_quick(script, tmp_path):
    if script == "dask_sweep.py":  # needs the optional extra (installed by the test extra)
        pytest.importorskip("distributed")
    report, files, pictures = OUTPUTS[script]
    out = tmp_path / "out"
    out.mkdir()
    # An existing file of the same name must survive: the script picks "<name>-1.json".
    (out / report).write_text("precious")
    result = run_example(script, "--quick", "--out", str(out), cwd=tmp_path)
    check_ok(result)
    assert (out / report).read_text() == "precious"
    stem, suffix = report.rsplit(".", 1)
    data = json.loads((out / f"{stem}-1.{suffix}").read_text())
    assert isinstance(data, dict) and data
    for name in files:
        assert (out / name).stat().st_size > 0, name
    for name in pictures:
        if HAS_MATPLOTLIB:
            assert (out / name).stat().st_size > 1000, name
        else:
            assert not (out / name).exists()
            assert "matplotlib is not installed" in result.stdout
    assert not (tmp_path / "example_output").exists()  # --out was given


def test_example_reports(tmp_path):
    """Spot checks of the numbers the cheapest script reports."""
    result = run_example("guide_functions.py", "--quick", "--out", str(tmp_path), cwd=tmp_path)
    check_ok(result)
    data = json.loads((tmp_path / "guide_functions.json").read_text())
    rows = {(r["strategy"], r["n_guides"]): r for r in data["separation"]}
    assert {("optimize", 12), ("random", 12), ("low", 12), ("high", 12), ("coord", 2), ("optimize", 4)} <= set(rows)
    assert all(0.0 <= r["train"] <= 1.0 and 0.0 <= r["test"] <= 1.0 for r in rows.values())
    assert len(data["guides"]["frequencies"]) == 12


def test_default_output_folder_is_new(tmp_path):
    """Without --out, a new example_output*/ folder in the working directory; an existing one is left alone."""
    (tmp_path / "example_output").mkdir()
    (tmp_path / "example_output" / "guide_functions.json").write_text("precious")
    result = run_example("guide_functions.py", "--quick", cwd=tmp_path)
    check_ok(result)
    assert sorted(p.name for p in (tmp_path / "example_output").iterdir()) == ["guide_functions.json"]
    assert (tmp_path / "example_output" / "guide_functions.json").read_text() == "precious"
    assert (tmp_path / "example_output-1" / "guide_functions.json").is_file()


@pytest.mark.parametrize("script", sorted(OUTPUTS))
def test_out_must_be_a_folder(script, tmp_path):
    not_a_folder = tmp_path / "file.txt"
    not_a_folder.write_text("precious")
    result = run_example(script, "--quick", "--out", str(not_a_folder), cwd=tmp_path)
    assert result.returncode != 0
    assert "not a folder" in result.stderr
    assert not_a_folder.read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


@pytest.mark.parametrize("script", sorted(OUTPUTS))
def test_help(script, tmp_path):
    result = run_example(script, "--help", cwd=tmp_path)
    check_ok(result)
    assert "--quick" in result.stdout and "--out" in result.stdout
