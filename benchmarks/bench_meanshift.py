"""Mean-shift clustering of embeddings: harmonic_seg (torch) vs scikit-learn.

For every test image, an embedding map is built from a real label map
(``embedding_map(labels, guides)``, blurred across instance boundaries with a
Gaussian of sigma 0.7 px and with Gaussian noise of sd 0.05 added), or read
from ``--embeddings FILE.npz`` (network predictions). The foreground pixels'
embeddings are clustered by

* ``sklearn.cluster.MeanShift(bandwidth=eps, bin_seeding=True)`` (once, in a
  subprocess with a time limit), and
* ``harmonic_seg.clustering.mean_shift(points, eps)`` on the CPU (best of
  ``--repeats`` after one warm-up call), with the default subsampling of the
  mode search (``max_points=20000``) and in its exact mode (``max_points=None,
  coarse_to_fine=False``: every point, every seed shifted on the full set, as
  scikit-learn does), plus the whole ``harmonic_seg.clustering.cluster_embeddings`` pipeline
  and, with ``--device cuda`` when available, the GPU.

Reported: absolute times, the speed ratio, the adjusted Rand index (ARI)
between the two labelings and against the ground truth (foreground pixels),
and the machine. A markdown table is printed, JSON written to ``--out``.

Usage::

    python benchmarks/bench_meanshift.py                     # real label maps
    python benchmarks/bench_meanshift.py --embeddings pred.npz --device cuda

An ``.npz`` file holds ``embedding`` (N, H, W) and optionally ``labels``
(H, W ground truth), ``foreground`` (H, W bool) or ``fg_prob`` (H, W, >0.5 =
foreground); without any of the three, every pixel is foreground.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

DATA = Path(os.environ.get("HARMONIC_SEG_DATA", ROOT.parent / "shared" / "data"))


# --------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------
def _guides(labels, n_guides, seed):
    """Fitted guides when the fitter is available, else random ones."""
    from harmonic_seg.guides import random_guides

    try:  # pragma: no cover - depends on the teammate's module
        from harmonic_seg.guides import fit_guides

        result = fit_guides([labels], n_guides=n_guides, random_state=seed)
        return getattr(result, "guides", result), "fitted"
    except Exception:  # noqa: BLE001 - any failure: fall back to random guides
        return random_guides(n_guides, labels.shape, random_state=seed), "random"


def synthetic_embedding(labels, *, n_guides=12, noise=0.05, blur=0.7, seed=0):
    """Noisy, boundary-blurred target embedding of a label map."""
    from scipy import ndimage as ndi

    from harmonic_seg.guides import embedding_map

    guides, kind = _guides(labels, n_guides, seed)
    emb = embedding_map(labels, guides)
    if blur > 0:
        emb = ndi.gaussian_filter(emb, (0, blur, blur))
    emb = emb + np.random.default_rng(seed).normal(0.0, noise, emb.shape).astype(np.float32)
    return emb.astype(np.float32), kind


def _tile(label_maps):
    """2x2 tiling of four label maps with distinct ids."""
    out, offset = [], 0
    for lab in label_maps:
        lab = lab.astype(np.int64)
        out.append(np.where(lab > 0, lab + offset, 0))
        offset += int(lab.max())
    return np.block([[out[0], out[1]], [out[2], out[3]]])


def real_cases(noise, seed):
    """(name, embedding, foreground, ground truth, guide kind) from the shared data."""
    from harmonic_seg.io.imread import read_label_map

    cases = []
    ctc = sorted((DATA / "ctc_dic_c2dh_hela" / "02_GT" / "SEG").glob("man_seg*.tif"))
    nuclei = DATA / "stardist_nuclei2d" / "mask2d.tif"
    plants = sorted((DATA / "cvppp_a1").glob("plant*_label.png"))
    sources = []
    if ctc:
        sources.append(("ctc_hela_512x512", read_label_map(ctc[0])))
    if nuclei.exists():
        sources.append(("dsb_nuclei_512x512", read_label_map(nuclei)))
    if plants:
        sources.append(("cvppp_plant_530x500", read_label_map(plants[0])))
    if len(ctc) >= 4:
        sources.append(("ctc_hela_tiled_1024x1024", _tile([read_label_map(p) for p in ctc[:4]])))
    if not sources:  # no shared data: synthetic Voronoi cells
        rng = np.random.default_rng(seed)
        for size in (512, 1024):
            pts = rng.uniform(0, size, (size // 16, 2))
            from scipy.spatial import cKDTree

            yy, xx = np.mgrid[:size, :size]
            d, idx = cKDTree(pts).query(np.stack([yy.ravel(), xx.ravel()], 1))
            lab = (idx + 1).reshape(size, size)
            lab[d.reshape(size, size) > 20] = 0
            sources.append((f"synthetic_{size}x{size}", lab))
    for name, lab in sources:
        emb, kind = synthetic_embedding(lab, noise=noise, seed=seed)
        cases.append((name, emb, lab > 0, lab, kind))
    return cases


def npz_cases(paths):
    cases = []
    for p in paths:
        with np.load(p) as z:
            emb = np.asarray(z["embedding"], dtype=np.float32)
            gt = np.asarray(z["labels"]) if "labels" in z else None
            if "foreground" in z:
                fg = np.asarray(z["foreground"]).astype(bool)
            elif "fg_prob" in z:
                fg = np.asarray(z["fg_prob"]) > 0.5
            elif gt is not None:
                fg = gt > 0
            else:
                fg = np.ones(emb.shape[1:], dtype=bool)
        cases.append((Path(p).stem, emb, fg, gt, "file"))
    return cases


# --------------------------------------------------------------------------
# timing
# --------------------------------------------------------------------------
def _sklearn_worker(points, bandwidth, queue):
    from sklearn.cluster import MeanShift

    t0 = time.perf_counter()
    ms = MeanShift(bandwidth=bandwidth, bin_seeding=True).fit(points)
    queue.put((time.perf_counter() - t0, ms.labels_.astype(np.int32), len(ms.cluster_centers_)))


def run_sklearn(points, bandwidth, timeout, cache_dir=None, key=""):
    """Time scikit-learn in a fresh process; (seconds, labels, K) or (None, None, None) on timeout.

    With ``cache_dir``, a result computed before for the same points (checked
    by a hash of the points) is reused: scikit-learn is slow and deterministic.
    """
    cache = None
    if cache_dir is not None:
        import hashlib

        digest = hashlib.sha1(np.ascontiguousarray(points).tobytes()).hexdigest()[:16]
        cache = Path(cache_dir) / f"{key}_{bandwidth}_{digest}.npz"
        if cache.exists():
            with np.load(cache) as z:
                return float(z["seconds"]), z["labels"], int(z["k"])
    result = _run_sklearn(points, bandwidth, timeout)
    if cache is not None and result[0] is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, seconds=result[0], labels=result[1], k=result[2])
    return result


def _run_sklearn(points, bandwidth, timeout):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_sklearn_worker, args=(points, bandwidth, queue))
    proc.start()
    try:
        return queue.get(timeout=timeout)
    except Exception:  # noqa: BLE001 - queue.Empty on timeout
        return None, None, None
    finally:
        if proc.is_alive():
            proc.terminate()
        proc.join()


def best_of(fn, repeats, sync=None):
    fn()  # warm-up
    if sync:
        sync()
    times = []
    out = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        if sync:
            sync()
        times.append(time.perf_counter() - t0)
    return min(times), out


def machine_info():
    import sklearn
    import torch

    try:
        from _common import machine

        info = machine()
    except Exception:  # noqa: BLE001
        info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine()}
    info.update(
        processor=platform.processor() or platform.machine(),
        cpu_count=os.cpu_count(),
        cpus_usable=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        torch=torch.__version__,
        torch_threads=torch.get_num_threads(),
        sklearn=sklearn.__version__,
        load_average=os.getloadavg() if hasattr(os, "getloadavg") else None,
        cuda=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    )
    return info


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--embeddings", nargs="*", default=None, help=".npz files with predicted embeddings")
    parser.add_argument("--bandwidth", type=float, default=0.5, help="mean-shift bandwidth eps (default 0.5)")
    parser.add_argument("--noise", type=float, default=0.05, help="sd of the noise added to synthetic embeddings")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats of our implementation (best is kept)")
    parser.add_argument("--device", default="cpu", help="'cpu' or 'cuda' (cuda adds GPU timings when available)")
    parser.add_argument("--sklearn-timeout", type=float, default=1800.0, help="seconds allowed to scikit-learn per image")
    parser.add_argument("--no-sklearn", action="store_true", help="skip scikit-learn")
    parser.add_argument("--sklearn-cache", default=str(ROOT / "benchmarks" / "out" / "sklearn_cache"),
                        help="folder caching scikit-learn results (its time included); '' to disable")
    parser.add_argument("--only", default=None, help="substring: run only the cases whose name contains it")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads for our runs (default: torch's choice). On a shared, "
                             "loaded machine 1 thread avoids OpenMP oversubscription stalls")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "meanshift.json"))
    args = parser.parse_args(argv)

    import torch
    from sklearn.metrics import adjusted_rand_score as ari

    from harmonic_seg.clustering import cluster_embeddings, mean_shift

    if args.threads:
        torch.set_num_threads(args.threads)
    info = machine_info()
    cases = npz_cases(args.embeddings) if args.embeddings else real_cases(args.noise, args.seed)
    if args.only:
        cases = [c for c in cases if args.only in c[0]]
    use_cuda = args.device.startswith("cuda") and torch.cuda.is_available()
    if args.device.startswith("cuda") and not use_cuda:
        print("CUDA requested but not available: GPU timings skipped", file=sys.stderr)
    eps = args.bandwidth
    rows = []
    for name, emb, fg, gt, kind in cases:
        points = np.ascontiguousarray(emb[:, fg].T)
        row = {"case": name, "shape": list(emb.shape), "guides": kind, "n_points": int(points.shape[0])}
        print(f"[{name}] {points.shape[0]} foreground points, {emb.shape[0]} dims", file=sys.stderr, flush=True)
        t_ours, (c_ours, l_ours) = best_of(lambda: mean_shift(points, eps), args.repeats)
        t_bm, (c_bm, l_bm) = best_of(lambda: mean_shift(points, eps, seeds="bin_mean"), args.repeats)
        t0 = time.perf_counter()  # once: slow for large images
        c_all, l_all = mean_shift(points, eps, max_points=None, coarse_to_fine=False)
        t_all = time.perf_counter() - t0
        t_pipe, (lab_map, scores) = best_of(lambda: cluster_embeddings(emb, fg, eps, min_size=0), args.repeats)
        lab_l1, _ = cluster_embeddings(emb, fg, eps, metric="l1", min_size=0)
        row.update(
            ours_s=t_ours, ours_k=len(c_ours), ours_bin_mean_s=t_bm, ours_bin_mean_k=len(c_bm),
            ours_exact_s=t_all, ours_exact_k=len(c_all),
            pipeline_s=t_pipe, pipeline_k=int(lab_map.max()),
            ari_default_vs_exact=float(ari(l_all, l_ours)), ari_bin_mean_vs_bin=float(ari(l_ours, l_bm)),
        )
        if gt is not None:
            g = gt[fg]
            row.update(
                ari_ours_gt=float(ari(g, l_ours)), ari_ours_exact_gt=float(ari(g, l_all)),
                ari_bin_mean_gt=float(ari(g, l_bm)), ari_pipeline_gt=float(ari(g, lab_map[fg])),
                ari_pipeline_l1_gt=float(ari(g, lab_l1[fg])), gt_k=int(len(np.unique(g))),
            )
        if use_cuda:
            emb_gpu = torch.as_tensor(emb, device="cuda")
            pts_gpu = torch.as_tensor(points, device="cuda")
            t_gpu, (c_gpu, l_gpu) = best_of(lambda: mean_shift(pts_gpu, eps), args.repeats, torch.cuda.synchronize)
            t_gpu_pipe, _ = best_of(lambda: cluster_embeddings(emb_gpu, fg, eps, min_size=0), args.repeats,
                                    torch.cuda.synchronize)
            row.update(cuda_s=t_gpu, cuda_pipeline_s=t_gpu_pipe, ari_cuda_cpu=float(ari(l_ours, l_gpu)))
        if not args.no_sklearn:
            print(f"[{name}] scikit-learn ...", file=sys.stderr, flush=True)
            t_sk, l_sk, k_sk = run_sklearn(points, eps, args.sklearn_timeout, args.sklearn_cache or None, name)
            row.update(sklearn_s=t_sk, sklearn_k=k_sk, sklearn_cached=bool(args.sklearn_cache))
            if t_sk is not None:
                row.update(
                    speedup=t_sk / t_ours, speedup_bin_mean=t_sk / t_bm, speedup_exact=t_sk / t_all,
                    ari_ours_sklearn=float(ari(l_sk, l_ours)), ari_bin_mean_sklearn=float(ari(l_sk, l_bm)),
                    ari_exact_sklearn=float(ari(l_sk, l_all)),
                )
                if gt is not None:
                    row["ari_sklearn_gt"] = float(ari(gt[fg], l_sk))
            else:
                row["sklearn_timeout_s"] = args.sklearn_timeout
        rows.append(row)
        print(f"[{name}] {row}", file=sys.stderr, flush=True)

    payload = {"benchmark": "meanshift", "bandwidth": eps, "noise": args.noise, "machine": info, "rows": rows}
    try:
        from _common import write_json

        path = write_json(args.out, payload)
    except ImportError:  # pragma: no cover
        import json

        path = Path(args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(payload, indent=2, default=float))
    print(markdown(payload))
    print(f"\nJSON written to {path}")


def _fmt(v, unit=""):
    if v is None:
        return "n/a"
    if unit == "ms":
        return f"{1e3 * v:.1f}"
    if unit == "s":
        return f"{v:.2f}"
    if unit == "x":
        return f"{v:.0f}x"
    return f"{v:.4f}"


def markdown(payload):
    m = payload["machine"]
    lines = [
        f"Machine: {m.get('cpu', m.get('processor'))} ({m.get('processor')}), {m.get('cpu_count')} CPUs "
        f"({m.get('cpus_usable')} usable), torch {m.get('torch')} ({m.get('torch_threads')} threads), "
        f"scikit-learn {m.get('sklearn')}, load average {m.get('load_average')}, CUDA: {m.get('cuda')}",
        f"bandwidth eps = {payload['bandwidth']}, flat L2 kernel, bin seeding; synthetic noise sd {payload['noise']}",
        "",
        "ours = harmonic_seg.clustering.mean_shift, max_points=20000, coarse-to-fine; exact = max_points=None, "
        "coarse_to_fine=False, 'bin' seeds; 'bin' = scikit-learn's "
        "seeds (grid points), 'bin_mean' = centroids of the grid cells; pipeline = cluster_embeddings (bin_mean "
        "+ post-processing + scores). Times: best of the repeats (ours), one run (scikit-learn, all points).",
        "",
        "| image | fg points | sklearn (s) | ours 'bin' (ms) | speed-up | ARI vs sklearn | ours 'bin_mean' (ms) "
        "| speed-up | ARI vs sklearn | ours exact (s) | speed-up | ARI vs sklearn | pipeline (ms) | CUDA (ms) "
        "| ARI GT: sklearn / ours / pipeline / pipeline L1 | K sklearn/ours/GT |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in payload["rows"]:
        sk = _fmt(r.get("sklearn_s"), "s") if r.get("sklearn_s") is not None else (
            f"> {r['sklearn_timeout_s']:.0f}" if "sklearn_timeout_s" in r else "skipped")
        gts = " / ".join(_fmt(r.get(k), "") for k in ("ari_sklearn_gt", "ari_ours_gt", "ari_pipeline_gt",
                                                      "ari_pipeline_l1_gt"))
        lines.append(
            f"| {r['case']} | {r['n_points']} | {sk} | {_fmt(r['ours_s'], 'ms')} | {_fmt(r.get('speedup'), 'x')} "
            f"| {_fmt(r.get('ari_ours_sklearn'))} | {_fmt(r['ours_bin_mean_s'], 'ms')} "
            f"| {_fmt(r.get('speedup_bin_mean'), 'x')} | {_fmt(r.get('ari_bin_mean_sklearn'))} "
            f"| {_fmt(r['ours_exact_s'], 's')} | {_fmt(r.get('speedup_exact'), 'x')} "
            f"| {_fmt(r.get('ari_exact_sklearn'))} "
            f"| {_fmt(r['pipeline_s'], 'ms')} | {_fmt(r.get('cuda_s'), 'ms')} | {gts} "
            f"| {r.get('sklearn_k')}/{r['ours_k']}/{r.get('gt_k')} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
