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
state), so a second run changes nothing. Needs the standard library only.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = "benchmarks/results"
#: The defaults' networks re-clustered by the current library (``benchmarks/recluster.py``).
RECLUSTER = "recluster_defaults.json"

#: The pages whose tables are rendered, relative to the repository root.
PAGE_GLOBS = ("README.md", "docs/*.md")

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

MARKER = re.compile(r"<!-- table:(?P<name>[A-Za-z0-9_:.-]+) -->\n(?P<body>.*?)<!-- /table:(?P=name) -->",
                    re.DOTALL)


class RenderError(Exception):
    """A marker names an unknown table, or a result file lacks what its table needs."""


# -- helpers -------------------------------------------------------------------------------------

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


# -- the tables ----------------------------------------------------------------------------------

def _defaults_files(root):
    """{data set: [(seed, result), ...]} of the defaults result files that exist, seeds in order."""
    found = {}
    for path in sorted((Path(root) / RESULTS).glob("defaults_*_seed*.json")):
        m = re.fullmatch(r"defaults_(?P<ds>.+)_seed(?P<seed>\d+)\.json", path.name)
        if m is None or m["ds"] not in DATASET_NAMES:
            continue
        found.setdefault(m["ds"], []).append((int(m["seed"]), path.name))
    current, _ = _reclustered(root)
    out = {}
    for ds in DATASET_NAMES:
        if ds not in found:
            continue
        out[ds] = []
        for seed, name in sorted(found[ds]):
            result = _load(root, name)
            if _same_run(current.get((ds, seed)), result):  # the library's clustering now, on the same network
                rows = dict(result["rows"])
                rows[HARMONIC_ROW] = current[(ds, seed)]["current"]
                rows[FLOOR_ROW] = current[(ds, seed)]["floor"]
                result = {**result, "rows": rows}
            out[ds].append((seed, result, name))
    return out


def _recipe_files(root):
    """{data set: [(seed, result, file name), ...]} of the hand recipes measured on the defaults' budget
    (``benchmarks/reproduce.py --max-time``, saved as ``recipe_<data set>_seed<k>.json``)."""
    out = {}
    for path in sorted((Path(root) / RESULTS).glob("recipe_*_seed*.json")):
        m = re.fullmatch(r"recipe_(?P<ds>.+)_seed(?P<seed>\d+)\.json", path.name)
        if m is not None and m["ds"] in DATASET_NAMES:
            out.setdefault(m["ds"], []).append((int(m["seed"]), _load(root, path.name), path.name))
    return {ds: sorted(runs, key=lambda run: run[0]) for ds, runs in out.items()}


def _recipe_command(runs):
    """The recipes' command line, the seed written as {k}, ``--out`` as the file the table names."""
    command = re.sub(r"--seed \d+", "--seed {k}", runs[0][1]["command"])
    return re.sub(r"--out \S*?(recipe_\S+?)_seed\d+\.json", rf"--out {RESULTS}/\1_seed{{k}}.json", command)


def _reclustered(root):
    """{(data set, seed): predicted-foreground rows} of ``recluster_defaults.json`` and its command
    (``({}, None)`` without the file)."""
    if not (Path(root) / RESULTS / RECLUSTER).is_file():
        return {}, None
    d = _load(root, RECLUSTER)
    return {(r["dataset"], r["seed"]): r["rows"]["predicted"] for r in d["runs"]}, d["command"]


def _same_run(reclustered, result):
    """Whether a re-clustered entry belongs to the network of ``result``: the scores it recorded for that
    model are the result file's (a later run of the same data set and seed trained another network)."""
    return reclustered is not None and reclustered["recorded"] == result["rows"][HARMONIC_ROW]


def _recluster_source(root, runs):
    """The source sentence's addition when the scores come from the re-clustered networks."""
    current, command = _reclustered(root)
    if not any(_same_run(current.get((r["dataset"], seed)), _load(root, name)) for seed, r, name in runs):
        return [], ""
    return [RECLUSTER], (f"; scores of the networks these runs trained, post-processed by the current library: "
                         f"`{command}`")


def _metric(result, row, key, name):
    try:
        return result["rows"][row][key]
    except KeyError:
        raise RenderError(f"{RESULTS}/{name} has no rows[{row!r}][{key!r}]") from None


def _settings(runs):
    """The parameters the runs set besides ``random_state`` (``max_time=720, num_threads=2``); values that
    differ between the runs are joined by ``/``."""
    keys = []
    for _, r, _ in runs:
        params = r.get("params", {"max_time": r["max_time"]})
        keys += [k for k in params if k != "random_state" and k not in keys]
    parts = []
    for k in keys:
        values = []
        for _, r, _ in runs:
            v = r.get("params", {"max_time": r["max_time"]}).get(k, "default")
            v = f"{v:g}" if isinstance(v, float) else str(v)
            if v not in values:
                values.append(v)
        parts.append(f"{k}={'/'.join(values)}")
    return ", ".join(parts)


def _defaults_command(runs, dataset=None):
    """The command line of ``benchmarks/defaults.py`` that writes these runs' files."""
    cmd = "python benchmarks/defaults.py"
    if dataset:
        cmd += f" --datasets {dataset}"
    params = [r.get("params", {"max_time": r["max_time"]}) for _, r, _ in runs]
    budgets = sorted({p.get("max_time", 720.0) for p in params})
    if budgets != [720.0]:
        cmd += " --max-time " + "/".join(f"{b:g}" for b in budgets)
    threads = sorted({str(p["num_threads"]) for p in params if p.get("num_threads") is not None})
    if threads:
        cmd += " --threads " + "/".join(threads)
    return cmd


def table_defaults(root, arg=None):
    """Summary: the defaults (mean ± sd over the seeds that exist) beside the floor and the paper."""
    data = _defaults_files(root)
    if not data:
        return ["No result files yet: `python benchmarks/defaults.py` writes "
                f"`{RESULTS}/defaults_<data set>_seed<k>.json`."]
    header = ["data set", "method", "seeds"] + [t for _, t in METRICS] + ["fit (s)"]
    rows, files, recipes, recipe_notes = [], [], _recipe_files(root), []
    for ds, runs in data.items():
        files += [name for _, _, name in runs]
        n = len(runs)
        rows.append([DATASET_NAMES[ds], f"defaults, `{_settings(runs)}`", n]
                    + [_mean_sd([_metric(r, HARMONIC_ROW, k, name) for _, r, name in runs]) for k, _ in METRICS]
                    + [_s(sum(r["fit_seconds"] for _, r, _ in runs) / n)])
        recipe = recipes.get(ds)
        if recipe:
            files += [name for _, _, name in recipe]
            budgets = sorted({r["max_time"] for _, r, _ in recipe})
            rows.append(["", f"hand recipe, `max_time={'/'.join(f'{b:g}' for b in budgets)}`", len(recipe)]
                        + [_mean_sd([_metric(r, HARMONIC_ROW, k, name) for _, r, name in recipe]) for k, _ in METRICS]
                        + [_s(sum(r["train_seconds"] for _, r, _ in recipe) / len(recipe))])
            recipe_notes.append(f"`{_recipe_command(recipe)}`")
        rows.append(["", "floor: connected components of the predicted foreground", n]
                     + [_mean_sd([_metric(r, FLOOR_ROW, k, name) for _, r, name in runs]) for k, _ in METRICS]
                     + ["–"])
        metric, value, where = PAPER[ds]
        rows.append(["", f"paper ({where})", "–"]
                    + [_f(value) if t == metric else "–" for _, t in METRICS] + ["–"])
    seeds = sorted({seed for runs in data.values() for seed, _, _ in runs})
    machines = sorted({_machine(r.get("machine", {})) for runs in data.values() for _, r, _ in runs})
    extra_files, note = _recluster_source(root, [run for runs in data.values() for run in runs])
    return _table(header, rows) + [""] + _source(
        files + extra_files, _defaults_command([run for runs in data.values() for run in runs]),
        f" (seeds {', '.join(map(str, seeds))}; mean ± sd over the seeds; {'; '.join(machines)}{note})"
        + (f"; the hand recipes on the same budget: {', '.join(recipe_notes)}" if recipe_notes else ""))


def table_defaults_seeds(root, arg=None):
    """One data set's defaults, seed by seed, with what the defaults chose."""
    if arg not in DATASET_NAMES:
        raise RenderError(f"defaults_seeds needs a data set after a colon, one of {sorted(DATASET_NAMES)}; "
                          f"got {arg!r}")
    runs = _defaults_files(root).get(arg)
    if not runs:
        return [f"No result files yet: `python benchmarks/defaults.py --datasets {arg}` writes "
                f"`{RESULTS}/defaults_{arg}_seed<k>.json`."]
    header = (["seed"] + [t for _, t in METRICS] + ["floor SBD", "floor COCO AP", "fit (s)", "epochs",
                                                        "scale"])
    rows = []
    for seed, r, name in runs:
        rows.append([seed] + [_f(_metric(r, HARMONIC_ROW, k, name)) for k, _ in METRICS]
                    + [_f(_metric(r, FLOOR_ROW, "SBD", name)), _f(_metric(r, FLOOR_ROW, "COCO AP", name)),
                       _s(r["fit_seconds"]), r.get("n_epochs", "–"), r.get("scale", "–")])
    extra_files, note = _recluster_source(root, runs)
    return _table(header, rows) + [""] + _source(
        [name for _, _, name in runs] + extra_files, _defaults_command(runs, arg),
        f" (`{_settings(runs)}`{note})")


DEMO_METRICS = (("SBD", "SBD"), ("AP@0.5 (TP/(TP+FP+FN))", "AP@0.5"), ("AP@0.75 (TP/(TP+FP+FN))", "AP@0.75"),
                ("F1@0.5", "F1@0.5"), ("COCO AP", "COCO AP"),
                ("|DiC|", "absolute difference in count (lower is better)"))


def table_demo(root, arg=None):
    """The worm demo's scores beside the floor: seed 0 (the demo's default) of the demo's seeds."""
    d = _load(root, "demo_seeds.json")
    r = next(run for run in d["runs"] if run["seed"] == 0)
    floor_key = next(k for k in r if k.startswith("floor"))
    rows = []
    for key, title in DEMO_METRICS:
        ours, floor = r["harmonic"][key], r[floor_key][key]
        better = ours < floor if key == "|DiC|" else ours > floor
        digits = 2 if key == "|DiC|" else 3
        rows.append([title, f"**{_f(ours, digits)}**" if better else _f(ours, digits), _f(floor, digits)])
    header = [f"on the {r['test_wells']} held-out wells", "harmonic embeddings",
              "floor: connected components of the mask"]
    plan = f"max_time={d['max_time']:g} s" if d.get("max_time") else f"{r.get('epochs') or d['epochs']} epochs"
    return _table(header, rows) + [""] + _source(
        ["demo_seeds.json"], d["command"],
        f" (seed 0, as `harmonic-seg demo`: trained on {r['train_wells']} wells, {plan}, in {_s(r['fit_seconds'])} s; "
        f"{_machine(d['machine'])})")


def table_demo_seeds(root, arg=None):
    """The demo with every seed run: harmonic embeddings beside the floor, per seed and metric."""
    d = _load(root, "demo_seeds.json")
    keys = (("SBD", "SBD"), ("AP@0.5 (TP/(TP+FP+FN))", "AP@0.5"), ("COCO AP", "COCO AP"))
    rows = []
    for r in d["runs"]:
        floor = next(v for k, v in r.items() if k.startswith("floor"))
        rows.append([r["seed"]] + [f"{_f(r['harmonic'][k])} / {_f(floor[k])}" for k, _ in keys]
                    + [_s(r["fit_seconds"]), r.get("epochs") or d.get("epochs", "–")])
    header = ["seed"] + [f"{t}: harmonic / floor" for _, t in keys] + ["fit (s)", "epochs"]
    plan = f"max_time={d['max_time']:g} s" if d.get("max_time") else f"{d['epochs']} epochs"
    return _table(header, rows) + [""] + _source(["demo_seeds.json"], d["command"],
                                                f" ({plan}; {_machine(d['machine'])})")


def table_first_run(root, arg=None):
    """Wall time of the README's first command in a fresh virtual environment."""
    d = _load(root, "first_run.json")
    rows = [[f"`{d['command']}`", _s(d["wall_seconds"]), d["returncode"], _machine(d["machine"])]]
    return _table(["command, in a new virtual environment", "wall time (s)", "exit status", "machine"],
                  rows) + [""] + _source(["first_run.json"], "python benchmarks/first_run.py",
                                        " (installation from the package index included)")


def table_recovery(root, arg=None):
    """Instance recovery on the nuclei sample: floor, previous and current recovery, same networks."""
    d = _load(root, "recovery_demo.json")
    seeds = d["seeds"]
    keys = ("SBD", "AP@0.5", "COCO AP")
    names = (("floor", "floor: connected components of the predicted foreground"),
             ("old", "previous: mean shift of all foreground pixels, best tuning point"),
             ("new", "default: components split at distinct modes, the floor among the tuned candidates"))
    rows = [[title] + [_mean_sd([s[key][k] for s in seeds]) for k in keys] for key, title in names]
    return _table(["recovery, same networks"] + list(keys), rows) + [""] + _source(
        ["recovery_demo.json"], "python benchmarks/recovery.py",
        f" (seeds {', '.join(str(s['seed']) for s in seeds)}, mean ± sd; 4 test tiles of the nuclei sample; "
        f"{_machine(d['machine'])})")


def table_shared_cpu(root, arg=None):
    """Mean shift and predict times with old / new / one-thread settings, idle and shared CPU."""
    d = _load(root, "bench_shared_cpu.json")
    by = {(s["task"], s["load"], s["mode"]): s for s in d["summary"]}
    points = f"{d['settings']['inputs']['points']:,}".replace(",", " ")
    tasks = (("meanshift", f"mean shift, {points} points"),
             ("predict", "predict, 512x512"))
    loads = (("idle", "no extra process"), ("shared", "+1 busy process"))

    def cell(s):
        return f"{_s(s['min'])} / {_s(s['median'])}"

    def threads(s):
        net = ",".join(map(str, s["threads_network"])) or "–"
        return f"{net} / {','.join(map(str, s['threads_mean_shift']))}"

    rows = []
    for task, tname in tasks:
        for load, lname in loads:
            old, new, one = (by[(task, load, m)] for m in ("old", "new", "one"))
            rows.append([tname, lname, cell(old), cell(new), cell(one), f"{threads(old)}; {threads(new)}"])
    header = ["task", "CPU", "old: 2 threads (s) min / median", "new (s) min / median",
              "1 thread (s) min / median", "threads (network / mean shift): old; new"]
    return _table(header, rows) + [""] + _source(
        ["bench_shared_cpu.json"], d["command"].strip(),
        f" ({d['settings']['repeats']} repeats; {_machine(d['machine'])})")


def table_fuzz(root, arg=None):
    """Counts of the fuzzer's last run, per family of inputs."""
    d = _load(root, "fuzz.json")
    cols = ("accepted", "clear", "deep", "traceback", "hang", "lost")
    rows = [[fam] + [c.get(k, 0) for k in cols] for fam, c in d["by_family"].items()]
    rows.append(["**all**"] + [d["counts"][k] for k in cols])
    header = ["family", "accepted", "clear error", "deep error", "traceback", "hang", "lost file"]
    return _table(header, rows) + [""] + _source(
        ["fuzz.json"], d["command"],
        f" ({d['counts']['tried']} inputs in {_s(d['wall_s'])} s; {_machine(d['machine'])})")


def table_dask_sweep(root, arg=None):
    """GridSearchCV sequentially and under joblib's dask backend: same scores, same best."""
    d = _load(root, "dask_sweep.json")
    params = d["sequential"]["params"]
    names = ", ".join(f"{p['guides__margin']:.1f}/{p['guides__n_guides']}" for p in params)

    def best(b):
        return f"margin {b['guides__margin']:.1f}, {b['guides__n_guides']} guides"

    seq, dsk = d["sequential"], d["dask"]
    rows = [["sequential (`n_jobs=1`)", f"{_s(seq['seconds'])} s",
             ", ".join(_f(s) for s in seq["mean_test_score"]), best(seq["best_params"])],
            [f"`LocalCluster`, {d['workers']} workers x 1 thread", f"{_s(dsk['seconds'])} s",
             "the same (largest difference "
             f"{d['max_abs_score_difference']:g})" if d["same_best_params"] else
             ", ".join(_f(s) for s in dsk["mean_test_score"]),
             "the same" if d["same_best_params"] else best(dsk["best_params"])]]
    header = ["search", "time", f"mean fold SBD (margin/guides: {names})", "best parameters"]
    return _table(header, rows) + [""] + _source(["dask_sweep.json"], d["command"], f" ({_machine(d['machine'])})")


def table_recluster(root, arg=None):
    """The defaults' networks re-clustered: current recovery, the recorded one, the paper's, the floor."""
    d = _load(root, RECLUSTER)
    by = {}
    for r in d["runs"]:
        by.setdefault(r["dataset"], []).append(r)
    ways = (("current", "current library, tuned again"), ("recorded", "as recorded when trained"),
            ("mean_shift", "mean shift of all foreground pixels"), ("floor", "floor: connected components"))
    rows = []
    for ds, name in DATASET_NAMES.items():
        runs = by.get(ds)
        if not runs:
            continue
        for i, (key, title) in enumerate(ways):
            cells = [_mean_sd([r["rows"]["predicted"][key][k] for r in runs]) for k, _ in METRICS]
            rows.append([name if i == 0 else "", title, len(runs)] + cells)
    header = ["data set", "clustering of the same networks", "seeds"] + [t for _, t in METRICS]
    return _table(header, rows) + [""] + _source(
        [RECLUSTER], d["command"], f" (predicted foreground; {_machine(d['machine'])})")


def table_floor_check(root, arg=None):
    """Per seed, the library's score minus the floor's (connected components of its own foreground)."""
    rec, nuc, demo = _load(root, RECLUSTER), _load(root, "recovery_demo.json"), _load(root, "demo_seeds.json")
    keys = (("SBD", "SBD"), ("AP@0.5 (TP/(TP+FP+FN))", "AP@0.5"), ("COCO AP", "COCO AP"))
    cases = [(DATASET_NAMES[ds], [(r["rows"]["predicted"]["current"], r["rows"]["predicted"]["floor"])
                                  for r in rec["runs"] if r["dataset"] == ds]) for ds in DATASET_NAMES]
    cases += [("nuclei sample", [(s["new"], s["floor"]) for s in nuc["seeds"]]),
              ("nuclei sample, the floor's instances scored as the library scores its own",
               [(s["new"], s["floor_scored"]) for s in nuc["seeds"]]),
              ("demo (worms, mask given)", [(r["harmonic"], next(v for k, v in r.items() if k.startswith("floor")))
                                            for r in demo["runs"]])]
    rows = []
    for name, pairs in cases:
        if not pairs:
            continue
        cols = [[a.get(k, a.get(t)) - b.get(k, b.get(t)) for a, b in pairs] for k, t in keys]  # files name AP@0.5 both ways
        at = sum(d >= -5e-4 for c in cols for d in c)
        rows.append([name, len(pairs)] + [" / ".join(f"{d:+.3f}" for d in c) for c in cols]
                    + [f"{at} of {sum(len(c) for c in cols)}"])
    header = ["data", "seeds"] + [f"{t}: library − floor" for _, t in keys] + ["at or above"]
    return _table(header, rows) + [""] + _source(
        [RECLUSTER, "recovery_demo.json", "demo_seeds.json"],
        f"{rec['command']}`, `python benchmarks/recovery.py` and `python benchmarks/demo_seeds.py",
        f" (one difference per seed; the demo's foreground is the given mask, the others' the predicted one; all the "
        f"floor's instances score 1 (COCO AP ranks them in raster order) unless said; {_machine(rec['machine'])})")


def table_mode_search(root, arg=None):
    """The mode search of large images: per component (current) against the earlier sampled search."""
    d = _load(root, "mode_search.json")
    titles = {"current": "each component on its own (current)",
              "previous": f"one sample of 20000 pixels ({d['previous_commit']})",
              "every_pixel": "one search over every pixel (`max_points=None`)"}
    rows = []
    for r in d["rows"]:
        rows.append([f"{r['size']} x {r['size']}", titles[r["variant"]], _s(r["seconds"]),
                     f"{r['n_instances']} ({r['n_true']})", _f(r["SBD"]), _f(r["AP50"])])
    header = ["image", "mode search", "seconds", "instances (truth)", "SBD", "AP@0.5"]
    return _table(header, rows) + [""] + _source(
        ["mode_search.json"], d["command"],
        f" (best of {d['repeats']}, {d['threads']} thread; {_machine(d['machine'])})")


def table_dask_equivalence(root, arg=None):
    """Blockwise against whole-image labels of one model on a mosaic, per stitching rule."""
    d = _load(root, "dask_equivalence.json")
    runs = d["results"]["default"]
    rows = []
    for rule in ("embedding", "iou", "touch"):
        if rule not in runs:
            continue
        r = runs[rule]
        rows.append([f"`stitch=\"{rule}\"`", f"{r['adjusted_rand_index_foreground']:.4f}",
                     f"{r['instances_blockwise']} / {r['instances_whole']}",
                     r["whole_instances_crossing_block_borders"], r["split_at_block_borders"],
                     r["split_elsewhere"], r["blockwise_labels_merging_instances"]])
    header = ["blockwise, joined by", "ARI (foreground)", "instances (blockwise / whole)",
              "whole-image instances across block borders", "split at a border", "split elsewhere",
              "blockwise labels joining two instances"]
    return _table(header, rows) + [""] + _source(
        ["dask_equivalence.json"], runs["command"],
        f" ({d['image']}, blocks of {d['blocks']}, overlap {d['overlap']}; {_machine(d['machine'])})")


def table_dask_memory(root, arg=None):
    """Peak memory and speed of predict_to_zarr on a LocalCluster, and of predict in memory."""
    d = _load(root, "dask_memory.json")
    rows = []
    for r in d["rows"]:
        b, m = r.get("blockwise"), r.get("in_memory")
        size = f"{r['size']} x {r['size']}"
        if b:
            peak = max(b["worker_peak_rss_mib"].values())
            rows.append([size, f"blockwise, {d['workers']} workers", f"{peak:.0f} per worker", _s(b["seconds"]),
                         f"{b['pixels_per_second'] / 1e3:.0f}k", b["n_instances"]])
        if m:
            rows.append([size, "`predict` in memory, one process", f"{m['peak_rss_mib']:.0f}", _s(m["seconds"]),
                         f"{m['pixels_per_second'] / 1e3:.0f}k", m["n_instances"]])
    header = ["image", "how", "peak resident memory (MiB)", "seconds", "pixels per second", "instances"]
    return _table(header, rows) + [""] + _source(
        ["dask_memory.json"], d["command"],
        f" (chunks {d['chunks']}, {d['threads_per_worker']} thread per worker; {_machine(d['machine'])})")


def table_dask_stages(root, arg=None):
    """Seconds per stage of predict_to_zarr on one mosaic, in one process."""
    d = _load(root, "dask_stages.json")
    stages = list(d["runs"][0]["seconds"])
    rows = [[k] + [_s(run["seconds"][k]) for run in d["runs"]] for k in stages]
    header = ["stage"] + [f"run {i + 1} (s)" for i in range(len(d["runs"]))]
    return _table(header, rows) + [""] + _source(["dask_stages.json"], d["command"], f" ({d['scheduler']}; "
                                                f"{_machine(d['machine'])})")


def table_warm_start(root, arg=None):
    """A model fitted on half a training split, then continued on the other half with warm_start=True."""
    files = sorted(p.name for p in (Path(root) / RESULTS).glob("warm_start_*_seed*.json"))
    if not files:
        raise RenderError(f"{RESULTS}/warm_start_<data set>_seed<k>.json is missing; run benchmarks/warm_start.py")
    rows, commands, machines = [], [], []
    for name in files:
        d = _load(root, name)
        commands.append(d["command"])
        machines.append(_machine(d["machine"]))
        for key, title in (("first", "fitted on the first half"), ("warm_started", "then `warm_start=True` on the second")):
            r = d[key]
            rows.append([DATASET_NAMES.get(d["dataset"], d["dataset"]), d["seed"], title, r["images"],
                         _s(r["fit_seconds"]), r["n_epochs"], _f(r["SBD"]), _f(r["AP@0.5"]), _f(r["COCO AP"])])
    header = ["data set", "seed", "model", "training images", "fit (s)", "epochs", "SBD", "AP@0.5", "COCO AP"]
    return _table(header, rows) + [""] + _source(files, "; ".join(commands),
                                                f" (test split; {'; '.join(sorted(set(machines)))})")


#: Table name -> function(root, arg) returning the lines between the markers.
TABLES = {
    "defaults": table_defaults,
    "defaults_seeds": table_defaults_seeds,
    "demo": table_demo,
    "first_run": table_first_run,
    "recovery": table_recovery,
    "shared_cpu": table_shared_cpu,
    "fuzz": table_fuzz,
    "dask_sweep": table_dask_sweep,
    "recluster": table_recluster,
    "floor_check": table_floor_check,
    "demo_seeds": table_demo_seeds,
    "warm_start": table_warm_start,
    "mode_search": table_mode_search,
    "dask_equivalence": table_dask_equivalence,
    "dask_memory": table_dask_memory,
    "dask_stages": table_dask_stages,
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
