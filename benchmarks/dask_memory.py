"""``bench_dask.py memory`` (and its ``child``): ``predict_to_zarr`` on a LocalCluster against ``predict`` in memory."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from _dask_common import (HERE, clustering_settings, crop_box, ground_truth, load_model, load_nuclei, machine, write,
                          zarr_mosaic)


class RSSPoller(threading.Thread):
    """Peak resident memory of some processes, polled every ``interval`` seconds."""

    def __init__(self, pids, interval=0.2):
        super().__init__(daemon=True)
        import psutil

        self.procs = {pid: psutil.Process(pid) for pid in pids}
        self.peak = {pid: 0 for pid in pids}
        self.interval = interval
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            for pid, p in self.procs.items():
                try:
                    self.peak[pid] = max(self.peak[pid], p.memory_info().rss)
                except Exception:  # noqa: BLE001 - a worker that restarted
                    pass
            self.done.wait(self.interval)

    def stop(self):
        self.done.set()
        self.join()
        return {str(pid): round(v / 2**20, 1) for pid, v in self.peak.items()}


def worker_environ(malloc_trim):
    """The environment dask's nannies give their workers; without ``MALLOC_TRIM_THRESHOLD_`` unless asked.

    dask sets ``MALLOC_TRIM_THRESHOLD_=65536`` in every worker so that glibc returns freed memory to the
    system at once; it also turns off glibc's adaptive mmap threshold, so every array above 128 KiB gets fresh
    pages. Blockwise prediction allocates large arrays in every layer of the network and every step of the
    clustering: in one process with that setting it took 1.7x the CPU time (system time 0.7 s -> 4.1 s, page
    faults 0.44 M -> 2.82 M, a 1024x1024 mosaic in 512x512 blocks)."""
    import dask

    env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {})
    if not malloc_trim:
        env.pop("MALLOC_TRIM_THRESHOLD_", None)
    return env


def run_cluster(model_path, src, dst, chunk, workers, tile_truth, malloc_trim=False):
    import dask
    from dask.distributed import Client, LocalCluster

    from harmonic_seg.distributed import predict_to_zarr

    seg = load_model(model_path)
    env = worker_environ(malloc_trim)
    with dask.config.set({"distributed.nanny.pre-spawn-environ": env}), \
            LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        pids = list(client.run(os.getpid).values())
        poller = RSSPoller(pids)
        baseline = {str(p): round(v / 2**20, 1) for p, v in zip(pids, client.run(
            lambda: __import__("psutil").Process().memory_info().rss).values())}
        poller.start()
        t0 = time.perf_counter()
        z = predict_to_zarr(seg, src, dst, chunks=chunk, overwrite=True)
        seconds = time.perf_counter() - t0
        peaks = poller.stop()
    n = z.shape[0] * z.shape[1]
    y0, y1 = crop_box(z.shape[0])
    return {"seconds": seconds, "pixels_per_second": n / seconds, "n_instances": z.attrs["n_instances"],
            "instances_per_copy": z.attrs["n_instances"] * tile_truth.size / n,
            "f1_vs_ground_truth_crop": ground_truth(tile_truth, z.shape[0], z[y0:y1, y0:y1])["f1_crop"],
            "worker_peak_rss_mib": peaks, "worker_rss_at_start_mib": baseline,
            "worker_environ": env, "stitching": z.attrs["stitching"]}


def child_in_memory(args):
    """Runs in a child process: predict() on the whole mosaic in memory; prints JSON."""
    import torch
    import zarr

    torch.set_num_threads(1)
    seg = load_model(args.model)
    image = zarr.open_array(store=args.src, mode="r")[...]
    t0 = time.perf_counter()
    labels = seg.predict([image])[0]
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    _, tile_truth = load_nuclei(args.data)
    y0, y1 = crop_box(image.shape[0])
    fg = int(np.count_nonzero(labels))
    print(json.dumps({"seconds": seconds, "pixels_per_second": image.size / seconds,
                      "n_instances": int(labels.max()), "instances_per_copy": int(labels.max()) * tile_truth.size
                      / image.size, "f1_vs_ground_truth_crop": ground_truth(tile_truth, image.shape[0],
                                                                            labels[y0:y1, y0:y1])["f1_crop"],
                      "foreground_pixels": fg,
                      "peak_rss_mib": round(peak, 1)}))


def cmd_memory(args):
    tile, tile_truth = load_nuclei(args.data)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    rows, previous = [], Path(args.results) / "dask_memory.json"
    if args.append and previous.exists():  # the rows of an earlier run, for sizes not run now
        rows = [r for r in json.loads(previous.read_text())["rows"] if r["size"] not in args.sizes]
    for size in args.sizes:
        src = zarr_mosaic(tile, size, work / f"mosaic_{size}.zarr", args.chunk)
        row = {"size": size, "pixels": size * size, "ground_truth": ground_truth(tile_truth, size),
               "command": f"python benchmarks/bench_dask.py memory --model MODEL --workdir DIR --chunk {args.chunk} "
                          f"--workers {args.workers} --sizes {size} --in-memory "
                          f"{size if size in args.in_memory else ''}{' --append' if args.append else ''}"
                          f"{' --malloc-trim' if args.malloc_trim else ''}".strip()}
        print(f"{size}x{size}: blockwise on a LocalCluster of {args.workers} workers ...", flush=True)
        row["blockwise"] = run_cluster(args.model, str(src), str(work / f"labels_{size}.zarr"), args.chunk,
                                       args.workers, tile_truth, args.malloc_trim)
        print(json.dumps(row["blockwise"]), flush=True)
        if size in args.in_memory:
            print(f"{size}x{size}: predict in memory ...", flush=True)
            env = dict(os.environ, OMP_NUM_THREADS="1")
            proc = subprocess.run([sys.executable, str(HERE / "bench_dask.py"), "child", "--model", args.model,
                                   "--src", str(src), "--data", args.data],
                                  capture_output=True, text=True, env=env)
            if proc.returncode == 0:
                row["in_memory"] = json.loads(proc.stdout.strip().splitlines()[-1])
            else:
                row["in_memory"] = {"failed": proc.stderr.strip().splitlines()[-1:]}
            print(json.dumps(row["in_memory"]), flush=True)
        rows.append(row)
        rows.sort(key=lambda r: r["size"])
        write(args.results, "memory", {
            "machine": machine(), "command": "python benchmarks/bench_dask.py memory --model MODEL "
            f"--workdir DIR --chunk {args.chunk} --sizes {' '.join(map(str, args.sizes))} --in-memory "
            f"{' '.join(map(str, args.in_memory))}", "chunks": args.chunk, "workers": args.workers,
            "threads_per_worker": 1, "model": clustering_settings(load_model(args.model)), "rows": rows})
