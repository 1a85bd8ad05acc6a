"""Tables of the benchmark and demo results (``docs/benchmarks.md``, ``docs/large_images.md``, the README's
demo): one function per table, ``(root, arg) -> lines``, each reading its committed result file."""

from __future__ import annotations

from pathlib import Path

from render_common import DATASET_NAMES, RESULTS, RenderError, _f, _load, _machine, _mean_sd, _s, _source, _table

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
