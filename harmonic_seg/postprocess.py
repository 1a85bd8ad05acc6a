"""Post-processing of instance label maps (numpy, scipy and scikit-image only).

These helpers turn the raw cluster map produced by mean-shift clustering of
the predicted embeddings (:func:`harmonic_seg.nn.cluster.cluster_embeddings`)
into a clean instance label map and give every instance a confidence score
(used to rank detections for COCO-style average precision).

All functions take and return 2-D integer label maps with 0 = background and
never modify their input.
"""

from __future__ import annotations

import logging

import numpy as np

from ._validation import _describe, check_label_map, check_positive

__all__ = [
    "remove_small_instances",
    "merge_small_instances",
    "split_into_components",
    "relabel_sequential",
    "instance_scores",
]

logger = logging.getLogger(__name__)

_METRICS = ("euclidean", "l1")


def remove_small_instances(labels, min_size):
    """Set every instance with fewer than ``min_size`` pixels to background.

    Parameters
    ----------
    labels : array-like of shape (H, W)
        Integer label map, 0 = background.
    min_size : int
        Smallest number of pixels an instance must have to be kept
        (``min_size <= 1`` keeps everything).

    Returns
    -------
    labels : ndarray of shape (H, W)
        A copy of ``labels`` (same dtype) with the small instances removed.
        Ids of the kept instances are unchanged (use :func:`relabel_sequential`
        to make them consecutive).
    """
    labels = check_label_map(labels, "labels")
    check_positive(min_size, "min_size", integer=True, allow_zero=True)
    out = labels.copy()
    if min_size <= 1:
        return out
    counts = np.bincount(labels.ravel())
    small = counts < min_size
    small[0] = False
    if small.any():
        out[small[labels]] = 0
    return out


def merge_small_instances(labels, min_size):
    """Give the pixels of every instance smaller than ``min_size`` to a touching larger one.

    The kept instances grow into the small ones through the pixels they
    cover, by a flooding from all kept instances at once (watershed on a flat
    image, 4-connected): a pixel joins the kept instance it reaches first,
    which is a nearest one along paths inside the small instances. Small
    instances that touch no kept instance (directly or through other small
    ones) are removed, as :func:`remove_small_instances` does. With a given
    foreground, every foreground pixel thus stays in some instance; the
    fragments of an instance that the clustering cut off return to it.

    Parameters
    ----------
    labels : array-like of shape (H, W)
        Integer label map, 0 = background.
    min_size : int
        Instances with fewer pixels are merged (``min_size <= 1`` keeps
        everything as it is).

    Returns
    -------
    labels : ndarray of shape (H, W)
        A copy (same dtype); ids of the kept instances unchanged.
    """
    from skimage.segmentation import watershed

    labels = check_label_map(labels, "labels")
    kept = remove_small_instances(labels, min_size)
    if min_size <= 1 or not kept.any() or np.array_equal(kept, labels):
        return kept
    flat = np.zeros(labels.shape, dtype=np.uint8)
    return watershed(flat, markers=kept, mask=labels > 0, connectivity=1).astype(labels.dtype, copy=False)


def split_into_components(labels, connectivity=1):
    """Split every instance into its spatially connected components.

    Parameters
    ----------
    labels : array-like of shape (H, W)
        Integer label map, 0 = background.
    connectivity : {1, 2}, default=1
        1: 4-connectivity (pixels sharing an edge), 2: 8-connectivity.

    Returns
    -------
    labels : ndarray of shape (H, W), int32
        Each connected region of one non-zero value gets its own id; ids are
        consecutive 1..K in raster order of first appearance.

    Notes
    -----
    Uses :func:`skimage.measure.label`, which labels connected regions of
    *equal value*: two touching instances with different ids stay separate,
    and one id split into two blobs becomes two ids. One vectorised pass, no
    loop over instances.
    """
    from skimage.measure import label as sk_label

    labels = check_label_map(labels, "labels")
    if connectivity not in (1, 2):
        raise ValueError(f"connectivity must be 1 (4-connected) or 2 (8-connected); got {connectivity!r}.")
    return sk_label(labels, background=0, connectivity=connectivity).astype(np.int32, copy=False)


def relabel_sequential(labels, *, return_ids=False):
    """Renumber the instances of a label map to consecutive ids 1..K.

    Parameters
    ----------
    labels : array-like of shape (H, W)
        Integer label map, 0 = background.
    return_ids : bool, default=False
        Also return the original id of each new id.

    Returns
    -------
    labels : ndarray of shape (H, W), int32
        Instance ``i`` (1-based) is the ``i``-th smallest original id; 0 stays 0.
    ids : ndarray of shape (K,)
        Original id of new id ``i + 1``. Only when ``return_ids`` is True.
    """
    from skimage.segmentation import relabel_sequential as sk_relabel

    labels = check_label_map(labels, "labels")
    new = sk_relabel(labels)[0].astype(np.int32, copy=False)
    if return_ids:
        # relabel_sequential numbers the ids in increasing order
        return new, np.unique(labels[labels > 0])
    return new


def _check_embedding(embedding, shape, name="embedding"):
    emb = np.asarray(embedding)
    if emb.ndim != 3 or emb.shape[1:] != tuple(shape) or emb.shape[0] == 0:
        raise ValueError(
            f"{name} must have shape (N, H, W) = (N, {shape[0]}, {shape[1]}) with N >= 1 to match labels; "
            f"got {_describe(emb)}."
        )
    if not (np.issubdtype(emb.dtype, np.number) or emb.dtype == bool) or np.iscomplexobj(emb):
        raise TypeError(f"{name} must hold real numbers; got dtype {emb.dtype}.")
    if not np.issubdtype(emb.dtype, np.floating):
        emb = emb.astype(np.float32)
    if not np.all(np.isfinite(emb)):
        raise ValueError(f"{name} contains NaN or infinite values; got {int((~np.isfinite(emb)).sum())} of them.")
    return emb


def instance_scores(labels, embedding, bandwidth, *, centers=None, fg_prob=None, metric="euclidean"):
    """Confidence score of every instance of a label map, in [0, 1].

    The score of instance ``k`` with pixel set ``S_k`` and mode ``c_k`` is::

        score_k = mean_{p in S_k} fg_prob[p]  *  |{p in S_k : d(e_p, c_k) <= bandwidth}| / |S_k|

    i.e. the mean foreground probability over the instance times the
    *tightness* of its cluster: the fraction of its pixels whose embedding
    ``e_p`` lies within ``bandwidth`` of the cluster mode (``d`` is the L2 or
    L1 distance, as chosen by ``metric``). A compact, confidently-foreground
    instance scores close to 1; a diffuse cluster (pixels pulled from several
    modes, typical of merged or hallucinated instances) or a faint one scores
    lower. With ``fg_prob=None`` the first factor is 1.

    Parameters
    ----------
    labels : array-like of shape (H, W)
        Integer label map, 0 = background.
    embedding : array-like of shape (N, H, W)
        Per-pixel embeddings.
    bandwidth : float
        Mean-shift bandwidth (the margin eps of the paper), > 0.
    centers : array-like of shape (K, N) or None, default=None
        Mode of each instance, row ``i`` for the ``i``-th smallest non-zero id
        of ``labels``. ``None`` uses the mean embedding of each instance.
    fg_prob : array-like of shape (H, W) or None, default=None
        Foreground probability of each pixel, in [0, 1].
    metric : {"euclidean", "l1"}, default="euclidean"

    Returns
    -------
    scores : ndarray of shape (K,), float64
        ``scores[i]`` belongs to the ``i``-th smallest non-zero id (the id
        ``i + 1`` after :func:`relabel_sequential`). Empty when ``labels`` has
        no instance.
    """
    labels = check_label_map(labels, "labels")
    check_positive(bandwidth, "bandwidth")
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {_METRICS}; got {metric!r}.")
    emb = _check_embedding(embedding, labels.shape)
    fg = labels > 0
    ids, inv = np.unique(labels[fg], return_inverse=True)
    k = len(ids)
    if k == 0:
        return np.zeros(0, dtype=np.float64)
    inv = inv.ravel()
    e = emb[:, fg].T.astype(np.float64, copy=False)  # (P, N)
    counts = np.bincount(inv, minlength=k).astype(np.float64)
    if centers is None:
        c = np.stack([np.bincount(inv, weights=col, minlength=k) for col in e.T], axis=1) / counts[:, None]
    else:
        c = np.asarray(centers, dtype=np.float64)
        if c.shape != (k, emb.shape[0]):
            raise ValueError(
                f"centers must have shape (K, N) = ({k}, {emb.shape[0]}): one row per instance of labels; "
                f"got {_describe(np.asarray(centers))}."
            )
    diff = e - c[inv]
    if metric == "l1":
        dist = np.abs(diff).sum(axis=1)
    else:
        dist = np.sqrt((diff * diff).sum(axis=1))
    prob = None
    if fg_prob is not None:
        prob = np.asarray(fg_prob, dtype=np.float64)
        if prob.shape != labels.shape:
            raise ValueError(
                f"fg_prob must have shape (H, W) = {labels.shape} to match labels; "
                f"got {_describe(np.asarray(fg_prob))}."
            )
        if not np.all(np.isfinite(prob)):
            raise ValueError("fg_prob contains NaN or infinite values.")
        prob = prob[fg]
    return _membership_scores(inv, dist <= bandwidth, prob, k)


def _membership_scores(inv, within, prob, k):
    """``mean(prob) * mean(within)`` per instance.

    Parameters
    ----------
    inv : ndarray of shape (P,)
        Instance index 0..k-1 of every instance pixel.
    within : ndarray of shape (P,), bool
        Whether the pixel's embedding is within the bandwidth of its mode.
    prob : ndarray of shape (P,) or None
        Foreground probability of every pixel (None = 1).
    k : int
        Number of instances.
    """
    counts = np.bincount(inv, minlength=k).astype(np.float64)
    counts[counts == 0] = 1.0
    score = np.bincount(inv, weights=np.asarray(within, dtype=np.float64), minlength=k) / counts
    if prob is not None:
        score *= np.bincount(inv, weights=np.clip(prob, 0.0, 1.0), minlength=k) / counts
    return score
