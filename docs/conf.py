"""Sphinx configuration of the harmonic_seg documentation.

Build (from the repository root)::

    sphinx-build -W --keep-going -b html docs docs/_build/html

The package is imported from the repository root (no installation needed);
``harmonic_seg.nn`` needs torch, which is a runtime dependency of the package.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import harmonic_seg  # noqa: E402

# -- project -------------------------------------------------------------------
project = "harmonic_seg"
author = "the harmonic_seg developers"
copyright = "the harmonic_seg developers, BSD-3-Clause"
release = harmonic_seg.__version__
version = release

# -- general -------------------------------------------------------------------
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
templates_path = []

# -- autodoc / autosummary -----------------------------------------------------
# api.rst documents every public name with explicit autodoc directives;
# autosummary only draws the summary tables (no stub files are generated, so a
# build never writes into the source tree).
autosummary_generate = False
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # the numpydoc docstrings carry the types
autodoc_inherit_docstrings = True

# -- numpydoc ------------------------------------------------------------------
# The class pages list their methods through autodoc's ``:members:``; numpydoc's
# own member tables would repeat them (and list scikit-learn's inherited,
# undocumented helpers).
numpydoc_show_class_members = False
numpydoc_show_inherited_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# -- MyST (Markdown pages such as benchmarks.md) -------------------------------
myst_heading_anchors = 3
myst_enable_extensions = ["dollarmath"]

# -- HTML ----------------------------------------------------------------------
html_theme = "alabaster"
html_title = f"harmonic_seg {release}"
html_static_path = []
html_show_sourcelink = False
