"""Instance label maps from predicted embeddings by mean-shift clustering.

At test time the embedding network predicts an N-dimensional embedding at
every pixel; instances are the modes of the foreground embeddings found by
mean-shift clustering with bandwidth equal to the margin eps (paper, sec. 3.3).
:func:`cluster_embeddings` checks its inputs, clusters the foreground
embeddings with the torch mean shift of :mod:`harmonic_seg.nn.meanshift` and
cleans the cluster map and scores the instances with
:mod:`harmonic_seg.postprocess`.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from .. import postprocess as pp
from .._validation import _describe, check_positive
from ._meanshift_ops import _assign
from .meanshift import _DTYPE, KERNELS, METRICS, _check_choice, _mean_shift, _resolve_device

__all__ = ["cluster_embeddings"]

logger = logging.getLogger(__name__)


def _check_embedding(embedding, device):
    if isinstance(embedding, torch.Tensor):
        t = embedding.detach()
    else:
        if isinstance(embedding, (str, bytes)) or embedding is None:
            raise TypeError(f"embedding must be an array of shape (N, H, W); got {_describe(embedding)}.")
        arr = np.asarray(embedding)
        if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
            raise TypeError(f"embedding must hold real numbers; got dtype {arr.dtype}.")
        t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    if t.ndim != 3 or min(t.shape) == 0:
        raise ValueError(f"embedding must have shape (N, H, W) with N, H, W >= 1; got shape {tuple(t.shape)}.")
    t = t.to(device=device, dtype=_DTYPE)
    if not bool(torch.isfinite(t).all()):
        n_bad = int((~torch.isfinite(t)).sum())
        raise ValueError(f"embedding must hold finite values; got {n_bad} NaN or infinite value(s).")
    return t


def _check_mask(mask, name, shape, *, dtype=bool):
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    arr = np.asarray(mask)
    if arr.shape != tuple(shape):
        raise ValueError(f"{name} must have shape (H, W) = {tuple(shape)} to match embedding; got {_describe(arr)}.")
    if dtype is bool:
        if arr.dtype != bool:
            if not np.issubdtype(arr.dtype, np.number):
                raise TypeError(f"{name} must be a boolean mask; got dtype {arr.dtype}.")
            arr = arr != 0
        return arr
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values.")
    return arr


def _low_gradient(emb, fg_idx, fraction):
    """Boolean over the foreground pixels ``fg_idx`` (flat indices, a tensor on ``emb``'s device): the
    ``fraction`` of them (at least one) where the embedding changes least from pixel to pixel; ties kept.

    The change at a pixel is the mean squared difference to its 4-neighbours that are foreground too:
    outside the foreground a network trained on foreground pixels predicts freely, and a difference
    taken across the foreground's edge would rank every edge pixel as changing fast. A pixel with no
    foreground neighbour changes infinitely fast: it never seeks, unless no pixel has one (then all
    seek); the fraction is taken of all foreground pixels but selects among those with a neighbour.
    """
    _, h, w = emb.shape
    fg = torch.zeros(h * w, dtype=torch.bool, device=emb.device)
    fg[fg_idx] = True
    fg = fg.view(h, w)
    total = torch.zeros((h, w), dtype=emb.dtype, device=emb.device)
    count = torch.zeros((h, w), dtype=emb.dtype, device=emb.device)
    for axis, n in ((0, h), (1, w)):
        if n < 2:
            continue
        both = fg.narrow(axis, 0, n - 1) & fg.narrow(axis, 1, n - 1)
        diff = (emb.narrow(axis + 1, 1, n - 1) - emb.narrow(axis + 1, 0, n - 1)).square_().sum(0)
        diff = torch.where(both, diff, 0.0)  # not a product: a huge background value would give inf * 0
        for start in (0, 1):  # a difference belongs to both of its pixels
            total.narrow(axis, start, n - 1).add_(diff)
            count.narrow(axis, start, n - 1).add_(both.to(emb.dtype))
    sq = (total / count).reshape(-1)[fg_idx].cpu()  # 0 / 0 -> NaN: no foreground neighbour
    finite = torch.isfinite(sq)
    n_finite = int(finite.sum())
    if n_finite == 0:
        return np.ones(sq.numel(), dtype=bool)
    k = min(n_finite, max(1, int(np.ceil(fraction * sq.numel()))))
    return (finite & (sq <= torch.kthvalue(sq[finite], k).values)).numpy()


def cluster_embeddings(
    embedding,
    foreground=None,
    bandwidth=0.5,
    *,
    kernel="flat",
    metric="euclidean",
    seeds="bin_mean",
    min_size=10,
    split_components=False,
    merge_small=False,
    fg_prob=None,
    core_threshold=None,
    core_fraction=None,
    max_points=20000,
    coarse_to_fine=True,
    device=None,
    random_state=0,
):
    """Instance label map from a predicted embedding by mean-shift clustering.

    The foreground pixels' embeddings are clustered by :func:`mean_shift`;
    each cluster becomes an instance. Then, in this order: clusters are
    optionally split into connected components, instances smaller than
    ``min_size`` pixels are removed (or merged into a touching instance),
    ids are made consecutive, and every
    instance gets a confidence score (see
    :func:`harmonic_seg.postprocess.instance_scores`).

    Parameters
    ----------
    embedding : array-like or torch.Tensor of shape (N, H, W)
        Predicted embedding (finite values).
    foreground : array-like of shape (H, W) or None, default=None
        Boolean foreground mask (non-zero = foreground); None = every pixel.
    bandwidth : float, default=0.5
        Mean-shift bandwidth, the margin eps of the guide functions.
    kernel : {"flat", "gaussian"}, default="flat"
    metric : {"euclidean", "l1"}, default="euclidean"
        See :func:`mean_shift`; "euclidean" reproduces scikit-learn's
        ``MeanShift`` used by the reference implementation, "l1" is the
        distance of the paper's separation margin.
    seeds : {"bin", "bin_mean"}, array-like or None, default="bin_mean"
        "bin_mean" (centroids of the occupied grid cells) needs several times
        fewer shift steps than scikit-learn's "bin" (grid points) on 12-D
        embeddings, for the same clusters (see the benchmark).
    min_size : int, default=10
        Instances with fewer pixels are set to background.
    split_components : bool, default=False
        Split every cluster into its 4-connected components first.
    fg_prob : array-like of shape (H, W) or None, default=None
        Foreground probability, used by the scores (None = 1) and by
        ``core_threshold``.
    merge_small : bool, default=False
        Instead of removing the instances smaller than ``min_size``, give
        their pixels to a touching larger instance
        (:func:`harmonic_seg.postprocess.merge_small_instances`); only those
        touching none are removed. Suited to a given foreground, every pixel
        of which belongs to some instance.
    core_threshold : float or None, default=None
        When given (with ``fg_prob``), only the foreground pixels whose
        probability is at least this take part in the mode search; every
        foreground pixel is then assigned to its nearest mode. Pixels on the
        border between two touching instances, whose predicted embeddings
        blend both, then cannot bridge their modes. When no pixel reaches
        the threshold, every foreground pixel searches. None: every
        foreground pixel searches (the paper).
    core_fraction : float in (0, 1] or None, default=None
        When given, only this fraction of the foreground pixels, those where
        the embedding changes least from pixel to pixel (smallest mean squared
        difference to the 4-neighbours that are foreground too: what is
        predicted outside the foreground does not count), take part in the
        mode search;
        every foreground pixel is then assigned to its nearest mode. Where two
        instances touch, an embedding predicted at a lower resolution and
        brought back to full size, or a blurred prediction, blends both over a
        band of pixels; those pixels can form modes of their own (fragments)
        or bridge two modes. Unlike ``core_threshold`` this needs no
        foreground probability and also finds borders inside the foreground.
        With both, a pixel searches if it passes both (if none does, the
        probability core alone). None or 1: no selection by gradient. The
        fraction is counted over the whole image: a small instance all of
        whose pixels change fast has no pixel that seeks and is given to
        another instance's mode.
    max_points : int or None, default=20000
        Size of the random subsample used for the mode search.
    coarse_to_fine : bool, default=True
        See :func:`mean_shift`. ``max_points=None, coarse_to_fine=False,
        seeds="bin"`` is the exact mode: scikit-learn's clustering (ARI 1.000
        on predicted embeddings in docs/benchmarks.md), several times slower.
    device : str, torch.device or None, default=None
    random_state : int, RandomState instance or None, default=0

    Returns
    -------
    labels : ndarray of shape (H, W), int32
        0 = background, instances 1..K.
    scores : ndarray of shape (K,), float64
        ``scores[i]`` is the confidence of instance ``i + 1``: mean ``fg_prob``
        over the instance times the fraction of its pixels whose embedding is
        within ``bandwidth`` of the instance's cluster mode.

    Notes
    -----
    Empty foreground gives an all-zero map and empty scores; a foreground of
    fewer than ``min_size`` pixels, too.
    """
    check_positive(bandwidth, "bandwidth")
    check_positive(min_size, "min_size", integer=True, allow_zero=True)
    if core_fraction is not None and (
        isinstance(core_fraction, bool)
        or not isinstance(core_fraction, (int, float, np.integer, np.floating))
        or not 0 < core_fraction <= 1
    ):
        raise ValueError(f"core_fraction must be a fraction in (0, 1] or None; got {core_fraction!r}.")
    if core_threshold is not None:
        check_positive(core_threshold, "core_threshold", allow_zero=True)
        if core_threshold > 1:
            raise ValueError(f"core_threshold must be a probability in [0, 1] or None; got {core_threshold!r}.")
        if fg_prob is None:
            raise ValueError("core_threshold needs fg_prob (the foreground probability map); got fg_prob=None.")
    _check_choice(kernel, "kernel", KERNELS)
    _check_choice(metric, "metric", METRICS)
    dev = _resolve_device(device, embedding)
    emb = _check_embedding(embedding, dev)
    n_dims, h, w = emb.shape
    fg = np.ones((h, w), dtype=bool) if foreground is None else _check_mask(foreground, "foreground", (h, w))
    prob = None if fg_prob is None else _check_mask(fg_prob, "fg_prob", (h, w), dtype=float)
    out = np.zeros(h * w, dtype=np.int32)
    fg_idx = np.flatnonzero(fg)
    if fg_idx.size == 0:
        return out.reshape(h, w), np.zeros(0, dtype=np.float64)
    fg_idx_t = torch.from_numpy(fg_idx).to(dev)
    points = emb.reshape(n_dims, h * w)[:, fg_idx_t].T.contiguous()
    core = None
    if core_threshold is not None:
        core = prob.ravel()[fg_idx] >= core_threshold
        core = core if core.any() else None
    if core_fraction is not None and core_fraction < 1:
        smooth = _low_gradient(emb, fg_idx_t, core_fraction)
        core = smooth if core is None else (core & smooth if (core & smooth).any() else core)
    search = points if core is None else points[torch.from_numpy(core).to(dev)]
    res = _mean_shift(
        search, bandwidth, kernel=kernel, metric=metric, seeds=seeds, max_points=max_points,
        coarse_to_fine=coarse_to_fine, device=dev, random_state=random_state, name="embedding",
    )
    assigned, dist = (res.labels, res.dist) if search is points else _assign(points, res.centers, metric)
    labels = assigned.cpu().numpy()
    within = (dist <= bandwidth).cpu().numpy()
    out[fg_idx] = labels + 1
    out = out.reshape(h, w)
    cluster_of = np.arange(res.centers.shape[0] + 1)  # instance id -> cluster id + 1
    if split_components:
        comp = pp.split_into_components(out)
        cluster_of = np.zeros(int(comp.max()) + 1, dtype=np.int64)
        cluster_of[comp.ravel()] = out.ravel()
        out = comp
    if min_size > 1:
        out = (pp.merge_small_instances if merge_small else pp.remove_small_instances)(out, min_size)
    out, ids = pp.relabel_sequential(out, return_ids=True)
    k = ids.size
    if k == 0:
        return out, np.zeros(0, dtype=np.float64)
    inst = out.ravel()[fg_idx]  # instance id (0 = removed) of every foreground pixel
    keep = inst > 0
    scores = pp._membership_scores(inst[keep] - 1, within[keep], None if prob is None else prob.ravel()[fg_idx][keep], k)
    logger.debug("cluster_embeddings: %d foreground pixels -> %d instances (modes of %s)", fg_idx.size, k, cluster_of[ids])
    return out, scores
