"""Write the reference of a few short trainings (``training_reference.npz``).

Run from the repository root with harmonic_seg at commit 6dc3519 (before the
training set was validated once and the trainer took its callbacks apart)::

    python tests/data/make_training_reference.py

Every case trains a tiny network for a few steps with a fixed ``random_state``
on one torch thread in float32 (``amp=None``): through
:class:`~harmonic_seg.HarmonicSegmenter` (integer RGB images with ignore
masks and the harmonic loss; float images without normalisation, rotations and
the discriminative loss) and through :class:`~harmonic_seg.nn.Trainer` directly
(float64 channels-first images, sparse int64 ids, ignore masks). The weights
and the losses of every epoch go into ``training_reference.npz`` beside this
script, with the torch version and CPU that wrote them;
``tests/test_training_reference.py`` checks that the current code trains the
same, bit for bit on that platform. Do not rerun it with a later version: the
point is that the file was written by the old code. (The cases are written in
today's API, which the test runs; at 6dc3519 ``loss=Loss(name="harmonic",
boundary_weight=1.0)`` was ``loss="harmonic", boundary_weight=1.0`` and
``augmentation=Augmentation(rotate=True)`` was ``rotate=True``, and
``network=Network(depth=2, base_width=4)`` was ``depth=2, base_width=4``; the guides' ``init_range="auto"``
was their default when the reference was written.)
"""

import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TINY = dict(batch_size=2, crop_size=32, num_threads=1, amp=None, tune_postprocessing=False)
HISTORY_KEYS = ("train_loss", "train_l1", "train_fg", "val_loss", "val_l1")


def _data(kind):
    from harmonic_seg.synthetic import make_instances

    d = make_instances(n_images=4, shape=(64, 56), n_instances=(3, 7), random_state=3)
    if kind == "rgb-uint8":
        images = [(np.clip(np.stack([im, 1 - im, 0.5 * im], -1), 0, 1) * 255).astype(np.uint8) for im in d.images]
    else:
        images = [im.astype(np.float64) for im in d.images]
    ignore = [None, (np.arange(64 * 56).reshape(64, 56) % 7 == 0), None, np.zeros((64, 56), bool)]
    return images, d.labels, ignore


def case_segmenter_harmonic():
    from harmonic_seg import GuideFunctionFitter, HarmonicSegmenter, Loss, Network

    X, y, ignore = _data("rgb-uint8")
    seg = HarmonicSegmenter(loss=Loss(name="harmonic", boundary_weight=1.0), epochs=2, steps_per_epoch=2, scale=0.5,
                            guides=GuideFunctionFitter(init_range="auto"),
                            validation_fraction=0.3, random_state=0, network=Network(depth=2, base_width=4), **TINY)
    seg.fit(X, y, ignore=ignore)
    return seg.module_, seg.history_


def case_segmenter_discriminative():
    from harmonic_seg import Augmentation, GuideFunctionFitter, HarmonicSegmenter, Network

    X, y, _ = _data("float")
    seg = HarmonicSegmenter(epochs=2, steps_per_epoch=2, scale=1.0, percentiles=None,
                            guides=GuideFunctionFitter(init_range="auto"),
                            augmentation=Augmentation(rotate=True),
                            validation_fraction=0.3, random_state=1, network=Network(depth=2, base_width=4),
                            **TINY)
    seg.fit(X, [lab.astype(np.int64) * 3 for lab in y])
    return seg.module_, seg.history_


def case_trainer():
    import torch

    from harmonic_seg.guides import random_guides
    from harmonic_seg.nn import HarmonicUNet, TrainConfig, Trainer

    X, y, ignore = _data("float")
    guides = random_guides(4, (64, 56), random_state=0)
    torch.manual_seed(0)
    net = HarmonicUNet(1, 4, guides, depth=2, base_width=4)
    config = TrainConfig(epochs=2, steps_per_epoch=3, batch_size=2, crop_size=40, validation_fraction=0.3,
                         loss="harmonic", random_state=5, num_threads=1)
    chw = [im[None] for im in X]  # float64: the trainer converts
    trainer = Trainer(net, guides, config).fit(chw, [lab.astype(np.int64) * 1000 for lab in y], ignore=ignore)
    return trainer.module, trainer.history


CASES = {
    "segmenter_harmonic": case_segmenter_harmonic,
    "segmenter_discriminative": case_segmenter_discriminative,
    "trainer": case_trainer,
}


def run_case(name):
    """The weights (name -> array) and the per-epoch losses (array) of one case."""
    import torch

    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        module, history = CASES[name]()
    finally:
        torch.set_num_threads(prev)
    weights = {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}
    losses = np.array([[np.nan if rec[k] is None else rec[k] for k in HISTORY_KEYS] for rec in history])
    return weights, losses


def platform():
    """What the reference depends on beyond the code: torch's version and the CPU's instructions."""
    import torch

    from harmonic_seg.nn._train_utils import cpu_has_native_bfloat16

    return {"torch": torch.__version__, "numpy": np.__version__, "native_bfloat16": cpu_has_native_bfloat16(),
            "capability": torch.backends.cpu.get_cpu_capability()}


if __name__ == "__main__":
    out = {}
    for name in CASES:
        weights, losses = run_case(name)
        out[f"{name}/losses"] = losses
        for k, v in weights.items():
            out[f"{name}/weights/{k}"] = v
    out["platform"] = np.array(json.dumps(platform()))
    np.savez_compressed(HERE / "training_reference.npz", **out)
    print({k: v.shape for k, v in out.items() if k.endswith("losses")}, platform())
