"""The Sphinx documentation builds without a single warning.

Runs ``sphinx-build -W --keep-going -b html docs <tmp>`` in a subprocess, so a
docstring that Sphinx or numpydoc cannot parse, a broken cross-reference
between pages or a missing page fails the test. Skipped without Sphinx (it is
installed by ``pip install -e ".[test]"``).
"""

import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_docs_build_without_warnings(tmp_path):
    pytest.importorskip("sphinx")
    pytest.importorskip("numpydoc")
    pytest.importorskip("myst_parser")
    out = tmp_path / "html"
    cmd = [
        sys.executable, "-m", "sphinx",
        "-W", "--keep-going",            # every warning is an error; report all of them
        "-b", "html",
        "-q",                            # only warnings and errors on stderr
        "-d", str(tmp_path / "doctrees"),  # keep the pickled doctrees out of the source tree
        str(DOCS), str(out),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"sphinx-build failed ({proc.returncode}):\n{proc.stderr}\n{proc.stdout}"
    for page in ("index", "user_guide", "metrics", "api", "benchmarks"):
        assert (out / f"{page}.html").is_file(), f"{page}.html was not built"
    api = (out / "api.html").read_text(encoding="utf-8")
    for name in ("harmonic_seg.HarmonicSegmenter", "harmonic_seg.GuideFunctionFitter",
                 "harmonic_seg.metrics.matching_dataset", "harmonic_seg.nn.cluster_embeddings",
                 "harmonic_seg.io.load_folder", "harmonic_seg.postprocess.instance_scores",
                 "harmonic_seg.HarmonicSegmenter.optimize_postprocessing"):
        assert f'id="{name}"' in api, f"{name} is missing from the API reference"
