"""The documentation: it builds, it speaks to users, and its figures are those of the result files.

* The Sphinx documentation builds without a single warning: ``sphinx-build -W
  --keep-going -b html docs <tmp>`` in a subprocess, so a docstring that Sphinx or
  numpydoc cannot parse, a broken cross-reference between pages or a missing page
  fails. Skipped without Sphinx (``pip install -e ".[docs]"`` or ``".[test]"``).
* No internal word (how the library was developed, scratch paths) in README.md,
  docs/, the docstrings of ``harmonic_seg`` or the command line's help.
* The rendered tables: ``test_docs_render.py``.
* Every measured figure of a page comes from a committed file of ``benchmarks/results/``: each
  result file a page or a rendered table names is committed (never the working folder
  ``benchmarks/out/``), a paragraph with a score, time, speed ratio, memory size or percentage names
  its file (or the paper's table), the figures quoted in prose equal their files', and the network's
  size in the user guide is the architecture's.
* README.md and docs/results.md stay short; README keeps the two set-up commands;
  CITATION.cff parses and names this version and licence.
"""

import argparse
import ast
import configparser
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .test_docs_render import render

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


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
    for page in ("index", "user_guide", "metrics", "api", "benchmarks", "results", "large_images"):
        assert (out / f"{page}.html").is_file(), f"{page}.html was not built"
    api = (out / "api.html").read_text(encoding="utf-8")
    for name in ("harmonic_seg.HarmonicSegmenter", "harmonic_seg.GuideFunctionFitter",
                 "harmonic_seg.metrics.matching_dataset", "harmonic_seg.nn.cluster_embeddings",
                 "harmonic_seg.io.load_folder", "harmonic_seg.postprocess.instance_scores",
                 "harmonic_seg.HarmonicSegmenter.optimize_postprocessing"):
        assert f'id="{name}"' in api, f"{name} is missing from the API reference"


# -- internal words ------------------------------------------------------------------------------

#: Words about how the library was developed, which a user has no use for (case-insensitive,
#: whole words). ``round(`` (Python's built-in, in code) is not the word.
INTERNAL_WORDS = ("round", "this round", "review", "peer", "lent", "target of this project",
                  "no GPU was", "../shared", ".cpenv", "issue #", "helper")
_INTERNAL = re.compile("|".join((r"(?<!\w)" if w[0].isalnum() else "") + re.escape(w)
                                + (r"(?![\w(])" if w[-1].isalnum() else "") for w in INTERNAL_WORDS), re.I)

#: TODO: docstrings that still hold an internal word: (file, word) -> why it is still there. Remove an
#: entry once the docstring is reworded (the test fails on an entry that no longer matches).
DOCSTRING_ALLOW = {
    ("harmonic_seg/_validation.py", "helper"): "module docstring: 'Every helper raises ...'",
    ("harmonic_seg/io/datasets.py", "../shared"): "default_data_root documents its fallback folder",
}


def internal_words(text):
    """The internal words found in ``text``, lower-cased, in order."""
    return [m.group().lower() for m in _INTERNAL.finditer(text)]


def _doc_files():
    files = [ROOT / "README.md"]
    files += sorted(p for p in DOCS.rglob("*") if p.is_file() and p.suffix in {".md", ".rst", ".py", ".txt"}
                    and "_build" not in p.parts)
    return files


def _docstrings():
    """(file, object name, docstring) of every module, class and function of harmonic_seg."""
    for path in sorted((ROOT / "harmonic_seg").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node, clean=False)
                if doc:
                    yield path.relative_to(ROOT).as_posix(), getattr(node, "name", "<module>"), doc


def test_internal_words_pattern():
    assert internal_words("Since this round, no GPU was lent; see issue #30 and ../shared/data.") == [
        "this round", "no gpu was", "lent", "issue #", "../shared"]
    assert internal_words("the peer's Review; a Helper in ../.cpenv/bin/python") == [
        "peer", "review", "helper", ".cpenv"]
    assert internal_words("rounding around round(x * s), background, relentless, excellent, reviewer") == []


def test_no_internal_words_in_readme_and_docs():
    hits = [f"{p.relative_to(ROOT)}:{n}: {w!r}: {line.strip()}"
            for p in _doc_files()
            for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
            for w in internal_words(line)]
    assert not hits, "words about how the library was made, in user-facing pages:\n" + "\n".join(hits)


def test_no_internal_words_in_docstrings():
    hits, used = [], set()
    for path, name, doc in _docstrings():
        for w in internal_words(doc):
            if (path, w) in DOCSTRING_ALLOW:
                used.add((path, w))
            else:
                hits.append(f"{path}: {name}: {w!r}")
    assert not hits, "internal words in docstrings:\n" + "\n".join(hits)
    stale = set(DOCSTRING_ALLOW) - used
    assert not stale, f"DOCSTRING_ALLOW entries that no longer match (remove them): {sorted(stale)}"


def test_no_internal_words_in_cli_help():
    from harmonic_seg.cli import build_parser

    parser = build_parser()
    texts = {"harmonic-seg": parser.format_help()}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            texts.update({f"harmonic-seg {name}": sub.format_help() for name, sub in action.choices.items()})
    assert len(texts) > 1, "no sub-command found"
    hits = [f"{cmd}: {w!r}" for cmd, text in texts.items() for w in internal_words(text)]
    assert not hits, "internal words in the command line's help:\n" + "\n".join(hits)


# -- figures and their sources -------------------------------------------------------------------
#
# A figure the library measured (a score, a time, a speed ratio, a memory size, a percentage of a
# measurement) is one that a committed command wrote into a committed file of benchmarks/results/, and
# the page names that file. benchmarks/out/ is a working folder outside version control: never a source.

RESULTS = ROOT / "benchmarks" / "results"

#: ``.json`` names on the pages that are not result files: a saved model's file, the data sets' splits.
OTHER_JSON = {"config.json", "splits.json"}

_JSON = re.compile(r"[A-Za-z0-9_./*{}<>-]+\.json")


def _pages():
    """The pages a user reads: README.md and every Markdown and reStructuredText page of docs/."""
    return [ROOT / "README.md"] + sorted(DOCS.glob("*.md")) + sorted(DOCS.glob("*.rst"))


def _committed_results():
    """Names of the files of benchmarks/results/ that exist and, in a git checkout, that git tracks."""
    present = {p.name for p in RESULTS.glob("*.json")}
    try:
        proc = subprocess.run(["git", "ls-files", "-z", "--", "benchmarks/results"], cwd=ROOT,
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return present  # no git: an unpacked release, whose files are the committed ones
    if proc.returncode != 0:
        return present
    return present & {Path(p).name for p in proc.stdout.split("\0") if p}


def _name_pattern(name):
    """A regex of a file name that may hold placeholders: ``*``, ``{dataset}``, ``<data set>``."""
    return re.compile(".*".join(re.escape(part) for part in re.split(r"\{[^}]*\}|<[^>]*>|\*", name)) + r"\Z")


def _unsourced_names(rel, text, committed):
    """Problems with the result files that ``text`` names: outside benchmarks/results/ or not committed."""
    problems = [f"{rel}: {m} is in the working folder benchmarks/out/, not a committed result file"
                for m in re.findall(r"benchmarks/out/[\w./*-]+\.\w+", text)]
    for token in sorted(set(_JSON.findall(text))):
        directory, _, name = token.rpartition("/")
        if not directory and name in OTHER_JSON or directory.startswith("benchmarks/out"):
            continue
        if directory.startswith(("benchmarks/configs/", "configs/")):  # a run's configuration, not a result
            config = ROOT / "benchmarks" / "configs" / token.partition("configs/")[2]
            if not any(_name_pattern(str(config)).match(str(f)) for f in (ROOT / "benchmarks/configs").rglob("*.json")):
                problems.append(f"{rel}: {token} is not a configuration file of benchmarks/configs/")
            continue
        if directory not in ("", "results", "benchmarks/results"):
            problems.append(f"{rel}: {token} is not under benchmarks/results/")
        elif not any(_name_pattern(name).match(f) for f in committed):
            problems.append(f"{rel}: {token} is not a committed file of benchmarks/results/")
    return problems


def test_every_result_file_a_page_names_is_committed():
    committed = _committed_results()
    assert len(committed) >= 10, f"benchmarks/results/ holds only {sorted(committed)}"
    problems = [p for page in _pages()
                for p in _unsourced_names(page.relative_to(ROOT), page.read_text(encoding="utf-8"), committed)]
    assert not problems, "pages name result files that are not committed:\n" + "\n".join(problems)


def test_unsourced_names_are_found():
    committed = {"demo.json", "defaults_bbbc010_seed0.json"}
    text = ("`benchmarks/results/demo.json`, `results/defaults_{dataset}_seed{seed}.json`, `config.json`, "
            "`benchmarks/results/defaults_*.json`")
    assert _unsourced_names("p.md", text, committed) == []
    assert _unsourced_names("p.md", "`benchmarks/results/network.json` and `tuning.json`", committed) == [
        "p.md: benchmarks/results/network.json is not a committed file of benchmarks/results/",
        "p.md: tuning.json is not a committed file of benchmarks/results/"]
    assert _unsourced_names("p.md", "see benchmarks/out/network.json", committed) == [
        "p.md: benchmarks/out/network.json is in the working folder benchmarks/out/, not a committed result file"]
    assert _unsourced_names("p.md", "(logs/run/x.json)", committed) == ["p.md: logs/run/x.json is not under "
                                                                         "benchmarks/results/"]
    assert _unsourced_names("p.md", "`benchmarks/configs/recipe/bbbc010.json`, `configs/defaults/<dataset>.json`",
                            committed) == []
    assert _unsourced_names("p.md", "`benchmarks/configs/recipe/leaves.json`", committed) == [
        "p.md: benchmarks/configs/recipe/leaves.json is not a configuration file of benchmarks/configs/"]


def test_every_rendered_table_names_its_committed_source():
    committed = _committed_results()
    problems = []
    for page in render.pages(ROOT):
        for m in render.MARKER.finditer(page.read_text(encoding="utf-8")):
            names = re.findall(r"`benchmarks/results/([^`]+\.json)`", m["body"].split("Source: ", 1)[-1])
            where = f"{page.relative_to(ROOT)}, table {m['name']}"
            if "\nSource: " not in m["body"] or not names:
                problems.append(f"{where}: no 'Source:' line naming a file of benchmarks/results/")
            problems += [f"{where}: {n} is not a committed file" for n in names if n not in committed]
    assert not problems, "\n".join(problems)


#: A figure of a measurement: a speed ratio, a time, a memory size, a percentage or a score.
_FIGURE = re.compile(
    r"\b\d+(?:\.\d+)?(?:\s*(?:to|-|–)\s*\d+(?:\.\d+)?)?\s*times\s+(?:slower|faster|as\s+fast)"
    r"|\bfactor\s+(?:of\s+)?\d"
    r"|\b\d+(?:\.\d+)?\s?(?:ms|s|seconds?|min|minutes?|hours?)\b"
    r"|\b\d+(?:\.\d+)?\s?(?:KiB|MiB|GiB|kB|MB|GB|TB)\b"
    r"|\b\d+(?:\.\d+)?\s?%"
    r"|\b(?:SBD|AP(?:@0\.\d+)?|AP50|AP75|COCO\s+AP|ARI|F1|PQ)\s*(?:of\s+|=\s*|:\s*)?[01]?\.\d{2,}")

#: Figures on the pages that are not measurements of the library: (page, figure) -> what it is. The test
#: fails on an entry that no longer matches, so that the list stays that of the pages.
FIGURE_ALLOW = {
    ("docs/user_guide.rst", "1 %"): "the floor of the learning-rate schedule, a setting",
    ("docs/user_guide.rst", "50 %"): "the largest minimum size the tuning tries, a setting",
    ("docs/large_images.md", "13 GB"): "48 bytes a pixel times 16384 x 16384 pixels: arithmetic",
    ("docs/large_images.md", "128 KiB"): "glibc's default mmap threshold",
}


def _prose_paragraphs(text):
    """(first line, paragraph) of the prose of a page: rendered tables, fenced code and literal blocks
    (after a line ending in ``::``) left out."""
    text = render.MARKER.sub(lambda m: "\n" * m.group().count("\n"), text)  # keep the line numbers
    out, para, start, fenced, literal = [], [], 0, False, None

    def flush():
        if para:
            out.append((start, " ".join(para)))
            para.clear()

    for n, line in enumerate(text.splitlines(), 1):
        stripped, indent = line.strip(), len(line) - len(line.lstrip())
        if stripped.startswith("```"):
            flush()
            fenced = not fenced
            continue
        if fenced:
            continue
        if literal is not None:
            if not stripped or indent > literal:
                continue
            literal = None
        if not stripped:
            flush()
            continue
        if not para:
            start = n
        para.append(stripped)
        if stripped.endswith("::"):
            literal = indent
            flush()
    flush()
    return out


def _names_a_source(paragraph):
    """Whether the paragraph names a result file, or the paper's table or section it quotes."""
    return bool(re.search(r"results/[\w*{}<>-]+\.json", paragraph)
                or re.search(r"\bpaper", paragraph) and re.search(r"\b(?:Table|[Ss]ection)s?\s+\d", paragraph))


def unsourced_figures(rel, text):
    """(line, figure, paragraph) of every measured figure of a page whose paragraph names no source. A
    paragraph (a list, say) introduced by one that names a file and ends with ':' counts as sourced."""
    hits, previous = [], ""
    for line, paragraph in _prose_paragraphs(text):
        sourced = _names_a_source(paragraph) or (previous.endswith(":") and _names_a_source(previous))
        previous = paragraph
        if sourced:
            continue
        prose = re.sub(r"``.*?``|`[^`]*`", " ", paragraph)  # code and math quote settings, not measurements
        hits += [(line, " ".join(m.group().split()), paragraph) for m in _FIGURE.finditer(prose)]
    return hits


def test_unsourced_figures_are_found():
    page = ("# page\n\nThe mean shift became 7 to 17 times slower on two threads.\n\n"
            "It took 12.5 s and 300 MiB; SBD 0.812 on the test split, 20 % better.\n\n"
            "Named: 7 to 17 times slower (`benchmarks/results/bench_shared_cpu.json`).\n\n"
            "What this shows (`benchmarks/results/bench_shared_cpu.json`):\n\n- 9 times faster\n- 2.63 s\n\n"
            "The paper's Table 4: SBD 89.9 %.\n\n```python\nseg.fit(X, y)  # 30 s\n```\n\n"
            "Settings such as ``max_time=300`` or `12 s` are code.\n\n"
            "<!-- table:demo -->\n| SBD | 0.718 |\n\nSource: elsewhere.\n<!-- /table:demo -->\n\n"
            "Example::\n\n    fit(X)   # 40 s\n\nafter the block, 5 minutes.\n")
    hits = unsourced_figures("page.md", page)
    assert [(line, fig) for line, fig, _ in hits] == [(3, "7 to 17 times slower"), (5, "12.5 s"), (5, "300 MiB"),
                                                      (5, "SBD 0.812"), (5, "20 %"), (32, "5 minutes")]


def test_no_measured_figure_without_its_source():
    hits, used = [], set()
    for page in _pages():
        rel = page.relative_to(ROOT).as_posix()
        for line, figure, paragraph in unsourced_figures(rel, page.read_text(encoding="utf-8")):
            if (rel, figure) in FIGURE_ALLOW:
                used.add((rel, figure))
            else:
                hits.append(f"{rel}:{line}: {figure!r} in: {paragraph[:160]}")
    assert not hits, ("measured figures whose paragraph names no committed result file (name it, e.g. "
                      "`benchmarks/results/NAME.json`, or remove the figure):\n" + "\n".join(hits))
    stale = set(FIGURE_ALLOW) - used
    assert not stale, f"FIGURE_ALLOW entries that no longer match (remove them): {sorted(stale)}"


def _prose(rel):
    """A page's text with its whitespace collapsed, so that a sentence is found across line breaks."""
    return " ".join((ROOT / rel).read_text(encoding="utf-8").split())


def _result(name):
    return json.loads((RESULTS / name).read_text(encoding="utf-8"))


def test_prose_figures_equal_their_result_files():
    guide, bench = _prose("docs/user_guide.rst"), _prose("docs/benchmarks.md")
    # the fuzzer's last run (user guide, "How this is tested")
    fuzz = _result("fuzz.json")
    c = fuzz["counts"]
    assert (f"tried {c['tried']} inputs in {fuzz['wall_s']:.0f} seconds: {c['accepted']} accepted, "
            f"{c['clear']} clear errors, ") in guide
    assert f"{['no', 'one', 'two'][c['skipped']]} skipped" in guide
    assert [c[k] for k in ("deep", "traceback", "hang", "lost")] == [0, 0, 0, 0]  # "no deep crash, ..."
    # the shared CPU (benchmarks page, its summary; the user guide's "Devices and threads")
    d = _result("bench_shared_cpu.json")
    s = {(r["task"], r["load"], r["mode"]): r for r in d["summary"]}

    def ratios(task, a, b, stats=("min", "median")):
        return [s[(task, load, a)][stat] / s[(task, load, b)][stat] for stat in stats for load in ("idle", "shared")]

    ms_min, ms_median = ratios("meanshift", "old", "new", ("min",)), ratios("meanshift", "old", "new", ("median",))
    assert (f"{min(ms_min):.0f} to {max(ms_min):.0f} times slower than the new default by the fastest run and "
            f"{min(ms_median):.0f} to {max(ms_median):.0f} times by the median") in bench
    assert f"became {min(ms_min + ms_median):.0f} to {max(ms_min + ms_median):.0f} times slower" in guide
    p = ratios("predict", "old", "new")
    assert f"predict was {min(p):.1f} to {max(p):.1f} times slower" in bench
    old, new = s[("predict", "idle", "old")]["min"], s[("predict", "idle", "new")]["min"]
    assert f"({old - new:.1f} of {old:.1f} s, min)" in bench
    one_min, one_median = ratios("predict", "new", "one", ("min",)), ratios("predict", "new", "one", ("median",))
    one = s[("predict", "idle", "one")]["min"]
    assert (f"a factor {min(one_min):.1f} to {max(one_min):.1f} against one thread by the fastest run "
            f"({new:.3g} s against {one:.3g} s without the extra process) and {min(one_median):.1f} to "
            f"{max(one_median):.1f} by the median") in bench
    found = {(r["task"], r["mode"]): set() for r in d["records"]}
    for r in d["records"]:
        found[(r["task"], r["mode"])].add(r["found"])
    (n_old,), (n_new,), (modes,) = found[("predict", "old")], found[("predict", "new")], found[("meanshift", "new")]
    assert (f"predict found {n_old} instances with the old setting and {n_new} with the new one "
            f"({d['settings']['inputs']['instances']} nuclei in truth)") in bench
    assert f"found the same {modes} modes in every setting" in bench
    assert all(f == {modes} for (task, _), f in found.items() if task == "meanshift")
    # the automatic scale on the three data sets (user guide, "Automatic scale")
    scales = {}
    for path in RESULTS.glob("defaults_*_seed*.json"):
        r = json.loads(path.read_text(encoding="utf-8"))
        scales.setdefault(r["dataset"], set()).add(r["scale"])
    (worms,), (leaves,), (hela,) = scales["bbbc010"], scales["cvppp_a1"], scales["ctc_dic_c2dh_hela"]
    assert worms == leaves
    assert f"it chooses {worms:g} for BBBC010 worms and CVPPP leaves and {hela:g} for DIC-HeLa cells" in guide
    # blockwise embeddings equal the whole image's (large images, "Whole-image coordinates")
    e = _result("dask_embedding.json")
    assert e["max_abs_difference_over_contexts"] == {"embedding": 0.0, "fg_prob": 0.0}
    assert f"the {e['blocks']} blocks of 512 x 512 of the 2048 x 2048 mosaic below is 0.0 for both" in _prose(
        "docs/large_images.md")


def test_user_guide_gives_the_automatic_scale_of_the_nuclei_sample():
    from harmonic_seg._auto import auto_scale
    from harmonic_seg.io import load_nuclei_sample

    scale, _ = auto_scale(load_nuclei_sample(tile=128).labels)
    assert f"and {scale:g} for the shipped nuclei sample" in _prose("docs/user_guide.rst")


def test_network_size_figures_are_the_architecture():
    """The user guide's parameter counts and FLOPs (properties of the network, counted as
    ``benchmarks/bench_network.py`` counts them, on torch's meta device: no computation)."""
    pytest.importorskip("torch")
    spec = importlib.util.spec_from_file_location("bench_network", ROOT / "benchmarks" / "bench_network.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    guide = _prose("docs/user_guide.rst")
    figures = {}
    for width in (32, 16):
        cfg = dict(depth=4, base_width=width)
        params = sum(p.numel() for p in bench.make_net(cfg, 1, device="meta").parameters())
        figures[width] = (f"{params / 1e6:.1f} M parameters", f"{bench.flops(cfg, 1, 256) / 1e9:.1f} GFLOPs")
    assert (f"``base_width=32`` (the GPU default) has {figures[32][0]} and costs {figures[32][1]} per 256x256 "
            f"forward pass") in guide
    assert f"``base_width=16`` (the CPU default) has {figures[16][0]} and {figures[16][1]}" in guide
    assert bench.N_GUIDES == 12


# -- pages, citation -----------------------------------------------------------------------------

def test_pages_are_short_and_readme_keeps_the_two_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    results = (ROOT / "docs" / "results.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) < 150, f"README.md has {len(readme.splitlines())} lines"
    assert len(results.splitlines()) < 250, f"docs/results.md has {len(results.splitlines())} lines"
    assert "pip install torch==2.13.0 -e . && harmonic-seg demo" in readme
    assert 'pip install torch==2.13.0 -e ".[test]" && python -m pytest -q' in readme


def test_citation_cff():
    yaml = pytest.importorskip("yaml")
    import harmonic_seg

    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    assert cff["cff-version"] == "1.2.0"
    assert cff["title"] == "harmonic_seg"
    assert cff["version"] == harmonic_seg.__version__
    assert cff["license"] == setup["metadata"]["license"]
    paper = cff["preferred-citation"]
    assert paper["title"] == "Instance Segmentation of Biological Images Using Harmonic Embeddings"
    assert [a["family-names"] for a in paper["authors"]] == ["Kulikov", "Lempitsky"]
    assert paper["year"] == 2020
