"""Tables of the results page (``docs/results.md``) and the README's summary: the reproduction runs of
``benchmarks/run.py`` (``<config>_<data set>_seed<k>.json``), seed by seed and as mean ± sd per data set,
beside the floor, the hand recipes, Cellpose, the oracle and the paper. Files written by the earlier
scripts (``benchmarks/defaults.py``, ``benchmarks/reproduce.py --max-time``) are read too."""

from __future__ import annotations

import re
from pathlib import Path

from render_common import (
    DATASET_NAMES,
    FLOOR_ROW,
    HARMONIC_ROW,
    METRICS,
    PAPER,
    RECLUSTER,
    RESULTS,
    RenderError,
    _f,
    _load,
    _machine,
    _mean_sd,
    _metric,
    _s,
    _source,
    _table,
)

#: Configs of ``benchmarks/run.py`` shown beside the defaults in the summary: config -> the row of its
#: result files that the summary shows.
COMPARED = {
    "recipe": HARMONIC_ROW,
    "cellpose": "Cellpose 3.1 from scratch",
    "oracle": "oracle: mean shift of the target embeddings",
}


# -- the result files ----------------------------------------------------------------------------

def _runs(root, config):
    """{data set: [(seed, result, file name), ...]} of ``<config>_<data set>_seed<k>.json``, data sets in
    the order of :data:`DATASET_NAMES`, seeds in order. The defaults' rows are those of the re-clustered
    networks where ``recluster_defaults.json`` holds the same run."""
    found = {}
    for path in sorted((Path(root) / RESULTS).glob(f"{config}_*_seed*.json")):
        m = re.fullmatch(rf"{config}_(?P<ds>.+)_seed(?P<seed>\d+)\.json", path.name)
        if m is not None and m["ds"] in DATASET_NAMES:
            found.setdefault(m["ds"], []).append((int(m["seed"]), path.name))
    current = _reclustered(root)[0] if config == "defaults" else {}
    out = {}
    for ds in DATASET_NAMES:
        for seed, name in sorted(found.get(ds, [])):
            result = _load(root, name)
            if _same_run(current.get((ds, seed)), result):  # the library's clustering now, on the same network
                rows = dict(result["rows"])
                rows[HARMONIC_ROW] = current[(ds, seed)]["current"]
                rows[FLOOR_ROW] = current[(ds, seed)]["floor"]
                result = {**result, "rows": rows}
            out.setdefault(ds, []).append((seed, result, name))
    return out


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


def _fit_seconds(result):
    return result.get("fit_seconds", result.get("train_seconds"))


# -- commands and settings -----------------------------------------------------------------------

def _command(config, runs, dataset=None):
    """The command line that writes these runs' files: ``python benchmarks/run.py <config> [<data set>...]``
    with the options the runs recorded (``--seeds`` only where the runs' seeds are not the config's);
    files of the earlier scripts get theirs, joined after it."""
    new = [run for run in runs if "config" in run[1]]
    old = [run for run in runs if "config" not in run[1]]
    commands = []
    if new:
        datasets = [dataset] if dataset else [ds for ds in DATASET_NAMES if any(r["dataset"] == ds for _, r, _ in new)]
        every = [ds for ds in DATASET_NAMES if (Path(__file__).resolve().parents[1] / "benchmarks" / "configs"
                                                  / config / f"{ds}.json").is_file()]
        named = "" if not dataset and datasets == every else " " + " ".join(datasets)
        rests = {re.sub(r" --seeds \d+", "", r["command"]).replace(f" {r['dataset']}", "", 1) for _, r, _ in new}
        prefix = f"python benchmarks/run.py {config}"
        seeds = sorted({r["seed"] for _, r, _ in new})
        configured = sorted(set().union(*(r.get("settings", {}).get("seeds", seeds) for _, r, _ in new)))
        seeds = "" if seeds == configured else " --seeds " + " ".join(map(str, seeds))
        if len(rests) == 1 and (rest := rests.pop()).startswith(prefix):
            commands.append(prefix + named + rest[len(prefix):] + seeds)
        else:
            commands += sorted(rests)
    if old and config == "defaults":  # files of benchmarks/defaults.py, which recorded no command
        commands.append(_defaults_py_command(old, dataset))
    elif old:  # files of benchmarks/reproduce.py: the seed written as {k}, --out as the file the table names
        command = re.sub(r"--seed \d+", "--seed {k}", old[0][1]["command"])
        commands.append(re.sub(r"--out \S*?(recipe_\S+?)_seed\d+\.json", rf"--out {RESULTS}/\1_seed{{k}}.json",
                               command))
    return "`, `".join(commands)


def _defaults_py_command(runs, dataset=None):
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


def _settings(runs):
    """The parameters the runs set besides ``random_state`` (``max_time=720, num_threads=2``); values that
    differ between the runs are joined by ``/``."""
    def params(r):
        return r["params"] if "params" in r else {"max_time": r["max_time"]}

    keys = []
    for _, r, _ in runs:
        keys += [k for k in params(r) if k != "random_state" and k not in keys]
    parts = []
    for k in keys:
        values = []
        for _, r, _ in runs:
            v = params(r).get(k, "default")
            v = f"{v:g}" if isinstance(v, float) else str(v)
            if v not in values:
                values.append(v)
        parts.append(f"{k}={'/'.join(values)}")
    return ", ".join(parts)


def _label(config, runs):
    """The summary's name of a compared method."""
    if config == "recipe":
        budgets = sorted({r["max_time"] for _, r, _ in runs})
        return f"hand recipe, `max_time={'/'.join(f'{b:g}' for b in budgets)}`"
    if config == "cellpose":  # the minutes it trained (the calibrated epochs can end before the budget)
        trained = [r["train_seconds"] for _, r, _ in runs if r.get("train_seconds") is not None]
        if len(trained) == len(runs):
            return f"Cellpose 3.1 from scratch, {sum(trained) / len(trained) / 60:.1f} min of training"
        budgets = sorted({r["budget_minutes"] for _, r, _ in runs if r.get("budget_minutes") is not None})
        return "Cellpose 3.1 from scratch" + (f", {'/'.join(f'{b:g}' for b in budgets)} min of training"
                                               if budgets else "")
    return "oracle: the truth's exact embeddings clustered over the true foreground (a perfect network)"


# -- the tables ----------------------------------------------------------------------------------

def _mean_row(label, runs, row):
    return [label, len(runs)] + [_mean_sd([_metric(r, row, k, name) for _, r, name in runs]) for k, _ in METRICS]


def table_defaults(root, arg=None):
    """Summary: the defaults (mean ± sd over the seeds that exist) beside the hand recipe, Cellpose, the floor,
    the oracle and the paper, for every data set with defaults runs; ``arg="short"`` (the README's): the
    defaults, Cellpose, the floor and the paper only."""
    if arg not in (None, "short"):
        raise RenderError(f"defaults takes no argument or 'short'; got {arg!r}")
    data = _runs(root, "defaults")
    if not data:
        return ["No result files yet: `python benchmarks/run.py defaults` writes "
                f"`{RESULTS}/defaults_<data set>_seed<k>.json`."]
    header = ["data set", "method", "seeds"] + [t for _, t in METRICS] + ["fit (s)"]
    compared = {config: _runs(root, config) if arg is None or config == "cellpose" else {} for config in COMPARED}
    rows, files, notes = [], [], {config: [] for config in COMPARED}
    for ds, runs in data.items():
        files += [name for _, _, name in runs]
        rows.append([DATASET_NAMES[ds]] + _mean_row(f"defaults, `{_settings(runs)}`", runs, HARMONIC_ROW)
                    + [_s(sum(_fit_seconds(r) for _, r, _ in runs) / len(runs))])
        for config in ("recipe", "cellpose"):
            if compared[config].get(ds):
                other = compared[config][ds]
                files += [name for _, _, name in other]
                rows.append([""] + _mean_row(_label(config, other), other, COMPARED[config])
                            + [_s(sum(_fit_seconds(r) for _, r, _ in other) / len(other))])
                notes[config].append(f"`{_command(config, other, ds)}`")
        rows.append([""] + _mean_row("floor: connected components of the predicted foreground", runs, FLOOR_ROW)
                    + ["–"])
        if compared["oracle"].get(ds):
            other = compared["oracle"][ds]
            files += [name for _, _, name in other]
            rows.append([""] + _mean_row(_label("oracle", other), other, COMPARED["oracle"]) + ["–"])
            notes["oracle"].append(f"`{_command('oracle', other, ds)}`")
        metric, value, where = PAPER[ds]
        rows.append(["", f"paper ({where})", "–"] + [_f(value) if t == metric else "–" for _, t in METRICS] + ["–"])
    everything = [run for runs in data.values() for run in runs]
    seeds = sorted({seed for seed, _, _ in everything})
    machines = sorted({_machine(r.get("machine", {})) for _, r, _ in everything})
    extra_files, note = _recluster_source(root, everything)
    titles = {"recipe": "the hand recipes on the same budget", "cellpose": "Cellpose", "oracle": "the oracle"}
    others = "".join(f"; {titles[c]}: {', '.join(n)}" for c, n in notes.items() if n)
    return _table(header, rows) + [""] + _source(
        files + extra_files, _command("defaults", everything),
        f" (seeds {', '.join(map(str, seeds))}; mean ± sd over the seeds; {'; '.join(machines)}{note}){others}")


def table_defaults_seeds(root, arg=None):
    """One data set's defaults, seed by seed, with what the defaults chose."""
    if arg not in DATASET_NAMES:
        raise RenderError(f"defaults_seeds needs a data set after a colon, one of {sorted(DATASET_NAMES)}; "
                          f"got {arg!r}")
    runs = _runs(root, "defaults").get(arg)
    if not runs:
        return [f"No result files yet: `python benchmarks/run.py defaults {arg}` writes "
                f"`{RESULTS}/defaults_{arg}_seed<k>.json`."]
    header = ["seed"] + [t for _, t in METRICS] + ["floor SBD", "floor COCO AP", "fit (s)", "epochs", "scale"]
    rows = []
    for seed, r, name in runs:
        rows.append([seed] + [_f(_metric(r, HARMONIC_ROW, k, name)) for k, _ in METRICS]
                    + [_f(_metric(r, FLOOR_ROW, "SBD", name)), _f(_metric(r, FLOOR_ROW, "COCO AP", name)),
                       _s(_fit_seconds(r)), r.get("n_epochs", "–"), r.get("scale", "–")])
    extra_files, note = _recluster_source(root, runs)
    return _table(header, rows) + [""] + _source(
        [name for _, _, name in runs] + extra_files, _command("defaults", runs, arg),
        f" (`{_settings(runs)}`{note})")


def table_recluster(root, arg=None):
    """The defaults' networks re-clustered: current recovery, the recorded one, the paper's, the floor."""
    d = _load(root, RECLUSTER)
    by = {}
    for r in d["runs"]:
        by.setdefault(r["dataset"], []).append(r)
    if "--retune" in d["command"]:  # tuned again by the library of the re-clustering, beside the recorded scores
        ways = (("current", "current library, tuned again"), ("recorded", "as recorded when trained"))
    else:  # the post-processing the fit chose, as predict applies it
        ways = (("current", "the library's recovery, as fitted"),)
    ways += (("mean_shift", "mean shift of all foreground pixels"), ("floor", "floor: connected components"))
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
    """Per seed, the library's score minus the floor's (connected components of its own foreground): the
    defaults' runs, the nuclei sample's recovery runs and the demo."""
    defaults, nuc, demo = _runs(root, "defaults"), _load(root, "recovery_demo.json"), _load(root, "demo_seeds.json")
    keys = (("SBD", "SBD"), ("AP@0.5 (TP/(TP+FP+FN))", "AP@0.5"), ("COCO AP", "COCO AP"))
    cases = [(DATASET_NAMES[ds], [(r["rows"][HARMONIC_ROW], r["rows"][FLOOR_ROW]) for _, r, _ in runs])
             for ds, runs in defaults.items()]
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
    everything = [run for runs in defaults.values() for run in runs]
    extra_files, note = _recluster_source(root, everything)
    return _table(header, rows) + [""] + _source(
        [name for _, _, name in everything] + extra_files + ["recovery_demo.json", "demo_seeds.json"],
        f"{_command('defaults', everything)}`, `python benchmarks/recovery.py` and `python benchmarks/demo_seeds.py",
        f" (one difference per seed; the demo's foreground is the given mask, the others' the predicted one; all the "
        f"floor's instances score 1 (COCO AP ranks them in raster order) unless said{note})")


#: Ablations: name -> the configs of ``benchmarks/run.py`` compared, the reference first.
ABLATIONS = {
    "loss": ("defaults", "loss_harmonic"),
    "guide_range": ("defaults", "guides_auto"),
    "precision": ("defaults", "float32"),
    "decoder": ("loss_harmonic", "decoder_coordconv", "decoder_plain"),
    "guides": ("loss_harmonic", "guides_random", "guides_low", "guides_high"),
}
#: The reference's name where its config's label does not say what the table compares.
ABLATION_REFERENCES = {"decoder": "harmonic loss, SinConv decoder", "guides": "harmonic loss, fitted guides"}


def table_ablation(root, arg=None):
    """Configs of one ablation side by side, per data set: mean ± sd over the seeds run."""
    if arg not in ABLATIONS:
        raise RenderError(f"ablation needs one of {sorted(ABLATIONS)} after a colon; got {arg!r}")
    found = {config: _runs(root, config) for config in ABLATIONS[arg]}
    rows, files, commands = [], [], []
    for ds, name in DATASET_NAMES.items():
        if not any(found[config].get(ds) for config in ABLATIONS[arg][1:]):  # the reference alone compares nothing
            continue
        first = True
        for config in ABLATIONS[arg]:
            runs = found[config].get(ds)
            if not runs:
                continue
            label = runs[0][1].get("settings", {}).get("label", config)
            if config == ABLATIONS[arg][0]:
                label = ABLATION_REFERENCES.get(arg, label)
            rows.append([name if first else ""] + _mean_row(label, runs, HARMONIC_ROW)
                        + [_s(sum(_fit_seconds(r) for _, r, _ in runs) / len(runs))])
            files += [n for _, _, n in runs]
            commands.append(_command(config, runs, ds))
            first = False
    if not rows:
        return [f"No result files yet: `python benchmarks/run.py {ABLATIONS[arg][0]}` and "
                + ", ".join(f"`python benchmarks/run.py {c}`" for c in ABLATIONS[arg][1:])
                + f" write `{RESULTS}/<config>_<data set>_seed<k>.json`."]
    header = ["data set", "configuration", "seeds"] + [t for _, t in METRICS] + ["fit (s)"]
    machines = sorted({_machine(r.get("machine", {})) for runs in found.values() for v in runs.values()
                       for _, r, _ in v})
    return _table(header, rows) + [""] + _source(files, "`, `".join(commands),
                                                f" (mean ± sd over the seeds; {'; '.join(machines)})")
