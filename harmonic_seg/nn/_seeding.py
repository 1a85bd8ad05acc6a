"""The seeds of a training run, all drawn here: a fit's two seeds, the trainer's streams, torch's generators.

* :func:`fit_seeds`: ``HarmonicSegmenter(random_state=...)`` -> the seed of the
  guide fitting and the seed of the network (its initial weights and its
  training run);
* :func:`run_seeds`: a training run's seed -> the streams of its validation
  split and of its crops (:class:`~harmonic_seg.nn.Trainer`; the segmenter's
  time budget predicts the split from the same function);
* :func:`torch_rng_scope`: torch's global generators seeded for a block (the
  initial weights) and restored after; the training loop draws nothing from them.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from sklearn.utils import check_random_state

__all__ = ["fit_seeds", "new_seed", "run_seeds", "torch_rng_scope"]


def fit_seeds(random_state):
    """The guide fitting's and the network's seeds (ints) of a fit with ``random_state``."""
    rs = check_random_state(random_state)
    seed_guides, seed_net = (int(s) for s in rs.randint(0, 2**31 - 1, size=2))
    return seed_guides, seed_net


def new_seed():
    """A fresh seed from the operating system's entropy (a run without ``random_state``)."""
    return int(np.random.SeedSequence().generate_state(1)[0])


def run_seeds(seed):
    """The seed sequences of a training run's validation split and of its crops."""
    split, sample = np.random.SeedSequence(int(seed)).spawn(2)
    return split, sample


@contextlib.contextmanager
def torch_rng_scope(seed=None, device="cpu"):
    """Run a block with torch's global random generators seeded, then restore them as they were.

    The one place where the package seeds torch: what a block draws (the
    initial weights of a network) is repeatable with ``seed``, and the
    caller's own torch code sees the generator state it had before.

    Parameters
    ----------
    seed : int or None, default=None
        Seed of the CPU (and CUDA) generators in the block; None leaves them
        as they are (the block may still change them; they are restored after).
    device : str or torch.device, default="cpu"
        With a CUDA device the CUDA generators are also saved and restored.
    """
    device = torch.device(device)
    cuda = device.type == "cuda" and torch.cuda.is_available()
    with torch.random.fork_rng(devices=list(range(torch.cuda.device_count())) if cuda else []):
        if seed is not None:
            torch.manual_seed(int(seed))
        yield
