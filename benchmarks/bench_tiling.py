"""Tiled vs untiled prediction on a 2048x2048 image.

Issue: "Tiled vs untiled prediction on a 2048x2048 image: maximum difference
of the embedding maps, identical instances, peak memory of both."

Input
-----
A 2048x2048 image built from real data: the binary foreground masks of the
first 12 BBBC010 test wells (``load_bbbc010(split="test", input="mask")``,
520x696 pixels each, in the order of ``splits.json``) laid out row by row in
a mosaic 4 tiles high and 3 tiles wide (2080x2088 pixels, i.e. 3x4 wells of
696x520 in width x height) and cropped to its top-left 2048x2048 pixels. As in
the paper's BBBC010 protocol the mask is both the network input and the
foreground given to the clustering (``predict(X, foreground=[X > 0])``).

Runs
----
Each prediction runs in its own child process (``python bench_tiling.py
--child ...``) so that its peak resident memory can be read from
``resource.getrusage(RUSAGE_SELF).ru_maxrss``; a *baseline* child only
imports harmonic_seg and torch, loads the model and reads the input, and its
peak is subtracted. The children are run one after the other with
``torch.set_num_threads(--threads)`` (default 1) and ``OMP_NUM_THREADS`` set
likewise, to be gentle on a shared machine.

* ``untiled``: ``seg.set_params(tile_size=None)``, one forward pass (reference).
* ``tiled``: ``tile_size=512``, default overlap ``2 * (receptive_field // 2)``
  (246 pixels for a depth-4 network): should equal ``untiled`` up to
  floating-point noise.
* ``tiled_small``: ``tile_size=512, tile_overlap=64``: a too-small overlap,
  to show what it costs.

Each child computes the embedding and foreground probability with
``seg.predict_embeddings`` and clusters them exactly as ``seg.predict`` does
(``seg.predict_from_embeddings([(embedding, fg_prob)], [foreground])``; calling ``predict`` separately would run the network
twice), then saves embedding, foreground probability and labels to an
``.npz`` file in a temporary folder.

Reported for each tiled run against the untiled one: the maximum absolute
embedding difference over all pixels, over the foreground, and *away from
tile borders* -- over the pixels at least ``receptive_field // 2`` pixels
from every tile seam (the lines where stitching switches from one tile to the
next); the maximum foreground-probability difference; whether the label maps
are identical (and the adjusted Rand index over the foreground when not);
wall times and peak RSS of every child. A markdown table is printed and JSON
written to ``--out`` (default ``benchmarks/out/tiling.json``).

Usage::

    nice -n 10 python benchmarks/bench_tiling.py [--model benchmarks/out/model_bbbc010_sin]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

DEFAULT_MODEL = HERE / "out" / "model_bbbc010_sin"
DEFAULT_OUT = HERE / "out" / "tiling.json"
RUN_ORDER = ("baseline", "untiled", "tiled", "tiled_small")


# --------------------------------------------------------------------------
# input
# --------------------------------------------------------------------------
def build_input(size=2048):
    """A ``size x size`` mosaic of BBBC010 test-split foreground masks (uint8 0/1) and its well ids."""
    from harmonic_seg.io import load_bbbc010

    data = load_bbbc010(split="test", input="mask")
    h, w = data.images[0].shape[:2]
    rows, cols = -(-size // h), -(-size // w)
    if rows * cols > len(data):
        raise ValueError(f"a {size}x{size} mosaic needs {rows * cols} wells; the test split has {len(data)}.")
    mosaic = np.zeros((rows * h, cols * w), np.uint8)
    wells = []
    for k in range(rows * cols):
        r, c = divmod(k, cols)
        im = data.images[k]
        if im.shape[:2] != (h, w):
            raise ValueError(f"BBBC010 well {data.names[k]} has shape {im.shape}; expected {(h, w)}.")
        mosaic[r * h:(r + 1) * h, c * w:(c + 1) * w] = im
        wells.append(data.names[k])
    return np.ascontiguousarray(mosaic[:size, :size]), wells, (rows, cols, h, w)


# --------------------------------------------------------------------------
# child process
# --------------------------------------------------------------------------
def _maxrss_mib():
    # Linux reports ru_maxrss in KiB (macOS in bytes).
    scale = 1.0 / (1024 * 1024) if sys.platform == "darwin" else 1.0 / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _proc_status_mib(field):
    """VmRSS / VmHWM of this process from /proc/self/status in MiB (None where unavailable)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _reset_peak_rss():
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS (Linux >= 4.0); False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def child(args):
    t_proc = time.perf_counter()
    import torch

    torch.set_num_threads(args.threads)
    from harmonic_seg import HarmonicSegmenter, Tiling

    seg = HarmonicSegmenter.load(args.model, device=args.device)
    with np.load(args.input) as z:
        image = z["image"]
    foreground = image > 0
    module = seg.module_
    rf = int(getattr(module, "receptive_field", 0))
    info = {
        "run": args.child,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "receptive_field": rf,
        "size_multiple": int(getattr(module, "size_multiple", 1)),
        "maxrss_after_load_mib": _maxrss_mib(),
        "rss_after_load_mib": _proc_status_mib("VmRSS"),
    }
    if args.child != "baseline":
        if args.child == "untiled":
            params = dict(size=None, overlap=None)
        elif args.child == "tiled":
            params = dict(size=args.tile_size, overlap=None)
        else:
            params = dict(size=args.tile_size, overlap=args.small_overlap)
        seg.set_params(tiling=Tiling(**params), num_threads=args.threads)
        overlap = params["overlap"] if params["overlap"] is not None else 2 * (rf // 2)
        if args.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        # ru_maxrss also holds the transient peak of importing torch and loading the model; to see the
        # prediction's own peak, reset the kernel's high-water mark (VmHWM) to the current RSS first.
        info["rss_before_predict_mib"] = _proc_status_mib("VmRSS")
        hwm_reset = _reset_peak_rss()
        t0 = time.perf_counter()
        ((embedding, fg_prob),) = seg.predict_embeddings([image])
        t1 = time.perf_counter()
        # The clustering step of seg.predict(X, foreground=[foreground]), on the embedding above.
        (labels,) = seg.predict_from_embeddings([(embedding, fg_prob)], [foreground])
        t2 = time.perf_counter()
        info.update(
            tile_size=params["size"],
            overlap=None if params["size"] is None else int(overlap),
            embed_s=t1 - t0,
            cluster_s=t2 - t1,
            n_instances=int(np.unique(labels[labels > 0]).size),
            peak_rss_mib=_maxrss_mib(),  # before writing the results
            predict_peak_rss_mib=_proc_status_mib("VmHWM") if hwm_reset else None,
        )
        if info["predict_peak_rss_mib"] is not None and info["rss_before_predict_mib"] is not None:
            info["predict_extra_mib"] = info["predict_peak_rss_mib"] - info["rss_before_predict_mib"]
        if args.device.startswith("cuda"):
            info["cuda_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
        np.savez(args.result, embedding=embedding, fg_prob=fg_prob, labels=labels)
    else:
        info["peak_rss_mib"] = _maxrss_mib()
    info["child_s"] = time.perf_counter() - t_proc
    print("RESULT " + json.dumps(info), flush=True)


def run_child(name, args, input_path, result_path):
    cmd = [
        sys.executable, str(Path(__file__).resolve()), "--child", name, "--model", str(args.model),
        "--input", str(input_path), "--result", str(result_path), "--tile-size", str(args.tile_size),
        "--small-overlap", str(args.small_overlap), "--threads", str(args.threads), "--device", args.device,
    ]
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(args.threads)
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.timeout, cwd=str(ROOT))
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(f"child {name!r} failed (exit {res.returncode}):\n{res.stderr[-4000:]}")
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("RESULT ")]
    if not lines:
        raise RuntimeError(f"child {name!r} printed no result:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
    info = json.loads(lines[-1][len("RESULT "):])
    info["process_wall_s"] = wall
    return info


# --------------------------------------------------------------------------
# comparison
# --------------------------------------------------------------------------
def seam_distance(n, tile_size, overlap, multiple):
    """Distance (pixels) of every row/column index to the nearest tile seam (inf without seams)."""
    from harmonic_seg.nn.inference import tile_starts

    starts, ends = tile_starts(n, int(tile_size), int(overlap), int(multiple))
    seams = [(ends[i] + starts[i + 1]) // 2 for i in range(len(starts) - 1)]
    idx = np.arange(n)
    if not seams:
        return np.full(n, np.inf), seams, len(starts)
    # A seam at s lies between pixels s - 1 and s: distance of pixel i is i - s (i >= s) or s - 1 - i.
    s = np.asarray(seams)[:, None]
    d = np.where(idx[None, :] >= s, idx[None, :] - s, s - 1 - idx[None, :]).min(axis=0)
    return d.astype(float), seams, len(starts)


def compare(ref, other, info, foreground):
    from sklearn.metrics import adjusted_rand_score

    h, w = ref["fg_prob"].shape
    margin = info["receptive_field"] // 2
    dy, seams_y, ny = seam_distance(h, info["tile_size"], info["overlap"], info["size_multiple"])
    dx, seams_x, nx = seam_distance(w, info["tile_size"], info["overlap"], info["size_multiple"])
    diff = np.abs(other["embedding"] - ref["embedding"]).max(axis=0)
    interior = (dy[:, None] >= margin) & (dx[None, :] >= margin)
    near = np.minimum(dy[:, None], dx[None, :])
    la, lb = ref["labels"], other["labels"]
    identical = bool(np.array_equal(la, lb))
    ari = 1.0 if identical else float(adjusted_rand_score(la[foreground], lb[foreground]))
    return {
        "n_tiles": int(ny * nx),
        "seams_y": [int(s) for s in seams_y],
        "seams_x": [int(s) for s in seams_x],
        "interior_margin_px": int(margin),
        "interior_fraction": float(interior.mean()),
        "max_abs_embedding_diff": float(diff.max()),
        "max_abs_embedding_diff_foreground": float(diff[foreground].max()) if foreground.any() else 0.0,
        "max_abs_embedding_diff_interior": float(diff[interior].max()) if interior.any() else None,
        "mean_abs_embedding_diff": float(np.abs(other["embedding"] - ref["embedding"]).mean()),
        "fraction_pixels_diff_gt_1e-3": float((diff > 1e-3).mean()),
        "max_diff_distance_to_seam_px": float(near.ravel()[diff.argmax()]) if diff.max() > 0 else None,
        "max_abs_fg_prob_diff": float(np.abs(other["fg_prob"] - ref["fg_prob"]).max()),
        "labels_identical": identical,
        "ari_foreground": ari,
        "changed_label_pixels": int((la != lb).sum()) if not identical else 0,
    }


def machine_info():
    from _common import machine

    info = machine()
    try:
        info["affinity_cores"] = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        pass
    try:
        info["loadavg_at_start"] = list(os.getloadavg())
    except OSError:  # pragma: no cover
        pass
    try:
        with open("/proc/meminfo") as f:
            info["mem_total_gib"] = round(int(f.readline().split()[1]) / 2**20, 1)
    except OSError:  # pragma: no cover
        pass
    info["nice"] = os.nice(0)
    return info


def _fmt(v, spec=".2e"):
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return format(v, spec)
    return str(v)


def markdown(rows, baseline):
    head = (
        "| run | tile / overlap | tiles | max abs emb diff (all) | (foreground) | (>= rf/2 from seams) "
        "| max fg-prob diff | labels identical | ARI (fg) | instances | embed s | cluster s | process s "
        "| peak RSS MiB | peak - baseline MiB | prediction peak - RSS before MiB |"
    )
    lines = [head, "|" + "|".join(["---"] * 16) + "|"]
    for r in rows:
        c = r.get("comparison") or {}
        tile = "none (whole image)" if r["tile_size"] is None else f"{r['tile_size']} / {r['overlap']}"
        lines.append(
            "| "
            + " | ".join(
                [
                    r["run"],
                    tile,
                    str(c.get("n_tiles", 1)),
                    _fmt(c.get("max_abs_embedding_diff")) if c else "reference",
                    _fmt(c.get("max_abs_embedding_diff_foreground")) if c else "—",
                    _fmt(c.get("max_abs_embedding_diff_interior")) if c else "—",
                    _fmt(c.get("max_abs_fg_prob_diff")) if c else "—",
                    _fmt(c.get("labels_identical")) if c else "—",
                    _fmt(c.get("ari_foreground"), ".5f") if c else "—",
                    str(r["n_instances"]),
                    _fmt(r["embed_s"], ".1f"),
                    _fmt(r["cluster_s"], ".1f"),
                    _fmt(r["process_wall_s"], ".1f"),
                    _fmt(r["peak_rss_mib"], ".0f"),
                    _fmt(r["peak_rss_mib"] - baseline["peak_rss_mib"], ".0f"),
                    _fmt(r.get("predict_extra_mib"), ".0f"),
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="folder written by HarmonicSegmenter.save")
    p.add_argument("--size", type=int, default=2048, help="side of the square test image")
    p.add_argument("--tile-size", type=int, default=512)
    p.add_argument("--small-overlap", type=int, default=64, help="tile_overlap of the 'too small' run")
    p.add_argument("--threads", type=int, default=1, help="torch threads of each child (default 1: shared machine)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per child")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--keep", type=Path, default=None, help="keep the input and result .npz files in this folder")
    # child-process arguments (internal)
    p.add_argument("--child", choices=RUN_ORDER, help=argparse.SUPPRESS)
    p.add_argument("--input", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args)

    if not (args.model / "config.json").is_file():
        raise SystemExit(f"no trained model at {args.model} (config.json missing); train one first "
                         "(benchmarks/train_embedding.py) or pass --model.")
    mach = machine_info()
    image, wells, (rows_, cols_, h, w) = build_input(args.size)
    print(f"input: {args.size}x{args.size} crop of a {rows_}x{cols_} (rows x cols) mosaic of {h}x{w} BBBC010 "
          f"test foreground masks {wells}; foreground fraction {image.mean():.3f}", flush=True)

    with tempfile.TemporaryDirectory(prefix="bench_tiling_") as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        input_path = work / "input.npz"
        np.savez(input_path, image=image)
        infos = {}
        for name in RUN_ORDER:
            print(f"running {name} ...", flush=True)
            infos[name] = run_child(name, args, input_path, work / f"{name}.npz")
            print("  " + json.dumps({k: v for k, v in infos[name].items() if k not in ("seams",)}), flush=True)
        foreground = image > 0
        with np.load(work / "untiled.npz") as z:
            ref = {k: z[k] for k in z.files}
        rows = []
        for name in RUN_ORDER[1:]:
            row = dict(infos[name])
            if name != "untiled":
                with np.load(work / f"{name}.npz") as z:
                    other = {k: z[k] for k in z.files}
                row["comparison"] = compare(ref, other, row, foreground)
                del other
            rows.append(row)

    base = infos["baseline"]
    table = markdown(rows, base)
    note = (
        f"Children ran one at a time with torch.set_num_threads({args.threads}) (OMP_NUM_THREADS={args.threads}) "
        f"on device {args.device}, niceness {mach['nice']}, to be gentle on a shared machine "
        f"(load average at start {mach.get('loadavg_at_start')}); wall times are indicative only. "
        f"Peak RSS = ru_maxrss of each child; baseline child (imports + model + input only): "
        f"{base['peak_rss_mib']:.0f} MiB (RSS after loading {base['rss_after_load_mib']:.0f} MiB: importing "
        "torch and loading leave a transient peak that a small prediction may stay under, so 'peak - baseline' "
        "can read 0). 'prediction peak - RSS before' = VmHWM after prediction (high-water mark reset through "
        "/proc/self/clear_refs just before it) minus VmRSS just before it: the memory the prediction itself "
        "needed (embedding, clustering, outputs). 'rf/2 from seams' = pixels at least receptive_field//2 = "
        f"{base['receptive_field'] // 2} px from every tile seam."
    )
    print()
    print(f"Machine: {mach.get('cpu', mach.get('processor'))}, {mach['cpu_count']} cores "
          f"({mach.get('affinity_cores')} usable), {mach.get('mem_total_gib')} GiB, torch {base['torch']} "
          f"({base['torch_threads']} thread(s) per child), Python {mach['python']}, {mach['platform']}")
    print()
    print(table)
    print()
    print(note)
    payload = {
        "machine": mach,
        "settings": {
            "model": str(args.model),
            "size": args.size,
            "tile_size": args.tile_size,
            "small_overlap": args.small_overlap,
            "threads": args.threads,
            "device": args.device,
            "input": f"{args.size}x{args.size} crop of a {rows_}x{cols_} (rows x cols) mosaic of {h}x{w} "
                     "BBBC010 test-split binary foreground masks (input='mask'); foreground given = input > 0",
            "wells": wells,
            "foreground_fraction": float(image.mean()),
        },
        "baseline": base,
        "runs": rows,
        "note": note,
        "markdown": table,
    }
    from _common import write_json

    write_json(args.out, payload)
    print(f"\nwritten {args.out}")


if __name__ == "__main__":
    main()
