"""Instance label maps from predicted embeddings by mean-shift clustering.

At test time the embedding network predicts an N-dimensional embedding at
every pixel; instances are the modes of the foreground embeddings found by
mean-shift clustering with bandwidth equal to the margin eps (paper, sec. 3.3).
:func:`cluster_embeddings` checks its inputs, clusters the foreground
embeddings with the torch mean shift of :mod:`harmonic_seg.clustering.meanshift` and
cleans the cluster map and scores the instances with
:mod:`harmonic_seg.postprocess`. With ``recovery="split"`` (the default) the
mean shift runs within each connected component of the foreground and a
component is split only where its embedding shows distinct modes
(:func:`harmonic_seg.postprocess.split_at_modes`), so the result starts from
the connected components of the foreground and the embedding may only add.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch

from .. import postprocess as pp
from .._validation import _describe, check_positive
from ._options import RECOVERIES
from ._meanshift_ops import _assign
from ._segmented import modes_per_component
from .meanshift import _DTYPE, KERNELS, METRICS, _check_choice, _mean_shift, _resolve_device

__all__ = ["cluster_embeddings", "RECOVERIES"]

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
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        if arr.ndim == 3 and not np.isfinite(arr).all():  # numpy: one thread, fast on a busy CPU
            raise ValueError(f"embedding must hold finite values; got {int((~np.isfinite(arr)).sum())} NaN or "
                             "infinite value(s).")
        t = torch.from_numpy(arr)
    if t.ndim != 3 or min(t.shape) == 0:
        raise ValueError(f"embedding must have shape (N, H, W) with N, H, W >= 1; got shape {tuple(t.shape)}.")
    t = t.to(device=device, dtype=_DTYPE)
    if isinstance(embedding, torch.Tensor) and not bool(torch.isfinite(t).all()):
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
    ``fraction`` of them (at least one) where the embedding changes least from pixel to pixel; ties kept."""
    return _lowest(_gradient_change(emb, fg_idx), fraction)


def _gradient_change(emb, fg_idx):
    """How fast the embedding changes at each foreground pixel ``fg_idx`` (a CPU tensor; NaN: no neighbour).

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
    return (total / count).reshape(-1)[fg_idx].cpu()  # 0 / 0 -> NaN: no foreground neighbour


def _lowest(sq, fraction):
    """The ``fraction`` of the values ``sq`` (a CPU tensor, NaN: no neighbour) that are lowest, ties kept."""
    finite = torch.isfinite(sq)
    n_finite = int(finite.sum())
    if n_finite == 0:
        return np.ones(sq.numel(), dtype=bool)
    k = min(n_finite, max(1, int(np.ceil(fraction * sq.numel()))))
    return (finite & (sq <= torch.kthvalue(sq[finite], k).values)).numpy()


@dataclass
class _Modes:
    """The mode search of one image: what the minimum size, the rules and the scores need."""

    shape: tuple
    fg_idx: np.ndarray  # (P,) flat indices of the foreground pixels
    mode: np.ndarray | None  # (P,) int64 mode of every foreground pixel (None: "components")
    n_modes: int
    within: np.ndarray | None  # (P,) bool: embedding within the bandwidth of the pixel's mode
    prob: np.ndarray | None  # (P,) foreground probability (None = 1)
    embedding: np.ndarray | None  # (N, H, W) float32, a view of the checked embedding ("split", "components")
    points: np.ndarray | None  # (P, N) float32 embeddings of the foreground pixels ("split", "components": scores)
    recovery: str = "split"
    bandwidth: float = 0.5
    metric: str = "euclidean"
    cache: dict = field(default_factory=dict)  # labellings shared by every minimum size and share (tuning)


class _ComponentOffsets:
    """Moves the embeddings of every component far from all others' (in place of extra coordinates).

    Component ``c`` is written in base ``B`` with one digit per embedding dimension ``d < k``; its
    points move by ``digit_d(c) * step_d`` along dimension ``d``, ``step_d = span_d + gap`` (``span_d``:
    the extent of all embeddings along ``d``). Two components differ by at least one digit, so their
    points lie at least ``gap`` apart. ``gap`` is the diameter of all the embeddings (in the metric)
    plus two windows: no window and no seed cell holds points of two components, and every pixel is
    nearer to any mode of its own component (within the component's hull) than to another's. Distances
    within a component do not change and, unlike appended coordinates, the mean shift keeps its N
    dimensions (no extra cost). ``B`` keeps the moved values below ``150 * bandwidth``, where float32
    distances within a window stay exact to about 0.1 %.
    """

    def __init__(self, points, n_comps, bandwidth, metric):
        n_dims = points.shape[1]
        self.lo = points.min(0).astype(np.float64)
        span = points.max(0).astype(np.float64) - self.lo
        reach = float(span.sum() if metric == "l1" else np.sqrt((span * span).sum()))
        gap = reach + 2.0 * bandwidth
        base = max(2, int(150.0 * bandwidth // (float(span.max()) + gap)))
        k = max(1, int(np.ceil(np.log(max(n_comps, 2)) / np.log(base))))
        if k > n_dims:  # too few dimensions for the digits: a larger base (the values grow)
            base, k = int(np.ceil(n_comps ** (1.0 / n_dims))) + 1, n_dims
        self.base, self.k, self.gap = base, k, gap
        self.step = span[:k] + gap  # (k,)
        self.digits = (np.arange(n_comps)[:, None] // base ** np.arange(k)) % base  # (n_comps, k)
        self.offset = (self.digits * self.step).astype(np.float32)

    def move(self, points, comp):
        out = points.copy()
        out[:, : self.k] += self.offset[comp]
        return out

    def component_of(self, centers):
        """The component of every mode (centers in moved coordinates, numpy (K, N))."""
        # a component's values along d lie in [digit * step + lo, digit * step + lo + span], span = step - gap:
        # half a gap below and above them is still the same digit (float32 rounding stays far inside)
        digits = np.floor((centers[:, : self.k] - self.lo[: self.k] + 0.5 * self.gap) / self.step).astype(np.int64)
        return (np.clip(digits, 0, self.base - 1) * self.base ** np.arange(self.k)).sum(1)


def _distance_to_mean(points, idx, k, metric):
    """Distance of every point (P, N), C-contiguous, to the mean of its group ``idx`` (0..k-1)."""
    count = np.maximum(np.bincount(idx, minlength=k), 1)
    means = np.stack([np.bincount(idx, weights=col, minlength=k) for col in points.T], 1) / count[:, None]
    diff = points - means.astype(points.dtype)[idx]
    return np.abs(diff).sum(1) if metric == "l1" else np.sqrt(np.einsum("ij,ij->i", diff, diff))


def _core(p, change, core_threshold, core_fraction):
    """Which pixels seek modes (None: all): probability at least ``core_threshold`` and the ``core_fraction``
    of lowest embedding change ``change``; a rule that would leave no pixel is dropped."""
    core = None
    if core_threshold is not None:
        core = p >= core_threshold
        core = core if core.any() else None
    if change is not None:
        smooth = _lowest(change, core_fraction)
        core = smooth if core is None else (core & smooth if (core & smooth).any() else core)
    return core


def _find_modes(
    emb, fg, prob, bandwidth, *, recovery, kernel, metric, seeds, core_threshold, core_fraction, max_points,
    coarse_to_fine, random_state,
):
    """Mode of every foreground pixel of a checked embedding tensor ``emb`` (N, H, W) and mask ``fg``.

    "split" runs one mean shift over the foreground pixels with every component's embeddings moved far
    from the others' (:class:`_ComponentOffsets`), so that no window, seed cell or mode mixes two
    components; a component with no mode (none of its pixels in the subsample or the core) gets a mode
    of its own.
    """
    n_dims, h, w = emb.shape
    dev = emb.device
    fg_idx = np.flatnonzero(fg)
    p = None if prob is None else prob.ravel()[fg_idx]
    if fg_idx.size == 0:
        return _Modes((h, w), fg_idx, np.zeros(0, np.int64), 0, None, p, None, None, recovery, bandwidth, metric)
    if recovery == "components":
        emb_np = emb.cpu().numpy()
        points = np.ascontiguousarray(emb_np.reshape(n_dims, h * w)[:, fg_idx].T)
        return _Modes((h, w), fg_idx, None, 0, None, p, emb_np, points, recovery, bandwidth, metric)
    fg_idx_t = torch.from_numpy(fg_idx).to(dev)
    change = None
    if core_fraction is not None and core_fraction < 1:
        change = _gradient_change(emb, fg_idx_t)
    core = _core(p, change, core_threshold, core_fraction)
    if recovery == "mean_shift":
        points = emb.reshape(n_dims, h * w)[:, fg_idx_t].T.contiguous()
        search = points if core is None else points[torch.from_numpy(core).to(dev)]
        res = _mean_shift(
            search, bandwidth, kernel=kernel, metric=metric, seeds=seeds, max_points=max_points,
            coarse_to_fine=coarse_to_fine, device=dev, random_state=random_state, name="embedding",
        )
        assigned, dist = (res.labels, res.dist) if search is points else _assign(points, res.centers, metric)
        return _Modes((h, w), fg_idx, assigned.cpu().numpy(), int(res.centers.shape[0]),
                      (dist <= bandwidth).cpu().numpy(), p, None, None, recovery, bandwidth, metric)
    from skimage.measure import label as sk_label

    comps = sk_label(fg, connectivity=1)
    comp = comps.ravel()[fg_idx].astype(np.int64) - 1
    n_comps = int(comps.max())
    emb_np = emb.cpu().numpy()
    points = np.ascontiguousarray(emb_np.reshape(n_dims, h * w)[:, fg_idx].T)  # numpy, one thread: small steps
    n_search = fg_idx.size if core is None else int(core.sum())
    if n_comps > 1 and max_points is not None and n_search > max_points:
        ms = dict(kernel=kernel, metric=metric, seeds=seeds, max_points=max_points, coarse_to_fine=coarse_to_fine,
                  device=dev, random_state=random_state, name="embedding")
        mode, n_modes = modes_per_component(points, comp, n_comps, p, change, core_threshold, core_fraction,
                                             bandwidth, ms)
        return _Modes((h, w), fg_idx, mode, n_modes, None, p, emb_np, points, recovery, bandwidth, metric)
    moved = _ComponentOffsets(points, n_comps, bandwidth, metric) if n_comps > 1 else None
    pts = torch.from_numpy(points if moved is None else moved.move(points, comp)).to(dev)
    search = pts if core is None else pts[torch.from_numpy(core).to(dev)]
    res = _mean_shift(
        search, bandwidth, kernel=kernel, metric=metric, seeds=seeds, max_points=max_points,
        coarse_to_fine=coarse_to_fine, device=dev, random_state=random_state, name="embedding",
    )
    assigned = (res.labels if search is pts else _assign(pts, res.centers, metric)[0]).cpu().numpy()
    n_modes = int(res.centers.shape[0])
    if moved is None:
        mode = assigned
    else:  # a component without a mode of its own (none of its pixels in the sample or core): one mode
        own = moved.component_of(res.centers.cpu().numpy())[assigned] == comp
        mode = assigned if own.all() else np.where(own, assigned, n_modes + comp)
        n_modes += 0 if own.all() else n_comps
    within = None  # "split" scores by the distance to the instance's mean
    return _Modes((h, w), fg_idx, mode, n_modes, within, p, emb_np, points, recovery, bandwidth, metric)


def _near_instance_mean(points, idx, k, bandwidth, metric):
    """Whether each point (P, N) lies within ``bandwidth`` of the mean of its instance ``idx`` (0..k-1)."""
    return _distance_to_mean(points, idx, k, metric) <= bandwidth


def _relabel(out):
    """Consecutive ids 1..K in increasing order of the ids of ``out`` (int32) and those ids."""
    present = np.bincount(out.ravel()) > 0
    present[0] = False
    ids = np.flatnonzero(present)
    lut = np.zeros(present.size, dtype=np.int32)
    lut[ids] = np.arange(1, ids.size + 1, dtype=np.int32)
    return lut[out], ids


def _on_foreground(out, fg_idx, min_size):
    """The ids of the foreground pixels ``fg_idx`` of the label map ``out``, whose instances all lie there, with
    the instances smaller than ``min_size`` removed (``min_size`` None: none) and the others numbered 1..K.

    Works on the foreground pixels only (a few percent of a large image, where the objects are small).
    """
    vals = out.ravel()[fg_idx]
    if min_size is not None and min_size > 1:
        small = np.bincount(vals) < min_size
        small[0] = False
        if small.any():
            vals = np.where(small[vals], 0, vals)
    return _relabel(vals)


def _instances(m, *, min_size, min_share=pp.MIN_SHARE, split_components=False, merge_small=False, scores=True,
               score_window=None):
    """Label map and scores from the modes ``m`` of :func:`_find_modes`: rules, minimum size, ids, scores.

    The labellings of the mode map are kept in ``m.cache``: the tuning finishes one mode search at many
    minimum sizes and shares. ``scores=False`` returns None for the scores (the tuning scores label maps).
    ``score_window``: the (bandwidth, metric) the scores of "split" and "components" measure the nearness
    to an instance's mean with (None: the mode search's), so that the same instances score the same
    whichever window and recovery found them.
    """
    recovery, bandwidth, metric = m.recovery, m.bandwidth, m.metric
    h, w = m.shape
    out = np.zeros(h * w, dtype=np.int32)
    if m.fg_idx.size == 0:
        return out.reshape(h, w), np.zeros(0, dtype=np.float64)
    if recovery == "mean_shift":
        out[m.fg_idx] = m.mode + 1
        out = out.reshape(h, w)
        if split_components:
            out = pp.split_into_components(out)
        if min_size > 1:
            out = (pp.merge_small_instances if merge_small else pp.remove_small_instances)(out, min_size)
    else:
        if recovery == "split":
            if "pieces" not in m.cache:
                out[m.fg_idx] = m.mode + 1
                m.cache["pieces"] = pp._Pieces(out.reshape(h, w), m.points)
            out = m.cache["pieces"].split(bandwidth, min_share, min_size, metric)
        else:
            if "components" not in m.cache:
                out[m.fg_idx] = 1
                m.cache["components"] = pp.split_into_components(out.reshape(h, w))
            out = m.cache["components"]
    # instance id (0 = removed) of every foreground pixel; with "split" and "components" whole components
    # smaller than min_size go (a split never leaves a smaller piece)
    inst, ids = _on_foreground(out, m.fg_idx, None if recovery == "mean_shift" else min_size)
    out = np.zeros(h * w, dtype=np.int32)
    out[m.fg_idx] = inst
    out = out.reshape(h, w)
    k = ids.size
    if not scores or k == 0:
        return out, (np.zeros(0, dtype=np.float64) if scores else None)
    keep = inst > 0
    idx = inst[keep] - 1
    if recovery == "mean_shift":  # within the bandwidth of the pixel's own cluster mode
        within = m.within[keep]
    else:  # of its instance's mean embedding: an instance that joins distinct embeddings scores low
        bw, dist = (bandwidth, metric) if score_window is None else score_window
        within = _near_instance_mean(m.points[keep], idx, k, bw, dist)
    scores = pp._membership_scores(idx, within, None if m.prob is None else m.prob[keep], k)
    logger.debug("cluster_embeddings (%s): %d foreground pixels, %d modes -> %d instances", recovery, m.fg_idx.size,
                 m.n_modes, k)
    return out, scores


def cluster_embeddings(
    embedding,
    foreground=None,
    bandwidth=0.5,
    *,
    recovery="split",
    kernel="flat",
    metric="euclidean",
    seeds="bin_mean",
    min_size=10,
    min_share=pp.MIN_SHARE,
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

    With ``recovery="split"`` (the default) the instances start as the
    4-connected components of the foreground and the embedding may only add:
    the foreground pixels' embeddings are clustered by :func:`mean_shift`
    within each component (one mean shift over all of them, each
    component's embeddings moved far from the others', so no window mixes
    two components),
    and a component is split only where it holds distinct modes, each with
    at least ``min_size`` pixels and ``min_share`` times the pixels of the
    component's largest region of one mode, whose mean embeddings lie at
    least ``bandwidth`` apart; the other pixels join the
    nearest such region through the component (the rules:
    :func:`harmonic_seg.postprocess.split_at_modes`). Components smaller than
    ``min_size`` are then removed. ``recovery="components"`` returns the
    components alone; ``recovery="mean_shift"`` clusters all foreground
    pixels at once, each cluster an instance (the paper, and this function
    before the default changed), then, in this order: clusters are optionally
    split into connected components, instances smaller than ``min_size``
    pixels are removed (or merged into a touching instance). In every case
    ids are then made consecutive and every instance gets a confidence score
    (see :func:`harmonic_seg.postprocess.instance_scores`).

    Parameters
    ----------
    embedding : array-like or torch.Tensor of shape (N, H, W)
        Predicted embedding (finite values).
    foreground : array-like of shape (H, W) or None, default=None
        Boolean foreground mask (non-zero = foreground); None = every pixel.
    bandwidth : float, default=0.5
        Mean-shift bandwidth, the margin eps of the guide functions; with
        ``recovery="split"`` also the smallest distance between the mean
        embeddings of two regions that splits a component.
    recovery : {"split", "components", "mean_shift"}, default="split"
        See above. On separate, compact objects (nuclei) "mean_shift" can cut
        one object into fragments and score below the connected components
        of the same foreground; "split" starts from them.
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
        Instances with fewer pixels are set to background; with
        ``recovery="split"`` also the fewest pixels of a region that splits
        a component.
    min_share : float in [0, 1], default=0.1
        ``recovery="split"``: the smallest size, relative to the component's
        largest region of one mode, of a region that splits the component.
    split_components : bool, default=False
        Split every cluster into its 4-connected components first
        (``recovery="mean_shift"``; the other recoveries give connected
        instances).
    fg_prob : array-like of shape (H, W) or None, default=None
        Foreground probability, used by the scores (None = 1) and by
        ``core_threshold``.
    merge_small : bool, default=False
        ``recovery="mean_shift"``: instead of removing the instances smaller
        than ``min_size``, give
        their pixels to a touching larger instance
        (:func:`harmonic_seg.postprocess.merge_small_instances`); only those
        touching none are removed. Suited to a given foreground, every pixel
        of which belongs to some instance. ("split" always gives the small
        regions of a component to a touching instance.)
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
        another instance's mode (with "split", a component none of whose
        pixels seeks stays whole).
    max_points : int or None, default=20000
        Most pixels one mode search takes. ``recovery="mean_shift"``: the
        size of the random subsample of the foreground. ``recovery="split"``:
        up to this many searching pixels, one search over all of them; above,
        one search per connected component with all of its pixels (a
        component with more: its own random subsample of this size), so that
        a component's instances do not depend on the rest of the image.
        None: one search over every pixel.
    coarse_to_fine : bool, default=True
        See :func:`mean_shift`. ``max_points=None, coarse_to_fine=False,
        seeds="bin"`` is the exact mode: scikit-learn's clustering, several
        times slower.
    device : str, torch.device or None, default=None
    random_state : int, RandomState instance or None, default=0

    Returns
    -------
    labels : ndarray of shape (H, W), int32
        0 = background, instances 1..K.
    scores : ndarray of shape (K,), float64
        ``scores[i]`` is the confidence of instance ``i + 1``: mean ``fg_prob``
        over the instance times the fraction of its pixels whose embedding is
        within ``bandwidth`` of the instance's mean embedding
        (:func:`harmonic_seg.postprocess.instance_scores`: an instance that
        joins distinct embeddings, such as two merged objects, scores low);
        with ``recovery="mean_shift"``, within ``bandwidth`` of their cluster
        mode.

    Notes
    -----
    Empty foreground gives an all-zero map and empty scores; a foreground of
    fewer than ``min_size`` pixels, too.
    """
    return _cluster_embeddings(
        embedding, foreground, bandwidth, recovery=recovery, kernel=kernel, metric=metric, seeds=seeds,
        min_size=min_size, min_share=min_share, split_components=split_components, merge_small=merge_small,
        fg_prob=fg_prob, core_threshold=core_threshold, core_fraction=core_fraction, max_points=max_points,
        coarse_to_fine=coarse_to_fine, device=device, random_state=random_state,
    )


def _cluster_embeddings(embedding, foreground, bandwidth, *, recovery, kernel, metric, seeds, min_size, min_share,
                        split_components, merge_small, fg_prob, core_threshold, core_fraction, max_points,
                        coarse_to_fine, device, random_state, score_window=None):
    """:func:`cluster_embeddings`, with the window of the scores (:func:`_instances`)."""
    check_positive(min_size, "min_size", integer=True, allow_zero=True)
    pp._check_min_share(min_share)
    modes = _modes(
        embedding, foreground, bandwidth, recovery=recovery, kernel=kernel, metric=metric, seeds=seeds,
        fg_prob=fg_prob, core_threshold=core_threshold, core_fraction=core_fraction, max_points=max_points,
        coarse_to_fine=coarse_to_fine, device=device, random_state=random_state,
    )
    return _instances(modes, min_size=min_size, min_share=min_share, split_components=split_components,
                      merge_small=merge_small, score_window=score_window)


def _checked_prediction(embedding, fg_prob, device=None):
    """One prediction checked once for the many mode searches of a tuning: the embedding as a float32 tensor
    on ``device``, the foreground probability as float64 (H, W), and ``fg_prob`` as given (thresholds compare
    in its dtype)."""
    emb = _check_embedding(embedding, _resolve_device(device, embedding))
    return emb, _check_mask(fg_prob, "fg_prob", tuple(emb.shape[1:]), dtype=float), np.asarray(fg_prob)


def _checked_modes(pred, threshold, bandwidth, *, recovery, metric, core_threshold, core_fraction):
    """:func:`_modes` of a prediction of :func:`_checked_prediction` at a foreground threshold; the parameters
    are valid (the caller checked them once)."""
    emb, prob, given = pred
    return _find_modes(
        emb, given > threshold, prob, float(bandwidth), recovery=recovery, kernel="flat", metric=metric,
        seeds="bin_mean", core_threshold=core_threshold, core_fraction=core_fraction, max_points=20000,
        coarse_to_fine=True, random_state=0,
    )


def _modes(
    embedding, foreground=None, bandwidth=0.5, *, recovery="split", kernel="flat", metric="euclidean",
    seeds="bin_mean", fg_prob=None, core_threshold=None, core_fraction=None, max_points=20000,
    coarse_to_fine=True, device=None, random_state=0,
):
    """The checked mode search of :func:`cluster_embeddings`; :func:`_instances` finishes it (at any
    minimum size: the tuning searches once per setting and tries every size on the result)."""
    check_positive(bandwidth, "bandwidth")
    _check_choice(recovery, "recovery", RECOVERIES)
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
    _, h, w = emb.shape
    fg = np.ones((h, w), dtype=bool) if foreground is None else _check_mask(foreground, "foreground", (h, w))
    prob = None if fg_prob is None else _check_mask(fg_prob, "fg_prob", (h, w), dtype=float)
    return _find_modes(
        emb, fg, prob, float(bandwidth), recovery=recovery, kernel=kernel, metric=metric, seeds=seeds,
        core_threshold=core_threshold, core_fraction=core_fraction, max_points=max_points,
        coarse_to_fine=coarse_to_fine, random_state=random_state,
    )
