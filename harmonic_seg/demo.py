"""The embedded demo: train on part of the shipped nuclei sample, evaluate on the rest.

Used by ``harmonic-seg demo`` and ``python -m harmonic_seg demo``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["run_demo", "free_path", "evaluate", "mosaic"]

#: Tiles (of 16, row-major 128x128 tiles of the 512x512 image) held out for testing.
TEST_TILES = (5, 10, 12, 15)


def free_path(path):
    """``path`` if it does not exist, else ``stem-1.ext``, ``stem-2.ext``, ...: never overwrites."""
    path = Path(path)
    k = 1
    candidate = path
    while candidate.exists():
        candidate = path.with_name(f"{path.stem}-{k}{path.suffix}")
        k += 1
    return candidate


def mosaic(tiles, labels=False):
    """The held-out tiles side by side in a 2x2 grid (ids made unique for label maps)."""
    tiles = [np.asarray(t) for t in tiles]
    if labels:
        offsets = np.cumsum([0] + [int(t.max()) for t in tiles[:-1]])
        tiles = [np.where(t > 0, t + o, 0) for t, o in zip(tiles, offsets)]
    rows = [np.concatenate(tiles[i : i + 2], axis=-1) for i in range(0, len(tiles), 2)]
    return np.concatenate(rows, axis=-2)


def evaluate(y_true, y_pred, scores=None):
    """The library's main metrics of a list of predictions, as a dict."""
    from .metrics import (
        coco_average_precision,
        matching_dataset,
        mean_abs_difference_in_count,
        mean_symmetric_best_dice,
    )

    m50, m75 = matching_dataset(y_true, y_pred, thresh=[0.5, 0.75])
    return {
        "SBD": mean_symmetric_best_dice(y_true, y_pred),
        "|DiC|": mean_abs_difference_in_count(y_true, y_pred),
        "AP@0.5 (TP/(TP+FP+FN))": m50.accuracy,
        "AP@0.75 (TP/(TP+FP+FN))": m75.accuracy,
        "F1@0.5": m50.f1,
        "PQ@0.5": m50.panoptic_quality,
        "COCO AP": coco_average_precision(y_true, y_pred, scores)["AP"],
    }


def run_demo(
    *,
    epochs=40,
    steps_per_epoch=10,
    out="harmonic_seg_demo.png",
    save_model=None,
    random_state=0,
    verbose=1,
    device="auto",
):
    """Train, evaluate and draw the embedded demo.

    Parameters
    ----------
    epochs : int, default=40
        Training epochs (about 4 minutes on an idle 2-core CPU).
    steps_per_epoch : int, default=10
        Minibatches of 8 random 128x128 crops per epoch.
    out : str or path-like or None, default="harmonic_seg_demo.png"
        Picture of image | ground truth | prediction | embedding of the four
        held-out tiles (2x2, each predicted on its own); never overwrites (a free name ``-1``, ``-2``, ... is chosen). None: no picture.
    save_model : str or path-like or None, default=None
        Also save the trained model to this folder (see
        :meth:`HarmonicSegmenter.save`); it must not exist yet, which is
        checked before training.
    random_state : int, default=0
    verbose : int, default=1
    device : str, default="auto"

    Returns
    -------
    report : dict
        Metrics of the harmonic segmentation and of the trivial floor
        (connected components of the predicted foreground), timings and the
        picture's path.
    """
    from skimage.measure import label as connected_components

    from .io import load_nuclei_sample
    from .segmenter import HarmonicSegmenter

    if save_model is not None and Path(save_model).exists():
        raise FileExistsError(f"save_model={str(save_model)!r} exists; choose a new folder.")
    data = load_nuclei_sample(tile=128)
    test = [i for i in range(len(data)) if i in TEST_TILES]
    train = [i for i in range(len(data)) if i not in TEST_TILES]
    Xtr, ytr = [data.images[i] for i in train], [data.labels[i] for i in train]
    Xte, yte = [data.images[i] for i in test], [data.labels[i] for i in test]
    seg = HarmonicSegmenter(
        depth=3,
        base_width=16,
        crop_size=128,
        batch_size=8,
        steps_per_epoch=steps_per_epoch,
        epochs=epochs,
        learning_rate=3e-3,
        validation_fraction=0.17,
        tune_postprocessing=True,
        split_components=True,
        device=device,
        random_state=random_state,
        verbose=verbose,
    )
    t0 = time.perf_counter()
    seg.fit(Xtr, ytr)
    fit_s = time.perf_counter() - t0
    if save_model is not None:
        seg.save(save_model)
    t0 = time.perf_counter()
    pred, scores = seg.predict(Xte, return_scores=True)
    predict_s = time.perf_counter() - t0
    emb = seg.predict_embeddings(Xte)
    floor = [connected_components(p > seg.fg_threshold_, connectivity=1).astype(np.int32) for _, p in emb]
    report = {
        "train_tiles": len(train),
        "test_tiles": len(test),
        "fit_seconds": fit_s,
        "predict_seconds": predict_s,
        "bandwidth": seg.bandwidth_,
        "min_size": seg.min_size_,
        "harmonic": evaluate(yte, pred, scores),
        "floor (connected components of predicted foreground)": evaluate(yte, floor),
        "picture": None,
        "model": None if save_model is None else str(save_model),
    }
    if out is not None:
        from .plotting import plot_comparison

        # The evaluated tiles, not the whole 512x512 image: that mixes training
        # tiles in, and its far-apart nuclei need not have distinct guide
        # values (the guides separate the instances of each 128-px tile).
        path = free_path(out)
        plot_comparison(
            mosaic(Xte), mosaic(yte, labels=True), mosaic(pred, labels=True),
            embedding=mosaic([e for e, _ in emb]), foreground=mosaic([p > seg.fg_threshold_ for _, p in emb]),
            path=path,
        )
        report["picture"] = str(path)
    return report
