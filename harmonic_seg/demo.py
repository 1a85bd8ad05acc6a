"""The embedded demo: tell touching and crossing worms apart where connected components cannot.

Used by ``harmonic-seg demo`` and ``python -m harmonic_seg demo``. The data are 20 wells of the
BBBC010 C. elegans assay shipped with the package (:func:`harmonic_seg.io.load_worm_sample`, CC BY
3.0): the input is a well's binary foreground mask, as in the paper's protocol, so the trivial floor
(connected components of the mask) merges every clump of worms into one instance.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from .clustering import EmbeddingClusterer
from .guides import GuideFunctionFitter
from .options import Network

logger = logging.getLogger(__name__)

__all__ = ["run_demo", "train_and_score", "draw_demo", "free_path", "evaluate", "mosaic"]

#: Tiles (of 16, row-major 128x128 tiles of the 512x512 nuclei image) held out for testing in the
#: examples that use :func:`harmonic_seg.io.load_nuclei_sample`.
TEST_TILES = (5, 10, 12, 15)

#: The demo's segmenter: a CPU-sized network on halved wells (a 128-px crop then holds most of a worm),
#: guides searched from four equivalent worm diameters (``init_range="auto"``): on these 16 wells and
#: 30 epochs they give tighter worm masks than the default's four worm lengths, which split more clumps
#: but draw them less precisely.
DEMO_PARAMS = dict(
    network=Network(depth=4, base_width=16), guides=GuideFunctionFitter(init_range="auto"), crop_size=128,
    batch_size=4, learning_rate=2e-3, scale=0.5,
    percentiles=None, validation_fraction=0.2, tune_postprocessing=True, loss="harmonic", amp=None,
    clustering=EmbeddingClusterer(split_components=True, merge_small=True),
)


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


def train_and_score(*, epochs=30, max_time=None, random_state=0, verbose=1, device="auto", save_model=None,
                    params=None):
    """Train on the sample's 16 training wells and score its 4 test wells, beside the floor.

    Parameters
    ----------
    epochs : int, default=30
        Training epochs (each covers the training wells once); a run
        repeats exactly on a CPU of the same kind.
    max_time : float or None, default=None
        Seconds the whole ``fit`` may take instead (``HarmonicSegmenter(max_time=...)``):
        the epochs are planned to end on it, so their number, and the
        result, depend on the machine's speed; ``epochs`` is then ignored.
    random_state : int, default=0
    verbose : int, default=1
    device : str, default="auto"
    save_model : str or path-like or None, default=None
        Also save the trained model to this folder; it must not exist yet,
        which is checked before training.
    params : dict or None, default=None
        Segmenter parameters that replace those of :data:`DEMO_PARAMS`.

    Returns
    -------
    report : dict
        Metrics of the harmonic segmentation and of the trivial floor
        (connected components of the mask), timings and the model folder.
    arrays : dict
        What :func:`draw_demo` draws: the test ``images``, ``truth``,
        ``prediction``, ``floor`` and ``embedding`` lists.
    """
    from skimage.measure import label as connected_components

    from .io import load_worm_sample
    from .segmenter import HarmonicSegmenter

    if save_model is not None and Path(save_model).exists():
        raise FileExistsError(f"save_model={str(save_model)!r} exists; choose a new folder.")
    data = load_worm_sample()
    Xtr, ytr, itr = data.images[:16], data.labels[:16], data.ignore[:16]
    Xte, yte = data.images[16:], data.labels[16:]
    seg = HarmonicSegmenter(**{**DEMO_PARAMS, **(params or {})}, epochs=epochs, max_time=max_time, device=device,
                            random_state=random_state, verbose=verbose)
    t0 = time.perf_counter()
    seg.fit(Xtr, ytr, ignore=itr)
    fit_s = time.perf_counter() - t0
    if save_model is not None:
        seg.save(save_model)
    masks = [im > 0 for im in Xte]
    t0 = time.perf_counter()
    pred, scores = seg.predict(Xte, foreground=masks, return_scores=True)
    predict_s = time.perf_counter() - t0
    floor = [connected_components(m, connectivity=1).astype(np.int32) for m in masks]
    report = {
        "train_wells": len(Xtr),
        "test_wells": len(Xte),
        "max_time": max_time,
        "epochs": seg.n_epochs_,
        "fit_seconds": round(fit_s, 1),
        "time_budget": seg.time_budget_,
        "predict_seconds": round(predict_s, 1),
        "harmonic": evaluate(yte, pred, scores),
        "floor (connected components of the mask)": evaluate(yte, floor),
        "model": None if save_model is None else str(save_model),
    }
    arrays = {"images": Xte, "truth": yte, "prediction": pred, "floor": floor,
              "embedding": [e for e, _ in seg.predict_embeddings(Xte)]}
    return report, arrays


def draw_demo(arrays, out="harmonic_seg_demo.png"):
    """Picture of mask | ground truth | prediction | embedding of the test wells (2x2 each).

    Parameters
    ----------
    arrays : dict
        The second value returned by :func:`train_and_score`.
    out : str or path-like, default="harmonic_seg_demo.png"
        Never overwritten: a free name ``-1``, ``-2``, ... is chosen.

    Returns
    -------
    path : pathlib.Path
        Where the picture was written.
    """
    from .plotting import plot_comparison

    path = free_path(out)
    plot_comparison(
        mosaic(arrays["images"]), mosaic(arrays["truth"], labels=True), mosaic(arrays["prediction"], labels=True),
        embedding=mosaic(arrays["embedding"]), foreground=mosaic([im > 0 for im in arrays["images"]]),
        path=path,
    )
    return path


def run_demo(*, epochs=30, max_time=None, out="harmonic_seg_demo.png", save_model=None, random_state=0,
             verbose=1, device="auto", params=None):
    """Train, evaluate and draw the embedded demo.

    Parameters
    ----------
    epochs : int, default=30
        See :func:`train_and_score`.
    max_time : float or None, default=None
        See :func:`train_and_score`.
    out : str or path-like or None, default="harmonic_seg_demo.png"
        Picture of :func:`draw_demo` (never overwrites); None: no picture. A
        picture that cannot be drawn is logged as a warning and reported as
        ``report["picture"] = None``; the scores are kept.
    save_model : str or path-like or None, default=None
        See :func:`train_and_score`.
    params : dict or None, default=None
        See :func:`train_and_score`.
    random_state : int, default=0
    verbose : int, default=1
    device : str, default="auto"

    Returns
    -------
    report : dict
        :func:`train_and_score`'s report, with the picture's path.
    """
    report, arrays = train_and_score(epochs=epochs, max_time=max_time, random_state=random_state, verbose=verbose,
                                     device=device, save_model=save_model, params=params)
    report["picture"] = None
    if out is not None:
        try:
            report["picture"] = str(draw_demo(arrays, out))
        except Exception as exc:  # the picture is optional: the scores must survive it
            logger.warning("the demo picture could not be drawn (%s: %s)", type(exc).__name__, exc)
    return report
