"""What the table builders of ``docs/render.py`` share: where the result files are, the data sets'
names, the paper's figures, and small formatting helpers. Standard library only."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = "benchmarks/results"
#: The defaults' networks re-clustered by the current library (``benchmarks/recluster.py``).
RECLUSTER = "recluster_defaults.json"

#: The paper's figures (Kulikov & Lempitsky, CVPR 2020), for the summary table:
#: data set -> (metric, value, where the paper gives it).
PAPER = {
    "cvppp_a1": ("SBD", 0.899, "Table 1, hidden test set of 33 images"),
    "bbbc010": ("COCO AP", 0.724, "Table 3"),
    "ctc_dic_c2dh_hela": ("SBD", 0.78, "Section 4.3, without the foreground mask"),
}

#: Data sets of the defaults tables, in the order shown, with their names for readers.
DATASET_NAMES = {
    "cvppp_a1": "CVPPP A1 leaves",
    "bbbc010": "BBBC010 worms",
    "ctc_dic_c2dh_hela": "DIC-C2DH-HeLa cells",
}

#: Metric keys of the ``rows`` of a defaults result file, and their column titles.
METRICS = (("SBD", "SBD"), ("AP@0.5 (TP/(TP+FP+FN))", "AP@0.5"), ("COCO AP", "COCO AP"))
HARMONIC_ROW = "harmonic, predicted foreground"
FLOOR_ROW = "floor: connected components of the predicted foreground"


class RenderError(Exception):
    """A marker names an unknown table, or a result file lacks what its table needs."""


def _load(root, name):
    path = Path(root) / RESULTS / name
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RenderError(f"{RESULTS}/{name} is missing; run the command that writes it") from None


def _f(x, digits=3):
    """A score with ``digits`` decimals; '–' for None."""
    return "–" if x is None else f"{x:.{digits}f}"


def _s(x):
    """Seconds with 3 significant figures (1.13, 21.8, 246)."""
    if x is None:
        return "–"
    return f"{x:.3g}" if x < 100 else f"{x:.0f}"


def _mean_sd(values, digits=3):
    """'mean ± sd' (sample sd) of the values; the value alone for one."""
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    mean = sum(values) / len(values)
    if len(values) == 1:
        return _f(mean, digits)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return f"{_f(mean, digits)} ± {_f(sd, digits)}"


def _machine(m):
    """The machine of a result file in a few words."""
    if isinstance(m, str):
        return m
    cpu = re.sub(r"\((R|TM)\)", "", m.get("cpu", "CPU")).replace(" Processor", "").strip()
    text = f"{m.get('cpu_count', '?')}-core {cpu}"
    if m.get("cpu_avx512_bf16"):
        text += " (AVX-512 BF16)"
    if m.get("torch"):
        text += f", torch {m['torch']}"
    return text


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def _source(files, command, extra=""):
    names = ", ".join(f"`{RESULTS}/{f}`" for f in files)
    return [f"Source: {names}, written by `{command}`{extra}."]


def _metric(result, row, key, name):
    try:
        return result["rows"][row][key]
    except KeyError:
        raise RenderError(f"{RESULTS}/{name} has no rows[{row!r}][{key!r}]") from None
