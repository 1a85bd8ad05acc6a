"""Stage 1 on its own: fit guide functions that separate the nuclei of the embedded sample.

What it shows
-------------
* ``GuideFunctionFitter`` (numpy only, no torch) fitted on the label maps of
  12 of the 16 128x128 tiles of the nuclei sample shipped with the package:
  its ``separation_`` (the fraction of same-image nucleus pairs whose
  embeddings are at least ``margin`` apart in L1), the number of iterations
  and the time of the search, and the separation on the 4 held-out tiles
  (``fitter.score``).
* The same measure for fixed, unfitted guide sets (``strategy="random"``,
  ``"low"``, ``"high"``: random sine waves from the frequency ranges of the
  paper's ablations, and ``"coord"``: plain coordinates), with N = 12 guides
  and with N = 4, where separating the nuclei is harder: what the search buys
  (and where a fixed low-frequency set is already as good).
* A picture (needs matplotlib): the first three fitted guide functions
  (``plot_guides``), one tile's label map, and its *target embedding* -- every
  nucleus painted with the mean of the guide functions over its pixels
  (``fitter.transform``, shown in RGB by ``embedding_to_rgb``) -- for the fitted
  guides and for unfitted high-frequency ones ("high", which separates few
  pairs): separated nuclei get clearly different colours.

Outputs (in ``--out``; existing files are never overwritten, a free name
``-1``, ``-2``, ... is chosen): ``guide_functions.json`` (the separations and
the fitted guides) and ``guide_functions.png``.

Usage::

    python examples/guide_functions.py            # about 20 s on a 2-core CPU
    python examples/guide_functions.py --quick    # tiny search budget (tests)
    python examples/guide_functions.py --out results/
"""

from __future__ import annotations

import sys
import time

from _common import has_matplotlib, make_parser, nuclei_split, output_folder, save_figure, write_json


def parse_args(argv=None):
    parser = make_parser(__doc__, quick_help="tiny budget (for tests): 30 search steps, 1 thread")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    out = output_folder(args.out)
    if args.quick:  # be gentle on shared machines: one BLAS thread
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)

    import numpy as np

    from harmonic_seg import GuideFunctionFitter

    split = nuclei_split()  # 16 tiles of 128x128, 125 nuclei
    data, train, test = split.data, split.train, split.test
    y_train, y_test = split.y_train, split.y_test
    max_iter = 30 if args.quick else 1000

    # --- the paper's search ---------------------------------------------------
    t0 = time.perf_counter()
    fitter = GuideFunctionFitter(n_guides=12, margin=0.5, max_iter=max_iter, random_state=0).fit(y_train)
    seconds = time.perf_counter() - t0
    print(f"Fitted {fitter.n_guides_} guide functions on {len(train)} tiles in {seconds:.2f} s "
          f"({fitter.n_iter_} iterations, converged: {fitter.converged_}).")
    print(f"  separated pairs (train tiles):    {fitter.separation_:.1%}")
    print(f"  separated pairs (held-out tiles): {fitter.score(y_test):.1%}")
    psi = fitter.guides_.to_paper_units(fitter.reference_shape_)
    print("  frequencies |psi| in radians per tile side:",
          " ".join(f"{v:.1f}" for v in np.sort(np.hypot(psi[:, 0], psi[:, 1]))))
    for w in fitter.fit_warnings_:
        print("  warning:", w)

    # --- fixed guide sets for comparison, at N = 12 and at a harder N = 4 -------
    rows, fitted = [], {}
    for n_guides in (12, 4):
        for strategy in ("optimize", "random", "low", "high", "coord"):
            if strategy == "coord" and n_guides != 12:
                continue  # always 2 coordinates
            if strategy == "optimize" and n_guides == 12:
                f, sec = fitter, seconds
            else:
                t0 = time.perf_counter()
                f = GuideFunctionFitter(n_guides=n_guides, margin=0.5, strategy=strategy, max_iter=max_iter,
                                        random_state=0).fit(y_train)
                sec = time.perf_counter() - t0
            rows.append({"strategy": strategy, "n_guides": f.n_guides_, "train": f.separation_,
                         "test": f.score(y_test), "seconds": sec})
            fitted[strategy, n_guides] = f
    print("\nSeparated same-image pairs at margin 0.5 (L1), train / held-out tiles:")
    print(f"  {'strategy':<10} {'N':>3} {'train':>8} {'held-out':>9} {'seconds':>8}")
    for r in rows:
        print(f"  {r['strategy']:<10} {r['n_guides']:>3} {r['train']:>8.1%} {r['test']:>9.1%} {r['seconds']:>8.2f}")
    print("  (optimize: the paper's search; random/low/high: unfitted sine waves from the ablation\n"
          "   frequency ranges; coord: the centroid (y/H, x/W).)")

    report = {
        "train_tiles": train,
        "test_tiles": test,
        "margin": fitter.margin,
        "separation": rows,
        "n_iter": fitter.n_iter_,
        "converged": bool(fitter.converged_),
        "reference_shape": list(fitter.reference_shape_),
        "guides": fitter.guides_.to_dict(),
    }
    path = write_json(out, "guide_functions.json", report)
    print(f"\nwrote {path}")

    # --- picture ----------------------------------------------------------------
    if not has_matplotlib():
        return 0
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from harmonic_seg.plotting import embedding_to_rgb, label_to_rgb, plot_guides

    k = int(np.argmax([len(np.unique(lab)) for lab in y_train]))  # the most crowded training tile
    lab = y_train[k]
    fig = Figure(figsize=(19.2, 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 6)
    plot_guides(fitter, lab.shape, n=3, ax=list(axes[:3]))
    panels = [
        (label_to_rgb(lab), f"label map ({len(np.unique(lab)) - 1} nuclei)"),
        (embedding_to_rgb(fitter.transform([lab])[0], lab > 0),
         f"target embedding, fitted guides\n(separation {fitter.score([lab]):.0%})"),
        (embedding_to_rgb(fitted["high", 12].transform([lab])[0], lab > 0),
         f"target embedding, 'high' guides\n(separation {fitted['high', 12].score([lab]):.0%})"),
    ]
    for ax, (rgb, title) in zip(axes[3:], panels):
        ax.imshow(rgb, interpolation="nearest")
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"Guide functions fitted on the nuclei sample; tile {data.names[train[k]]}")
    path = save_figure(fig, out, "guide_functions.png")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
