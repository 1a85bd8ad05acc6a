"""Plumbing shared by the example scripts: options, output folder, file writing, quick mode, the data split.

Not an example itself: the scripts import it as ``from _common import ...``
(``python examples/x.py`` puts ``examples/`` on ``sys.path``, whatever the
working directory). Everything that shows the library stays in the scripts.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from harmonic_seg.demo import free_path

#: ``--quick`` help of the scripts that train a network with :func:`quick_budget`.
QUICK_HELP = "tiny budget (smoke test): depth 2, width 4, 1 epoch of 2 steps, crops of 32, 1 thread"


def make_parser(doc, quick_help=QUICK_HELP):
    """An argument parser with ``--quick`` and ``--out``; its description is the first paragraph of ``doc``."""
    parser = argparse.ArgumentParser(
        description=doc.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default: a new folder example_output/ in the current directory, or "
        "example_output-1/, ... if that exists); existing files are never overwritten",
    )
    return parser


def add_device_option(parser):
    """Adds ``--device`` (default ``"auto"``) to ``parser``."""
    parser.add_argument("--device", default="auto", help="'auto' (CUDA when available), 'cpu', 'cuda', ...")


def output_folder(out):
    """The folder to write into: ``out`` (created if needed) or a new ``example_output*`` folder."""
    if out is None:
        out = free_path(Path("example_output"))
    elif out.exists() and not out.is_dir():
        sys.exit(f"error: --out {out} exists and is not a folder; give a folder (new or existing).")
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_json(out, name, report, default=None):
    """Writes ``report`` to ``out/name``, or to a free name ``stem-1.json``, ... if taken; returns the path.

    Estimators in ``report`` (such as a ``Network``) are written as ``{"Network": {its parameters}}``.
    """
    path = free_path(out / name)

    def encode(value):
        if hasattr(value, "get_params"):
            return {type(value).__name__: value.get_params()}
        if default is None:
            raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
        return default(value)

    with open(path, "x") as fh:
        json.dump(report, fh, indent=2, default=encode)
    return path


def has_matplotlib():
    """Whether matplotlib can be imported; if not, says so (no picture)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("matplotlib is not installed: no picture (pip install matplotlib).")
        return False
    return True


def save_figure(fig, out, name, dpi=100):
    """Saves ``fig`` to ``out/name``, or to a free name ``stem-1.png``, ... if taken; returns the path."""
    path = free_path(out / name)
    fig.savefig(path, dpi=dpi)
    return path


def quick_budget():
    """The ``--quick`` training budget (a tiny network), with torch limited to one thread (shared machines)."""
    import torch

    from harmonic_seg import Network

    torch.set_num_threads(1)
    return dict(network=Network(depth=2, base_width=4), epochs=1, steps_per_epoch=2, crop_size=32, batch_size=2)


@dataclass
class NucleiSplit:
    """The nuclei sample shipped with the package in 16 tiles of 128x128, split into 12 training and 4 test tiles.

    ``data`` has ``images``, ``labels`` and ``names``; ``train`` and ``test``
    are tile indices (the test tiles are ``harmonic_seg.demo.TEST_TILES``).
    """

    data: object
    train: list
    test: list

    @property
    def X_train(self):
        return [self.data.images[i] for i in self.train]

    @property
    def y_train(self):
        return [self.data.labels[i] for i in self.train]

    @property
    def X_test(self):
        return [self.data.images[i] for i in self.test]

    @property
    def y_test(self):
        return [self.data.labels[i] for i in self.test]


def nuclei_split():
    """The embedded nuclei sample in 128x128 tiles, with the demo's train/test split (:class:`NucleiSplit`)."""
    from harmonic_seg.demo import TEST_TILES
    from harmonic_seg.io import load_nuclei_sample

    data = load_nuclei_sample(tile=128)
    test = list(TEST_TILES)
    train = [i for i in range(len(data)) if i not in test]
    return NucleiSplit(data, train, test)
