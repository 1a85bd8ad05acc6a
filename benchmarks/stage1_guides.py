"""Stage 1 on real data: guide search with N = 12, eps = 0.5 on the train splits.

For CVPPP A1, BBBC010 and DIC-HeLa (train splits of ../shared/data/splits.json)
this fits GuideFunctionFitter, times the fit on this machine, and reports the
exact fraction of same-image instance pairs separated by at least eps (L1),
beside that of the search's own random initialisation, for the library's
default initial frequency range ("auto": periods of at least four median
instance diameters) and for the paper's (0, 50) radians per image side.

    python benchmarks/stage1_guides.py [--data ../shared/data] [--out benchmarks/out/stage1.json]
"""

import argparse
import time

from _common import machine, write_json

from harmonic_seg import GuideFunctionFitter
from harmonic_seg.guides import fit_guides, separation_score
from harmonic_seg.io import load_bbbc010, load_ctc, load_cvppp


def load(name, root):
    if name == "cvppp_a1":
        return load_cvppp(root / "cvppp_a1" if root else None, split="train").labels
    if name == "bbbc010":
        return load_bbbc010(root / "bbbc010" if root else None, split="train").labels
    return load_ctc(root / "ctc_dic_c2dh_hela" if root else None, split="train").labels


def measure(name, labels, init_range, args):
    """Fit, time and score one data set with one initial frequency range."""
    fitter = GuideFunctionFitter(n_guides=args.n_guides, margin=args.margin, init_range=init_range, random_state=args.seed)
    t0 = time.perf_counter()
    fitter.fit(labels)
    wall = time.perf_counter() - t0
    # The search's starting point: the same call with no iteration.
    init = fit_guides(labels, args.n_guides, args.margin, init_range=init_range, max_iter=0, random_state=args.seed)
    return dict(
        dataset=name,
        init_range=init_range,
        init_bound=[float(v) for v in init.init_bound],
        images=len(labels),
        pairs=sum(int(k * (k - 1) // 2) for k in (len(set(lab[lab > 0].ravel().tolist())) for lab in labels)),
        separated=fitter.separation_,
        separated_at_init=separation_score(labels, init.guides, args.margin),
        iterations=fitter.n_iter_,
        converged=fitter.converged_,
        fit_seconds=wall,
    )


def main(argv=None):
    from pathlib import Path

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=None, help="data root (default: ../shared/data)")
    p.add_argument("--n-guides", type=int, default=12)
    p.add_argument("--margin", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "out" / "stage1.json"))
    args = p.parse_args(argv)

    rows = []
    for name in ["cvppp_a1", "bbbc010", "ctc_dic_c2dh_hela"]:
        labels = load(name, args.data)
        for init_range in ["auto", (0.0, 50.0)]:
            rows.append(measure(name, labels, init_range, args))
            print(f"{name}: {rows[-1]}", flush=True)

    info = machine()
    print(f"\nN = {args.n_guides}, eps = {args.margin}, random_state = {args.seed}; {info.get('cpu')}, "
          f"{info['cpu_count']} cores, {info['date']}, harmonic_seg {info['harmonic_seg']}\n")
    print(
        "| data set (train split) | init_range (bound per side: rows, cols) | images | pairs | separated (>= eps) "
        "| at random init | iterations | fit time (s) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        bound = ", ".join(f"{v:.1f}" for v in r["init_bound"])
        print(
            f"| {r['dataset']} | {r['init_range']} ({bound}) | {r['images']} | {r['pairs']} | {r['separated']:.4f} "
            f"| {r['separated_at_init']:.4f} "
            f"| {r['iterations']} | {r['fit_seconds']:.1f} |"
        )
    write_json(args.out, {"machine": info, "n_guides": args.n_guides, "margin": args.margin, "rows": rows})


if __name__ == "__main__":
    main()
