"""Many images over a dask cluster's workers: the model sent once to each worker, outputs written as they finish."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["PredictManyResult", "predict_many"]

logger = logging.getLogger(__name__)


@dataclass
class PredictManyResult:
    """What :func:`predict_many` did.

    Attributes
    ----------
    outputs : list of Path or None
        The label map written for every input, in input order (None where it failed).
    n_instances : list of int or None
        Instances found in every input (None where it failed).
    failures : list of tuple (int, str, str)
        ``(index, name, error)`` of every input that failed, in the order they failed.
    """

    outputs: list = field(default_factory=list)
    n_instances: list = field(default_factory=list)
    failures: list = field(default_factory=list)

    @property
    def ok(self):
        """True when every input was segmented and written."""
        return not self.failures


def _segment_one(model, item):
    """Runs on a worker: the label map of one image (a path is read there)."""
    if isinstance(item, (str, Path)):
        from ..io import read_image

        item = read_image(item)
    return model.predict([item])[0]


def _names(items):
    names = []
    for i, item in enumerate(items):
        if isinstance(item, (str, Path)):
            names.append(Path(item).stem)
        elif hasattr(item, "shape"):
            names.append(f"image_{i:05d}")
        else:
            raise TypeError(f"images[{i}] must be a path or an array of shape (H, W[, C]); got {type(item).__name__}.")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"images have the same file name {dup[0]!r} (from different folders?): their outputs would "
                         "overwrite each other; predict them into different out_dir folders.")
    return names


def predict_many(model, images, out_dir, *, client=None, format="tif", overwrite=False):
    """Segment many images on a dask cluster and write one label map per image.

    The fitted model is sent to every worker once (``client.scatter(model,
    broadcast=True)``), not with every task; each image is one task (a path is
    read on the worker, an array is sent with its task). Label maps are written
    here, in ``out_dir``, in the order the tasks finish (``as_completed``), so
    that finished images are on disk while others still run; an image whose
    task fails is reported in the result and the others go on.

    Parameters
    ----------
    model : HarmonicSegmenter
        Fitted. Set ``num_threads`` to the threads of a worker (e.g. 1) to
        keep the workers from competing for cores.
    images : list of str, path or ndarray of shape (H, W[, C])
        Paths (png, tif, ...) readable by the workers, or arrays.
    out_dir : str or path
        Folder for the label maps (created), ``<stem>_label.<format>`` for a
        path, ``image_<index>_label.<format>`` for an array.
    client : dask.distributed.Client or None, default=None
        None: the running default client, or a ``LocalCluster`` (one thread
        per worker) started for the call and closed after it.
    format : {"tif", "png"}, default="tif"
    overwrite : bool, default=False
        Replace existing label maps; otherwise a ``FileExistsError`` is raised before any work.

    Returns
    -------
    PredictManyResult
    """
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(model, "module_")
    if format not in ("tif", "png"):
        raise ValueError(f"format must be 'tif' or 'png'; got {format!r}.")
    if isinstance(images, (str, Path, np.ndarray)) or not hasattr(images, "__len__"):
        raise TypeError(f"images must be a list of paths or arrays; got {type(images).__name__}. Wrap one image in "
                        "a list.")
    images = list(images)
    names = _names(images)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"out_dir {str(out_dir)!r} exists and is not a folder.")
    targets = [out_dir / f"{n}_label.{format}" for n in names]
    existing = [str(t) for t in targets if t.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{len(existing)} label map(s) exist in out_dir, e.g. {existing[0]!r}; pass "
                              "overwrite=True to replace them.")
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError("predict_many needs dask.distributed; pip install 'harmonic_seg[dask]'.") from exc
    from ..io import write_label_map

    out_dir.mkdir(parents=True, exist_ok=True)
    own = None
    if client is None:
        from .blockwise import _default_client

        client = _default_client()
        if client is None:
            own = Client(LocalCluster(threads_per_worker=1, processes=True, dashboard_address=":0"))
            client = own
    result = PredictManyResult([None] * len(images), [None] * len(images), [])
    try:
        model_f = client.scatter(model, broadcast=True, hash=False)
        token = uuid.uuid4().hex[:12]
        futures = {client.submit(_segment_one, model_f, item, pure=False, key=f"harmonic-seg-image-{token}-{i}"): i
                   for i, item in enumerate(images)}
        for fut in as_completed(futures):
            i = futures[fut]
            try:
                labels = fut.result()
                result.outputs[i] = write_label_map(targets[i], labels, overwrite=overwrite)
                result.n_instances[i] = int(labels.max())
            except Exception as exc:  # noqa: BLE001 - reported, the others go on
                result.failures.append((i, names[i], f"{type(exc).__name__}: {exc}"))
                logger.warning("image %d (%s) failed: %s: %s", i, names[i], type(exc).__name__, exc)
            finally:
                fut.release()
        client.cancel(model_f)
    finally:
        if own is not None:
            cluster = own.cluster
            own.close()
            cluster.close()
    logger.info("predict_many: %d of %d images written to %s", len(images) - len(result.failures), len(images), out_dir)
    return result
