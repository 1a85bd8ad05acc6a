"""Fill the result tables of README.md and docs/*.md from the committed result files.

    python docs/render.py            # rewrite the tables in place
    python docs/render.py --check    # exit 1 if a page differs from what it would render

A table lives between two marker comments in a Markdown page::

    <!-- table:NAME -->
    (generated: the table, then a line naming its result file(s) and the command that wrote them)
    <!-- /table:NAME -->

``NAME`` is one of :data:`TABLES` (``defaults_seeds`` takes the data set after a colon, e.g.
``<!-- table:defaults_seeds:cvppp_a1 -->``). Everything between the markers is replaced; the rest
of the page is left as it is. The output depends only on the result files (no dates, no machine
state), so a second run changes nothing. Needs the standard library only. The tables are built by
``render_results.py`` (the results page) and ``render_benchmarks.py`` (benchmarks, demo, large images).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the table modules beside this script

import render_benchmarks as bench  # noqa: E402
import render_results as res  # noqa: E402
from render_common import ROOT, RenderError  # noqa: E402

#: The pages whose tables are rendered, relative to the repository root.
PAGE_GLOBS = ("README.md", "docs/*.md")

MARKER = re.compile(r"<!-- table:(?P<name>[A-Za-z0-9_:.-]+) -->\n(?P<body>.*?)<!-- /table:(?P=name) -->",
                    re.DOTALL)

#: Table name -> function(root, arg) returning the lines between the markers.
TABLES = {
    "defaults": res.table_defaults,
    "defaults_seeds": res.table_defaults_seeds,
    "ablation": res.table_ablation,
    "demo": bench.table_demo,
    "first_run": bench.table_first_run,
    "recovery": bench.table_recovery,
    "shared_cpu": bench.table_shared_cpu,
    "fuzz": bench.table_fuzz,
    "dask_sweep": bench.table_dask_sweep,
    "recluster": res.table_recluster,
    "floor_check": res.table_floor_check,
    "demo_seeds": bench.table_demo_seeds,
    "warm_start": bench.table_warm_start,
    "mode_search": bench.table_mode_search,
    "dask_equivalence": bench.table_dask_equivalence,
    "dask_memory": bench.table_dask_memory,
    "dask_stages": bench.table_dask_stages,
}


# -- pages ---------------------------------------------------------------------------------------

def render_table(name, root=ROOT):
    """The text between the markers of table ``name`` (``"defaults_seeds:bbbc010"`` takes an argument)."""
    base, _, arg = name.partition(":")
    if base not in TABLES:
        raise RenderError(f"unknown table {name!r}; known: {sorted(TABLES)}")
    lines = TABLES[base](root, arg or None)
    return "\n" + "\n".join(lines) + "\n\n"


def render_text(text, root=ROOT):
    """The page ``text`` with every marked table rendered."""
    opened = re.findall(r"<!-- table:([^ ]+) -->", text)
    closed = [m["name"] for m in MARKER.finditer(text)]
    if opened != closed:
        raise RenderError(f"table markers without their closing marker: {sorted(set(opened) - set(closed))}")
    return MARKER.sub(lambda m: f"<!-- table:{m['name']} -->\n{render_table(m['name'], root)}"
                                f"<!-- /table:{m['name']} -->", text)


def pages(root=ROOT):
    """The Markdown pages that may hold tables, in a fixed order."""
    found = []
    for pattern in PAGE_GLOBS:
        found += sorted(Path(root).glob(pattern))
    return found


def main(argv=None, root=ROOT):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 if a page differs from what it would render")
    args = p.parse_args(argv)
    stale = []
    for page in pages(root):
        text = page.read_text(encoding="utf-8")
        try:
            new = render_text(text, root)
        except RenderError as exc:
            print(f"{page.relative_to(root)}: {exc}", file=sys.stderr)
            return 2
        if new != text:
            stale.append(page.relative_to(root))
            if not args.check:
                page.write_text(new, encoding="utf-8")
    if args.check:
        for page in stale:
            print(f"{page}: tables differ from their result files; run `python docs/render.py`",
                  file=sys.stderr)
        return 1 if stale else 0
    for page in stale:
        print(f"rendered {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
