"""Stage 1 on real data: guide search with N = 12, eps = 0.5 on the train splits.

For CVPPP A1, BBBC010 and DIC-HeLa (train splits of ../shared/data/splits.json)
this fits GuideFunctionFitter, times the fit on this machine, and reports the
exact fraction of same-image instance pairs separated by at least eps (L1),
beside that of the search's own random initialisation.

    python benchmarks/stage1_guides.py [--data ../shared/data] [--out benchmarks/out/stage1.json]
"""

import argparse
import time

from _common import machine, write_json

from harmonic_seg import GuideFunctionFitter
from harmonic_seg.guide_fitting import reference_shape, separation_score
from harmonic_seg.guides import random_guides
from harmonic_seg.io import load_bbbc010, load_ctc, load_cvppp


def load(name, root):
    if name == "cvppp_a1":
        return load_cvppp(root / "cvppp_a1" if root else None, split="train").labels
    if name == "bbbc010":
        return load_bbbc010(root / "bbbc010" if root else None, split="train").labels
    return load_ctc(root / "ctc_dic_c2dh_hela" if root else None, split="train").labels


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
        fitter = GuideFunctionFitter(n_guides=args.n_guides, margin=args.margin, random_state=args.seed)
        t0 = time.perf_counter()
        fitter.fit(labels)
        wall = time.perf_counter() - t0
        init = random_guides(args.n_guides, reference_shape(labels), kind="random", random_state=args.seed)
        rows.append(
            dict(
                dataset=name,
                images=len(labels),
                pairs=sum(int(k * (k - 1) // 2) for k in (len(set(lab[lab > 0].ravel().tolist())) for lab in labels)),
                separated=fitter.separation_,
                separated_at_init=separation_score(labels, init, args.margin),
                iterations=fitter.n_iter_,
                converged=fitter.converged_,
                fit_seconds=wall,
            )
        )
        print(f"{name}: {rows[-1]}", flush=True)

    info = machine()
    print(f"\nN = {args.n_guides}, eps = {args.margin}, random_state = {args.seed}; {info.get('cpu')}, "
          f"{info['cpu_count']} cores, {info['date']}, harmonic_seg {info['harmonic_seg']}\n")
    print("| data set (train split) | images | pairs | separated (>= eps) | at random init | iterations | fit time (s) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['dataset']} | {r['images']} | {r['pairs']} | {r['separated']:.4f} | {r['separated_at_init']:.4f} "
            f"| {r['iterations']} | {r['fit_seconds']:.1f} |"
        )
    write_json(args.out, {"machine": info, "n_guides": args.n_guides, "margin": args.margin, "rows": rows})


if __name__ == "__main__":
    main()
