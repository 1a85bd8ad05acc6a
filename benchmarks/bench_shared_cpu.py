"""Mean shift and predict on a CPU that another process shares: torch threads old and new.

torch gives its CPU kernels one OpenMP thread per core and every operation
waits for the slowest of them, so when another process holds a core, a loop of
small operations (the mean shift) can become a hundred times slower. This
script times, each in its own process with a time limit (a collapse is
reported as "> T s" instead of hanging the run):

* **mean shift**: ``harmonic_seg.clustering.mean_shift`` of ``--points``
  (16384) foreground embeddings of the shipped nuclei sample (512 x 512, 125
  nuclei): target embeddings of 12 fitted guides, blurred across boundaries
  (sigma 0.7 px) plus Gaussian noise of sd ``--noise`` (0.1), bandwidth 0.5;
* **predict**: ``HarmonicSegmenter.predict`` of the whole 512 x 512 sample with
  a small network fitted first (depth 3, width 8, 100 steps of 4 crops of 128
  px, one thread; ``--model DIR`` reuses a saved one);

with three thread settings, each **idle** (nothing started by the script) and
**shared** (a second process spinning ``while True: pass`` for the whole
measurement, started before and killed after):

* ``old``: torch's default threads for everything (``torch.get_num_threads()``
  of a fresh process given explicitly), which is what the library did before
  it chose threads itself;
* ``new``: the library's defaults (``num_threads=None``): the network on
  torch's threads within the inner limits, the mean shift on one;
* ``one``: one thread for everything (``num_threads=1``).

Each measurement runs ``--repeats`` times (one warm-up call, then one timed
call per fresh process), interleaved so that a change of the machine's load
touches every setting alike; min and median are reported, with the run queue
(``/proc/loadavg``) seen before each run, which says how busy the machine
already was (1 = only the reader: idle). ``--wait-quiet S`` waits up to S
seconds before each run for a quiet moment (at most one other runnable task).
A markdown table is printed and JSON written to ``--out``.

Usage::

    python benchmarks/bench_shared_cpu.py                      # about 5-15 min on 2 cores
    python benchmarks/bench_shared_cpu.py --timeout 30 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

TASKS = ("meanshift", "predict")
MODES = ("old", "new", "one")
LOADS = ("idle", "shared")
BANDWIDTH = 0.5


# --------------------------------------------------------------------------
# inputs (built once, in the parent, before any measurement)
# --------------------------------------------------------------------------
def make_points(path, n_points, noise, seed=0):
    """Foreground embeddings of the nuclei sample, ``n_points`` of them drawn at random, saved to ``path``."""
    from bench_meanshift import synthetic_embedding

    from harmonic_seg.io import load_nuclei_sample

    labels = load_nuclei_sample(tile=None).labels[0]
    emb, kind = synthetic_embedding(labels, noise=noise, seed=seed)
    pts = emb[:, labels > 0].T
    pts = pts[np.random.default_rng(seed).choice(len(pts), size=min(n_points, len(pts)), replace=False)]
    np.save(path, np.ascontiguousarray(pts, dtype=np.float32))
    return {"points": int(len(pts)), "dims": int(pts.shape[1]), "noise": noise, "guides": kind,
            "foreground_pixels": int((labels > 0).sum()), "instances": int(len(np.unique(labels)) - 1)}


def fit_model(path):
    """A small network fitted on the four 256 x 256 tiles of the nuclei sample, saved to ``path``."""
    from harmonic_seg import HarmonicSegmenter, Network
    from harmonic_seg.io import load_nuclei_sample

    data = load_nuclei_sample(tile=256)
    t0 = time.perf_counter()
    seg = HarmonicSegmenter(network=Network(depth=3, base_width=8), epochs=5, steps_per_epoch=20, crop_size=128,
                            batch_size=4,
                            validation_fraction=0, device="cpu", num_threads=1, random_state=0)
    seg.fit(data.images, data.labels)
    seg.save(path, overwrite=True)
    return {"fit_seconds": round(time.perf_counter() - t0, 1), "depth": 3, "base_width": 8, "steps": 100}


# --------------------------------------------------------------------------
# worker: one warm-up call and one timed call, in a fresh process
# --------------------------------------------------------------------------
def worker(task, mode, data_dir):
    import torch

    import harmonic_seg.clustering.meanshift as meanshift_module

    threads = {"old": torch.get_num_threads(), "new": None, "one": 1}[mode]
    used = {"network": set(), "mean_shift": set()}  # torch's threads seen by the timed call
    shift_steps = meanshift_module._shift_seeds

    def recording_shift_steps(*args, **kwargs):
        used["mean_shift"].add(torch.get_num_threads())
        return shift_steps(*args, **kwargs)

    meanshift_module._shift_seeds = recording_shift_steps
    data_dir = Path(data_dir)
    if task == "meanshift":
        pts = np.load(data_dir / "points.npy")

        def call(x):
            return len(meanshift_module.mean_shift(x, BANDWIDTH, num_threads=threads)[0])

        warm, arg = pts[:2000], pts
    else:
        from harmonic_seg import HarmonicSegmenter
        from harmonic_seg.io import load_nuclei_sample

        seg = HarmonicSegmenter.load(data_dir / "model").set_params(num_threads=threads)
        seg.module_.register_forward_pre_hook(lambda *_: used["network"].add(torch.get_num_threads()))
        image = load_nuclei_sample(tile=None).images[0]

        def call(x):
            return int(seg.predict([x])[0].max())

        warm, arg = image[:128, :128], image
    call(warm)
    print(json.dumps({"ready": True}), flush=True)
    for v in used.values():
        v.clear()
    t0 = time.perf_counter()
    n_found = call(arg)
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "found": n_found, "torch_threads_after": torch.get_num_threads(),
                      **{f"threads_{k}": sorted(v) for k, v in used.items()}}), flush=True)


# --------------------------------------------------------------------------
# parent: one measurement = one worker process with a time limit
# --------------------------------------------------------------------------
def _runqueue():
    try:
        with open("/proc/loadavg") as f:
            fields = f.read().split()
        return {"loadavg_1min": float(fields[0]), "runnable": int(fields[3].split("/")[0])}
    except OSError:
        return {}


def _start_load():
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    time.sleep(0.5)  # let it reach the run queue
    return proc


def _wait_quiet(max_wait):
    """Wait up to ``max_wait`` seconds until at most one task besides the reader is runnable."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < max_wait:
        if _runqueue().get("runnable", 0) <= 2:
            break
        time.sleep(0.5)
    return round(time.monotonic() - t0, 1)


def measure(task, mode, load, data_dir, timeout, setup_timeout, wait_quiet=0.0):
    """Run one worker; returns a record with ``seconds`` or ``timed_out``."""
    waited = _wait_quiet(wait_quiet) if wait_quiet > 0 else 0.0
    record = {"task": task, "mode": mode, "load": load, "waited_s": waited, **_runqueue()}
    spinner = _start_load() if load == "shared" else None
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", task, mode, "--data", str(data_dir)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + setup_timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(timeout=left):
                record["timed_out"] = "call" if record.get("_timed") else "start-up"
                break
            line = proc.stdout.readline()
            if not line:
                record["error"] = f"worker exited with status {proc.wait()}"
                break
            msg = json.loads(line)
            if msg.get("ready"):
                record["_timed"] = True
                deadline = time.monotonic() + timeout
                continue
            record.update(msg)
            break
    finally:
        sel.close()
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    record.pop("_timed", None)
    return record


# --------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------
def _fmt(seconds):
    return f"{seconds:.2f}" if seconds < 10 else f"{seconds:.1f}"


def _threads_cell(row):
    net = ",".join(map(str, row["threads_network"])) or "-"
    ms = ",".join(map(str, row["threads_mean_shift"])) or "?"
    return f"{net} / {ms}"


def summarise(records, timeout):
    rows = []
    for task in TASKS:
        for load in LOADS:
            for mode in MODES:
                runs = [r for r in records if (r["task"], r["load"], r["mode"]) == (task, load, mode)]
                if not runs:
                    continue
                times = [r["seconds"] if "seconds" in r else float("inf") for r in runs]
                med = statistics.median_low(times)  # a timed-out run counts as longer than all others
                rows.append({
                    "task": task, "load": load, "mode": mode, "runs": len(runs),
                    "min": min(times), "median": med, "timeouts": sum(t == float("inf") for t in times),
                    "threads_network": sorted({t for r in runs for t in r.get("threads_network", [])}),
                    "threads_mean_shift": sorted({t for r in runs for t in r.get("threads_mean_shift", [])}),
                    "runnable_before": [r.get("runnable") for r in runs],
                })
    lines = ["| task | CPU | setting | min (s) | median (s) | threads: network / mean shift | runnable tasks before |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        cell = {k: (_fmt(row[k]) if row[k] != float("inf") else f"> {timeout:g}") for k in ("min", "median")}
        lines.append(f"| {row['task']} | {row['load']} | {row['mode']} | {cell['min']} | {cell['median']} | "
                     f"{_threads_cell(row)} | {','.join(map(str, row['runnable_before']))} |")
    return rows, "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    ap.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    ap.add_argument("--loads", nargs="+", choices=LOADS, default=list(LOADS))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds allowed to one timed call")
    ap.add_argument("--setup-timeout", type=float, default=180.0, help="seconds allowed to start-up and warm-up")
    ap.add_argument("--wait-quiet", type=float, default=0.0,
                    help="seconds to wait before each run for at most one other runnable task")
    ap.add_argument("--points", type=int, default=16384)
    ap.add_argument("--noise", type=float, default=0.1)
    ap.add_argument("--model", type=Path, default=None, help="a saved model folder to reuse (else one is fitted)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "bench_shared_cpu.json")
    ap.add_argument("--worker", nargs=2, metavar=("TASK", "MODE"), help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(*args.worker, args.data)

    from _common import machine, write_json

    # a terminated run still stops its busy process and worker (the finally blocks of measure)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="bench_shared_cpu_") as tmp:
        tmp = Path(tmp)
        inputs = make_points(tmp / "points.npy", args.points, args.noise)
        if "predict" in args.tasks:
            if args.model is not None:
                (tmp / "model").symlink_to(args.model.resolve())
                inputs["model"] = {"folder": str(args.model)}
            else:
                print("fitting the small model ...", flush=True)
                inputs["model"] = fit_model(tmp / "model")
        records = []
        for rep in range(args.repeats):
            for task in args.tasks:
                for load in args.loads:
                    for mode in args.modes:
                        rec = measure(task, mode, load, tmp, args.timeout, args.setup_timeout, args.wait_quiet)
                        rec["repeat"] = rep
                        records.append(rec)
                        shown = _fmt(rec["seconds"]) if "seconds" in rec else (
                            f"> {args.timeout:g}" if rec.get("timed_out") else rec.get("error"))
                        print(f"[{rep + 1}/{args.repeats}] {task:9s} {load:6s} {mode:3s} {shown} s "
                              f"(runnable before: {rec.get('runnable')})", flush=True)
    rows, table = summarise(records, args.timeout)
    print(table)
    payload = {
        "benchmark": "bench_shared_cpu",
        "command": "python benchmarks/bench_shared_cpu.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine(),
        "settings": {"timeout_s": args.timeout, "repeats": args.repeats, "bandwidth": BANDWIDTH,
                     "inputs": inputs, "load": "one extra process running `while True: pass` (shared)"},
        "summary": [{k: (None if v == float("inf") else v) for k, v in row.items()} for row in rows],
        "records": records,
        "table": table,
    }
    path = write_json(args.out, payload)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main() or 0)
