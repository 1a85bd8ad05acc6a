"""Mean and spread over seeds of result files written by ``reproduce.py``, ``retune.py`` or ``peer_cellpose.py``.

    python benchmarks/seeds.py out/results_cvppp_a1_disc_e95.json out/results_cvppp_a1_disc_e95_s1.json \\
        out/results_cvppp_a1_disc_e95_s2.json
    python benchmarks/seeds.py out/retune_model_hela_disc_e78*_sbd.json --row "harmonic, given foreground"
    python benchmarks/seeds.py out/retune_model_hela_quarter*_sbd.json --at-configured-threshold

For every table row held by all the files (or only ``--row``), one markdown
row per metric set: the mean over the files, the sample standard deviation
in brackets, and the single values. ``--at-configured-threshold`` reads the
rows a ``retune.py`` file scored at the model's configured foreground
threshold (``rows_at_configured_threshold``) instead of the tuned one, for
a paired comparison on the same networks. The figures of docs/results.md
that say "mean (sd) of three seeds" are printed by this script.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

METRICS = ("SBD", "|DiC|", "AP@0.5 (TP/(TP+FP+FN))", "COCO AP", "AP50", "AP75", "APs", "APm")
SHORT = {"AP@0.5 (TP/(TP+FP+FN))": "AP@0.5", "|DiC|": "\\|DiC\\|"}


def rows_of(path, at_configured):
    """The metric rows of one result file."""
    result = json.loads(Path(path).read_text())
    if at_configured:
        if "rows_at_configured_threshold" not in result:
            raise SystemExit(f"{path} has no rows_at_configured_threshold (not written by retune.py since it has).")
        return result["rows_at_configured_threshold"]
    return result["rows"]


def summary(files, row=None, at_configured=False):
    """``{row name: {metric: (mean, sd, values)}}`` over the files; rows every file holds."""
    tables = [rows_of(f, at_configured) for f in files]
    names = [n for n in tables[0] if all(n in t for t in tables[1:])]
    if row is not None:
        if row not in names:
            raise SystemExit(f"row {row!r} is not in every file; rows common to all: {names}")
        names = [row]
    out = {}
    for name in names:
        out[name] = {}
        for m in METRICS:
            vals = np.array([t[name].get(m, np.nan) for t in tables], dtype=float)
            if np.all(np.isnan(vals)):
                continue
            sd = float(np.std(vals, ddof=1)) if len(vals) > 1 else float("nan")
            out[name][m] = (float(np.mean(vals)), sd, vals.tolist())
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--row", default=None, help="only this table row (e.g. 'harmonic, predicted foreground')")
    p.add_argument("--at-configured-threshold", action="store_true",
                   help="retune.py files: the rows scored at the configured foreground threshold")
    args = p.parse_args(argv)
    missing = [str(f) for f in args.files if not f.is_file()]
    if missing:
        raise SystemExit(f"no such result file: {', '.join(missing)}")
    table = summary(args.files, args.row, args.at_configured_threshold)
    print(f"{len(args.files)} files: {', '.join(f.name for f in args.files)}\n")
    metrics = [m for m in METRICS if any(m in cols for cols in table.values())]
    print("| row, mean (sd) | " + " | ".join(SHORT.get(m, m) for m in metrics) + " |")
    print("|---" * (len(metrics) + 1) + "|")
    for name, cols in table.items():
        cells = [f"{cols[m][0]:.3f} ({cols[m][1]:.3f})" if m in cols else "" for m in metrics]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("\nsingle values, in the order of the files:")
    for name, cols in table.items():
        print(f"  {name}: " + "; ".join(f"{SHORT.get(m, m)} " + " ".join(f"{v:.3f}" for v in cols[m][2])
                                      for m in metrics if m in cols))


if __name__ == "__main__":
    main()
