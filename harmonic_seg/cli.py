"""Command line: ``harmonic-seg {demo,guides,fit,predict,evaluate}``.

Every sub-command prints a one-line message and exits non-zero on bad paths or
formats; ``--help`` documents each.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

__all__ = ["main"]


class CLIError(Exception):
    """A user error: reported as one line, exit status 2."""


def _label_maps(spec):
    """Label maps from a folder or a glob pattern of png/tif files."""
    from .io import read_label_map

    p = Path(spec)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in (".png", ".tif", ".tiff"))
    else:
        files = sorted(Path(f) for f in __import__("glob").glob(spec))
    if not files:
        raise CLIError(f"no .png/.tif label maps found at {spec!r}")
    return [read_label_map(f) for f in files], files


def cmd_guides(args):
    """Fit guide functions on label maps and report how well they separate instances."""
    from .fitter import GuideFunctionFitter
    from .io import load_nuclei_sample

    if args.labels is None:
        labels, names = load_nuclei_sample(tile=128).labels, ["embedded nuclei sample"]
    else:
        labels, names = _label_maps(args.labels)
    fitter = GuideFunctionFitter(
        n_guides=args.n_guides, margin=args.margin, random_state=args.seed, verbose=args.verbose
    ).fit(labels)
    report = {
        "label_maps": len(labels),
        "n_guides": fitter.n_guides_,
        "margin": args.margin,
        "separated_pair_fraction": fitter.separation_,
        "iterations": fitter.n_iter_,
        "converged": fitter.converged_,
        "reference_shape": list(fitter.reference_shape_),
        "guides": fitter.guides_.to_dict(),
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        src = names[0] if args.labels is None else args.labels
        print(f"{len(labels)} label maps from {src}")
        print(
            f"N = {fitter.n_guides_} guides, eps = {args.margin}: {fitter.separation_:.4f} of same-image "
            f"instance pairs separated ({fitter.n_iter_} iterations, converged: {fitter.converged_})"
        )
    if args.out:
        out = Path(args.out)
        if out.exists() and not args.overwrite:
            raise CLIError(f"{out} exists; pass --overwrite to replace it")
        out.write_text(json.dumps(report, indent=2))
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="harmonic-seg",
        description="Instance segmentation of biological images with harmonic embeddings.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more output (repeatable)")
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("guides", help=cmd_guides.__doc__, description=cmd_guides.__doc__)
    g.add_argument("labels", nargs="?", default=None, help="folder or glob of label maps (default: embedded sample)")
    g.add_argument("--n-guides", type=int, default=12)
    g.add_argument("--margin", type=float, default=0.5)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--json", action="store_true", help="print a JSON report")
    g.add_argument("--out", help="write the JSON report (with the guides) to this file")
    g.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    g.set_defaults(func=cmd_guides)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    # The command line owns its output: a handler on the package's logger,
    # never on the root logger.
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    pkg_logger = logging.getLogger("harmonic_seg")
    pkg_logger.addHandler(handler)
    pkg_logger.setLevel(logging.WARNING if args.verbose == 0 else (logging.INFO if args.verbose == 1 else logging.DEBUG))
    try:
        return args.func(args)
    except (CLIError, FileNotFoundError, FileExistsError, ValueError, TypeError) as exc:
        print(f"harmonic-seg {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
