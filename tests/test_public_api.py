"""Benchmarks, examples and documentation use only the public API of harmonic_seg.

A private name (a module or attribute starting with ``_``) used from outside
the package is public API that is missing: every one found here fails the
test, listed with its file and line, unless it is in :data:`ALLOWED`.
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("benchmarks", "examples", "docs")
SUFFIXES = {".py", ".rst", ".md", ".sh", ".txt"}

#: What counts as a use of a private name of harmonic_seg.
PATTERNS = {
    # harmonic_seg._x, harmonic_seg.sub._x (imports, attributes, dotted paths in text)
    "private module": re.compile(r"\bharmonic_seg(?:\.[A-Za-z0-9]\w*)*\._[A-Za-z]\w*"),
    # from harmonic_seg.x import _y / from harmonic_seg import X, _y
    "private import": re.compile(r"\bfrom\s+harmonic_seg[\w.]*\s+import\s+[^#\n]*?(?<![\w.])_[A-Za-z]\w*"),
    # seg._method(...) on an object (self and cls are the script's own classes)
    "private method": re.compile(r"(?<![\w.])(?!self\.|cls\.)[A-Za-z_]\w*\._[a-z]\w*\("),
}

#: Files allowed to use private names (file -> the names it may use); none: the benchmarks, examples and
#: documentation use the public API only.
ALLOWED = {}


def _private_uses():
    found = []
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix not in SUFFIXES or not path.is_file() or "results" in path.relative_to(ROOT).parts:
                continue
            rel = path.relative_to(ROOT).as_posix()
            allowed = ALLOWED.get(rel, set())
            for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
                if "harmonic_seg" not in line and not PATTERNS["private method"].search(line):
                    continue
                for kind, pattern in PATTERNS.items():
                    for match in pattern.finditer(line):
                        text = match.group(0)
                        name = re.findall(r"_[A-Za-z]\w*", text)[-1]
                        if text.rstrip("(") in allowed or name in allowed or any(a in text for a in allowed):
                            continue
                        found.append(f"{rel}:{n}: {kind}: {text}")
    return found


def test_no_private_name_of_harmonic_seg_outside_the_package():
    found = _private_uses()
    assert not found, "private names of harmonic_seg used outside the package:\n" + "\n".join(found)


def test_the_patterns_catch_what_they_should():
    lines = ["from harmonic_seg._tuning import x", "import harmonic_seg.nn._meanshift_ops as ops",
             "from harmonic_seg.nn.cluster import _modes", "labels = seg._cluster(emb)",
             "from harmonic_seg import HarmonicSegmenter, _tuning", "see ``harmonic_seg._tuning.grid``"]
    for line in lines:
        assert any(p.search(line) for p in PATTERNS.values()), line
    for line in ["self._cache(x)", "from harmonic_seg.clustering import EmbeddingClusterer", "x = a.b_c(1)",
                 "seg.clustering_.segment(emb, prob)", "np.asarray(x)._data"]:
        assert not any(p.search(line) for p in PATTERNS.values()), line
