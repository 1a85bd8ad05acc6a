"""Command line: ``harmonic-seg {guides,demo,fit,predict,evaluate}``.

Every sub-command prints a one-line message and exits non-zero on bad paths or
formats; ``--help`` documents each.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections import Counter
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
    from .guides import GuideFunctionFitter
    from .io import load_nuclei_sample

    out = None if args.out is None else _check_out_file(args.out, args.overwrite)  # before any work
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
    if out is not None:
        try:
            out.write_text(json.dumps(report, indent=2))
        except OSError as exc:
            raise CLIError(f"cannot write --out {out}: {exc.strerror or exc}") from None
    return 0


def _check_out_file(path, overwrite):
    """The ``--out`` file of a report, refused before any work when it cannot be written."""
    out = Path(path)
    if not str(path):
        raise CLIError("--out must name a file; got an empty string")
    if out.is_dir():
        raise CLIError(f"--out {out} is a folder; name a file, e.g. {out / 'guides.json'}")
    if out.exists() and not overwrite:
        raise CLIError(f"{out} exists; pass --overwrite to replace it")
    parent = out.absolute().parent
    if not parent.is_dir():
        if parent.exists():
            raise CLIError(f"cannot write --out {out}: {out.parent} is not a folder")
        raise CLIError(f"cannot write --out {out}: the folder {out.parent} does not exist; create it first")
    return out


def _print_table(rows, as_json):
    if as_json:
        print(json.dumps(rows, indent=2, default=float))
        return
    for name, metrics in rows.items():
        if isinstance(metrics, dict):
            print(f"{name}:")
            for k, v in metrics.items():
                print(f"  {k:<26} {v:.4f}" if isinstance(v, float) else f"  {k:<26} {v}")
        else:
            print(f"{name}: {metrics}")


def cmd_demo(args):
    """Train on 16 wells of the embedded BBBC010 worm sample, score 4 held-out wells beside the floor, draw them."""
    from .demo import draw_demo, train_and_score

    report, arrays = train_and_score(epochs=args.epochs, max_time=args.max_time, device=args.device,
                                     save_model=args.save_model, verbose=max(1, args.verbose))
    _print_table(report, args.json)  # the scores first: nothing after this can lose them
    if not args.no_picture:
        try:
            path = draw_demo(arrays, args.out)
        except Exception as exc:  # the picture is optional
            print(f"harmonic-seg demo: warning: no picture ({type(exc).__name__}: {exc})", file=sys.stderr)
        else:
            print(f"picture: {path}", file=sys.stderr if args.json else sys.stdout)
    return 0


def _model_out(path, overwrite):
    """The model folder of ``fit``, refused before training when the model could not be saved there."""
    from ._persistence import check_save_target

    check_save_target(path, overwrite, option="--overwrite")
    return Path(path)


def _training_params(args):
    """HarmonicSegmenter parameters of the training flags of ``fit`` (those a warm start also takes)."""
    params = dict(
        epochs=args.epochs, max_time=args.max_time, loss=args.loss, crop_size=args.crop_size,
        batch_size=args.batch_size, validation_fraction=args.validation_fraction, tune_postprocessing=args.tune,
        num_threads=args.threads, device=args.device, random_state=args.seed, verbose=max(1, args.verbose),
    )
    if args.amp is not None:
        params["amp"] = args.amp
    return params


def cmd_fit(args):
    """Fit a HarmonicSegmenter on images and label maps paired by file name, save it (safe format)."""
    from .guides import GuideFunctionFitter
    from .io import load_folder
    from .options import Network
    from .segmenter import HarmonicSegmenter

    out = _model_out(args.out, args.overwrite)
    if args.warm_start is not None:  # checked before reading the images
        seg = HarmonicSegmenter.load(args.warm_start, device=args.device)
        seg.set_params(warm_start=True, **_training_params(args))
    else:
        seg = HarmonicSegmenter(
            guides=GuideFunctionFitter(n_guides=args.n_guides, margin=args.margin),
            network=Network(depth=args.depth, base_width=args.width), scale=args.scale, **_training_params(args),
        )
    data = load_folder(args.images, args.labels)
    seg.fit(data.images, data.labels)
    seg.save(out, overwrite=args.overwrite)
    budget = "" if seg.time_budget_ is None else f" in {seg.time_budget_['fit_seconds']:.0f} s"
    print(f"fitted on {len(data)} images ({seg.n_epochs_} epochs{budget}, scale {seg.scale_:g}); model saved to {out}")
    return 0


def cmd_predict(args):
    """Segment images with a saved model; write one label map per image (tif or png)."""
    from .distributed._cli import is_zarr
    from .io import read_image, write_label_map
    from .segmenter import HarmonicSegmenter

    if is_zarr(args.images):  # one large image, block by block on a dask cluster, labels written to Zarr
        from .distributed._cli import predict_zarr

        s = predict_zarr(args)
        print(f"{args.images}: {s['n_instances']} instances ({s['shape'][0]}x{s['shape'][1]} in blocks of "
              f"{s['chunks'][0]}x{s['chunks'][1]}, {s['workers']} dask workers) -> {args.out}")
        return 0
    files = _image_files(args.images)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out} exists and is not a folder")
    # every output checked before any prediction: nothing is written when one cannot be
    targets = _label_targets(files, out, args.format)
    existing = [t for t in targets if os.path.lexists(t)]
    folders = [t for t in existing if t.is_dir()]
    if folders:
        raise CLIError(f"{folders[0]} is a folder; it cannot be replaced by a label map")
    if existing and not args.overwrite:
        raise CLIError(f"{len(existing)} output file(s) exist, e.g. {existing[0]}; pass --overwrite to replace them")
    seg = HarmonicSegmenter.load(args.model, device=args.device)
    if args.tile_size is not None:
        seg.set_params(tiling__size=args.tile_size)
    out.mkdir(parents=True, exist_ok=True)
    from tqdm.auto import tqdm

    bar = tqdm(list(zip(files, targets)), desc="images", unit="image",
               disable=not (args.verbose or sys.stderr.isatty()))
    for f, t in bar:
        labels = seg.predict([read_image(f)])[0]
        write_label_map(t, labels, overwrite=args.overwrite)
        bar.write(f"{f.name}: {int(labels.max())} instances -> {t}", file=sys.stdout)
    bar.close()
    return 0


def _label_targets(files, out, fmt):
    """Output file of every input image, unique, never an input.

    ``<stem>_label.<fmt>`` (``a.png`` -> ``a_label.tif``) when no other input
    has the same stem (case ignored), else ``<name>_label.<fmt>``
    (``a.png_label.tif``, ``a.tif_label.tif``). Inputs whose outputs would
    still coincide (the same name in two folders) and an output that is an
    input are refused.
    """
    stems = Counter(f.stem.casefold() for f in files)
    targets = [out / f"{f.stem if stems[f.stem.casefold()] == 1 else f.name}_label.{fmt}" for f in files]
    seen = {}
    for f, t in zip(files, targets):
        other = seen.setdefault(t.name.casefold(), f)
        if other is not f:
            raise CLIError(f"{other} and {f} would both be written to {t}; predict them into separate --out folders")
    inputs = {os.path.normcase(os.path.realpath(f)) for f in files}
    for t in targets:
        if os.path.normcase(os.path.realpath(t)) in inputs:
            raise CLIError(f"{t} is one of the input images; refusing to write over it: choose another --out folder")
    return targets


def cmd_evaluate(args):
    """Score predicted label maps against ground truth paired by file name."""
    from .demo import evaluate
    from .io import load_label_pairs

    names, preds, truth = load_label_pairs(args.pred, args.gt)
    _print_table({f"{len(names)} images": evaluate(truth, preds)}, args.json)
    return 0


def _image_files(spec):
    p = Path(spec)
    suffixes = (".png", ".tif", ".tiff", ".jpg", ".jpeg")
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in suffixes)
    else:
        files = sorted(Path(f) for f in __import__("glob").glob(spec))
    if not files:
        raise CLIError(f"no images (png/tif/jpg) found at {spec!r}")
    return files


def _scale_arg(text):
    """``--scale``: "auto" or a number (checked by HarmonicSegmenter)."""
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto'; got {text!r}") from None


def _width_arg(text):
    """``--width``: "auto" or an integer."""
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'auto'; got {text!r}") from None


def _add_fit_parser(sub, common):
    f = sub.add_parser("fit", help=cmd_fit.__doc__, description=cmd_fit.__doc__, parents=[common],
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    f.add_argument("images", help="folder or glob of images")
    f.add_argument("labels", help="folder or glob of label maps (paired with the images by file name)")
    f.add_argument("--out", required=True, help="model folder to write (new, empty, or holding a saved model)")
    f.add_argument(
        "--overwrite", action="store_true",
        help="replace the config.json and weights.npz of a model already saved in --out (other files there are "
             "left alone)",
    )
    f.add_argument("--warm-start", metavar="MODEL_FOLDER", default=None,
                   help="go on training a saved model on these images (same channels); its guides, scale and "
                        "network are kept, so --n-guides, --margin, --depth, --width and --scale are not used")
    net = "; not used with --warm-start"
    f.add_argument("--n-guides", type=int, default=12, help="number of guide functions (embedding size)" + net)
    f.add_argument("--margin", type=float, default=0.5, help="margin eps of the guide functions" + net)
    f.add_argument("--depth", type=int, default=4, help="pooling steps of the U-Net" + net)
    f.add_argument("--width", type=_width_arg, default="auto",
                   help="channels of the first level, or auto (16 on a CPU, 32 on a GPU)" + net)
    f.add_argument("--scale", type=_scale_arg, default="auto",
                   help="resize factor of the images the network sees (0.5: halved), or auto (from the size of "
                        "the objects in the label maps)" + net)
    f.add_argument("--loss", choices=["discriminative", "harmonic"], default="discriminative",
                   help="what the embedding learns: the discriminative loss, or the guided harmonic embeddings "
                        "(the paper's method)")
    f.add_argument("--max-time", type=float, default=None, metavar="SECONDS",
                   help="wall-clock budget of the whole fit (guides, training, tuning); the epochs are planned to "
                        "end on it and --epochs is not used")
    f.add_argument("--epochs", type=int, default=50, help="training epochs (without --max-time)")
    f.add_argument("--validation-fraction", type=float, default=0.1,
                   help="fraction of the images held out for validation and the post-processing tuning")
    f.add_argument("--tune", action=argparse.BooleanOptionalAction, default=True,
                   help="tune the post-processing (bandwidth, distance, core fraction, minimum size, foreground "
                        "threshold) on the held-out images")
    f.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                   help="mixed precision: bfloat16 on CPU, float16 on CUDA; neither flag: auto (bfloat16 only on a "
                        "CPU that has it natively, float16 on CUDA)")
    f.add_argument("--crop-size", type=int, default=192, help="side of the random training crops")
    f.add_argument("--batch-size", type=int, default=4, help="crops per minibatch")
    f.add_argument("--threads", type=int, default=None,
                   help="CPU threads of torch; None: chosen from the CPUs idle at the start")
    f.add_argument("--device", default="auto", help="auto (CUDA when available, else CPU), cpu, cuda, cuda:1, mps")
    f.add_argument("--seed", type=int, default=0, help="random seed (repeatable CPU runs)")
    f.set_defaults(func=cmd_fit)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="harmonic-seg",
        description="Instance segmentation of biological images with harmonic embeddings.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more output (repeatable)")
    # -v after the sub-command too (counted with those before it, see main)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="count", default=0, dest="sub_verbose",
                        help="more output (repeatable; also accepted before the sub-command)")
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("guides", help=cmd_guides.__doc__, description=cmd_guides.__doc__, parents=[common])
    g.add_argument("labels", nargs="?", default=None, help="folder or glob of label maps (default: embedded sample)")
    g.add_argument("--n-guides", type=int, default=12)
    g.add_argument("--margin", type=float, default=0.5)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--json", action="store_true", help="print a JSON report")
    g.add_argument("--out", help="write the JSON report (with the guides) to this file")
    g.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    g.set_defaults(func=cmd_guides)

    d = sub.add_parser("demo", help=cmd_demo.__doc__, description=cmd_demo.__doc__, parents=[common])
    d.add_argument("--epochs", type=int, default=30, help="training epochs (default 30: a few minutes on a CPU)")
    d.add_argument("--max-time", type=float, default=None, metavar="SECONDS",
                   help="instead of --epochs: seconds the whole fit may take, the epochs planned to end on it "
                        "(default: none)")
    d.add_argument("--out", default="harmonic_seg_demo.png", help="picture (never overwritten: -1, -2 ... added)")
    d.add_argument("--no-picture", action="store_true")
    d.add_argument("--save-model", default=None, help="also save the trained model to this new folder")
    d.add_argument("--device", default="auto")
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=cmd_demo)

    _add_fit_parser(sub, common)

    p = sub.add_parser("predict", help=cmd_predict.__doc__, description=cmd_predict.__doc__, parents=[common])
    p.add_argument("model", help="model folder written by 'fit' or HarmonicSegmenter.save")
    p.add_argument("images", help="folder or glob of images")
    p.add_argument(
        "--out", required=True,
        help="output folder: the label map of a.png is written to a_label.tif (or .png with --format png), or to "
             "a.png_label.tif when another input has the same name before its extension (a.tif); existing files "
             "are replaced only with --overwrite (checked before any prediction), input images never",
    )
    p.add_argument("--format", choices=["tif", "png"], default="tif")
    p.add_argument("--tile-size", type=int, default=None, help="predict large images in tiles of this size")
    p.add_argument("--device", default="auto",
                   help="where the network runs: auto (CUDA when available, else CPU), cpu, cuda, cuda:1, mps "
                        "(default: auto)")
    p.add_argument("--overwrite", action="store_true")
    z = p.add_argument_group(
        "one large image as a Zarr array (IMAGES ending in .zarr; --out is then the Zarr array of labels), "
        "segmented block by block on dask (pip install 'harmonic_seg[dask]')")
    z.add_argument("--scheduler", default=None, help="address of a running dask.distributed scheduler (default: a "
                   "LocalCluster on this machine)")
    z.add_argument("--workers", type=int, default=None, help="workers of that LocalCluster, one thread each "
                   "(default: one per core)")
    z.add_argument("--chunk-size", type=int, default=None, help="block size (default: the input's chunks)")
    z.add_argument("--overlap", type=int, default=None, help="context clustered around each block, at least the "
                   "largest object's diameter (default: the network's receptive field)")
    z.add_argument("--stitch", choices=["embedding", "iou", "touch"], default="embedding",
                   help="how instances cut by block borders are joined (default: by their embeddings)")
    p.set_defaults(func=cmd_predict)

    e = sub.add_parser("evaluate", help=cmd_evaluate.__doc__, description=cmd_evaluate.__doc__, parents=[common])
    e.add_argument("pred", help="folder of predicted label maps")
    e.add_argument("gt", help="folder of ground-truth label maps")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_evaluate)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    args.verbose += args.sub_verbose  # -v before and after the sub-command
    # The command line owns its output: a handler on the package's logger,
    # never on the root logger.
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    pkg_logger = logging.getLogger("harmonic_seg")
    level = pkg_logger.level
    pkg_logger.addHandler(handler)
    pkg_logger.setLevel(logging.WARNING if args.verbose == 0 else (logging.INFO if args.verbose == 1 else logging.DEBUG))
    try:
        return args.func(args)
    except (CLIError, FileNotFoundError, FileExistsError, ValueError, TypeError) as exc:
        print(f"harmonic-seg {args.command}: error: {exc}", file=sys.stderr)
        return 2
    finally:  # main may be called again in the same process: one handler per call, removed after it
        pkg_logger.removeHandler(handler)
        pkg_logger.setLevel(level)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
