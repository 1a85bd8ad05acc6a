"""Fast mean-shift clustering in torch, and clustering of predicted embeddings.

At test time the embedding network predicts an N-dimensional embedding at
every pixel; instances are the modes of the foreground embeddings found by
mean-shift clustering with bandwidth equal to the margin eps (paper, sec. 3.3).
:class:`sklearn.cluster.MeanShift` does this one seed at a time with a
ball-tree query per step, which takes seconds to minutes per image. This
module implements the same algorithm with every seed shifted at once:

* **Seeding** (``seeds="bin"``) exactly as scikit-learn's ``bin_seeding``:
  points are binned on a grid of cell size ``bin_size`` (default: the
  bandwidth, as scikit-learn does), every cell holding at least
  ``min_bin_freq`` points gives one seed at the cell's grid point (if there
  are as many cells as points, the points themselves are the seeds).
  ``seeds="bin_mean"`` puts the seed at the *centroid* of the cell's points
  instead, which never starts a seed in empty space (useful in high
  dimension, where a grid point can be farther than the bandwidth from all
  the points of its cell).
* **Shifting**: all still-moving seeds are updated together, batched over
  seeds (``batch_size``) and chunked over points so that one
  (seeds x points) block holds at most 2**19 numbers on the CPU (2 MB,
  cache-resident; 2**24 on a GPU), so memory stays far below 200 MB, with
  matrix products doing the work (flat L2 kernel: the block
  ``||x||^2 - 2 c.x`` is thresholded in place and multiplied by ``[X, 1]``,
  giving sums and counts at once). A seed stops when it moves by
  ``<= tol * bandwidth`` (scikit-learn's criterion) or after ``max_iter``
  steps; a seed with no point within the bandwidth is dropped, as in
  scikit-learn. Seeds that land on the same position (same cell of a grid of
  size ``tol * bandwidth``) follow the same path afterwards and are
  de-duplicated.
* **Coarse to fine** (``coarse_to_fine=True``): the seeds are first shifted
  to convergence on nested random subsets of the points, each 8 times
  smaller (down to 1000 points), then on all of them. On the small subsets
  most seeds reach the same few modes and are de-duplicated, so only about
  one seed per mode remains for the expensive steps on all points; the
  result is a mode of the full point set (convergence is tested on it). A
  seed with no point of a coarse subset in its window waits, unmoved, for
  the next level. Flat-kernel mean shift can stop on a plateau, so the modes
  reached can differ slightly from those of scikit-learn's single-level
  paths (ARI >= 0.99 against scikit-learn in the benchmark).
* **Merging** (``merge=True``): modes are sorted by the number of points
  within the bandwidth at their last step (ties: lexicographically larger
  first, as scikit-learn) and a mode is discarded when it lies within the
  bandwidth of a mode kept before it.
* **Assignment**: every point (all of them, also those left out of the mode
  search, see below) gets the label of its nearest mode (chunked argmin);
  with ``cluster_all=False`` points farther than the bandwidth from every mode
  get -1.

Subsampling
    When there are more than ``max_points`` points (default 20000) the seeding
    and the shift iterations use ``max_points`` points drawn at random without
    replacement (seeded by ``random_state``), which is the same as running
    scikit-learn on that sample; all points are then assigned to the nearest
    mode. An instance of ``n`` pixels keeps about ``n * max_points / P``
    pixels in the sample, so modes of instances that are not tiny are found
    as before; ``benchmarks/bench_meanshift.py`` measures the agreement with
    scikit-learn run on all points. ``max_points=None`` disables it.

Metric
    ``metric="euclidean"`` (default) is scikit-learn's: a point is within the
    bandwidth of a mode when their L2 distance is ``<= bandwidth``, and the
    shift is measured in L2. ``metric="l1"`` uses the L1 (city-block)
    distance for the kernel, the convergence test, the merge and the
    assignment; it is the distance in which the paper separates the
    embeddings of different instances by eps (eq. 4). Since
    ``||.||_2 <= ||.||_1``, two instances at L1 distance eps can be much closer
    than eps in L2 (down to ``eps / sqrt(N)``) and be merged by an L2 kernel of
    bandwidth eps, whereas an L1 kernel of the same bandwidth is more
    sensitive to embedding noise (the L1 norm of i.i.d. noise grows like N).

Kernel
    ``kernel="flat"``: the mean of the points within the bandwidth
    (scikit-learn's only kernel). ``kernel="gaussian"``: the mean of the
    points within the bandwidth weighted by ``exp(-d^2 / (2 sigma^2))`` with
    ``sigma = bandwidth / 2`` (``d`` in the chosen metric): a Gaussian
    truncated at two standard deviations. It has the same support as the flat
    kernel, so, like it, it never mixes points of modes more than a bandwidth
    apart (an untruncated Gaussian of standard deviation eps merges clusters
    eps apart: their mixture is unimodal), but it weights the core of a
    cluster more than its fringe (boundary pixels). The number of points
    within the bandwidth, used by the merge, is the same as for the flat
    kernel.

Computations are in float32 on ``device`` (default: the device of a torch
input, else the CPU); results are numpy arrays.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from .._validation import _describe, check_positive

__all__ = ["mean_shift", "MeanShift", "cluster_embeddings"]

logger = logging.getLogger(__name__)

KERNELS = ("flat", "gaussian")
METRICS = ("euclidean", "l1")
_SEED_MODES = ("bin", "bin_mean")
#: Largest number of entries of one (seeds x points) block: 2 MB of float32 on the
#: CPU (cache-friendly; blocks are updated in place), 64 MB on a GPU.
_BLOCK_ELEMENTS = 1 << 19
_BLOCK_ELEMENTS_GPU = 1 << 24
#: Coarse-to-fine mode search: each coarser level has this many times fewer
#: points, and no level has fewer than _COARSE_MIN points.
_COARSE_FACTOR = 8
_COARSE_MIN = 1000
#: De-duplicate seeds only while at least this many are moving.
_DEDUPE_MIN_MOVING = 16
#: Above this many modes the merge computes distances one row at a time.
_DENSE_MERGE_MAX = 4096
_DTYPE = torch.float32
#: Gaussian kernel: exp(-d^2 / (2 sigma^2)) with sigma = bandwidth / 2, i.e. exp(-2 d^2 / bandwidth^2).
_GAUSS = -2.0


# --------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------
def _check_choice(value, name, choices):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {choices}; got {value!r}.")
    return value


def _resolve_device(device, *tensors):
    if device is None:
        for t in tensors:
            if isinstance(t, torch.Tensor):
                return t.device
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (TypeError, RuntimeError):
        raise ValueError(f"device must be None, a torch.device or a device string such as 'cpu' or 'cuda'; got {device!r}.") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device is {device!r} but CUDA is not available on this machine; use device='cpu'.")
    return dev


def _as_tensor(X, name, device):
    """2-D float32 tensor on ``device`` with finite values."""
    if isinstance(X, torch.Tensor):
        t = X.detach()
    else:
        if isinstance(X, (str, bytes)) or X is None:
            raise TypeError(f"{name} must be a 2-D array (n_points, n_features); got {_describe(X)}.")
        arr = np.asarray(X)
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool) or np.iscomplexobj(arr):
            raise TypeError(f"{name} must hold real numbers; got dtype {arr.dtype}.")
        if arr.dtype != np.float32:
            arr = arr.astype(np.float32)
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_points, n_features); got shape {tuple(t.shape)}.")
    if t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(f"{name} must hold at least one point with at least one feature; got shape {tuple(t.shape)}.")
    if t.is_complex():
        raise TypeError(f"{name} must hold real numbers; got dtype {t.dtype}.")
    t = t.to(device=device, dtype=_DTYPE)
    if not bool(torch.isfinite(t).all()):
        n_bad = int((~torch.isfinite(t)).sum())
        raise ValueError(f"{name} must hold finite values; got {n_bad} NaN or infinite value(s).")
    return t


def _check_params(bandwidth, kernel, metric, bin_size, min_bin_freq, max_iter, tol, max_points, batch_size):
    check_positive(bandwidth, "bandwidth")
    _check_choice(kernel, "kernel", KERNELS)
    _check_choice(metric, "metric", METRICS)
    if bin_size is not None:
        check_positive(bin_size, "bin_size")
    check_positive(min_bin_freq, "min_bin_freq", integer=True)
    check_positive(max_iter, "max_iter", integer=True, allow_zero=True)
    check_positive(tol, "tol", allow_zero=True)
    if max_points is not None:
        check_positive(max_points, "max_points", integer=True)
    check_positive(batch_size, "batch_size", integer=True)


# --------------------------------------------------------------------------
# building blocks
# --------------------------------------------------------------------------
def _bin_seeds(X, bin_size, min_bin_freq, centroid):
    """Seeds from a grid binning of ``X`` (scikit-learn's ``get_bin_seeds``).

    Returns the grid point (``centroid=False``) or the centroid of the points
    (``centroid=True``) of every cell with at least ``min_bin_freq`` points, in
    order of first appearance; ``X`` itself when every point has its own cell.
    """
    n, d = X.shape
    cells = torch.round(X / bin_size).to(torch.int64)
    mins = cells.min(0).values
    shifted = cells - mins
    extent = shifted.max(0).values + 1
    if float(torch.log2(extent.double()).sum()) < 62:  # one int64 key per cell
        mult = torch.cumprod(torch.cat([extent.new_ones(1), extent[:-1]]), 0)
        keys = (shifted * mult).sum(1)
        _, inv, counts = torch.unique(keys, return_inverse=True, return_counts=True)
    else:
        _, inv, counts = torch.unique(shifted, dim=0, return_inverse=True, return_counts=True)
    n_cells = counts.shape[0]
    if n_cells == n and min_bin_freq <= 1:
        logger.debug("binning with bin_size=%g gave one cell per point: using the points as seeds", bin_size)
        return X
    arange = torch.arange(n, device=X.device)
    first = torch.full((n_cells,), n, dtype=torch.int64, device=X.device).scatter_reduce(0, inv, arange, "amin")
    keep = torch.nonzero(counts >= min_bin_freq).squeeze(1)
    keep = keep[torch.argsort(first[keep])]
    if keep.numel() == n:
        return X
    if centroid:
        sums = torch.zeros((n_cells, d), dtype=X.dtype, device=X.device).index_add_(0, inv, X)
        return sums[keep] / counts[keep].unsqueeze(1).to(X.dtype)
    return cells[first[keep]].to(X.dtype) * bin_size


def _block_elements(device):
    """Entries of one (seeds x points) block: cache-sized on the CPU, large on a GPU."""
    return _BLOCK_ELEMENTS_GPU if device.type == "cuda" else _BLOCK_ELEMENTS


def _window_sums(C, X, Xaug, x2, bandwidth, kernel, metric):
    """Kernel-weighted sums of the points around each row of ``C``.

    Returns ``(sums (B, D), weight (B,), count (B,))`` with ``count`` the
    number of points within ``bandwidth`` (flat window).
    """
    b, d = C.shape
    n = X.shape[0]
    chunk = max(1, _block_elements(X.device) // b)
    acc = torch.zeros((b, d + 1), dtype=X.dtype, device=X.device)
    count = None if kernel == "flat" else torch.zeros(b, dtype=X.dtype, device=X.device)
    bw2 = bandwidth * bandwidth
    c2 = (C * C).sum(1)
    if metric == "euclidean":
        thr = (bw2 - c2).unsqueeze(1)  # ||x||^2 - 2 c.x <= bw^2 - ||c||^2
    for a in range(0, n, chunk):
        z = min(n, a + chunk)
        if metric == "euclidean":
            dist = torch.addmm(x2[a:z].unsqueeze(0), C, X[a:z].T, alpha=-2.0)
            if kernel == "flat":
                w = dist.le_(thr)  # in place: 1.0 inside the window, 0.0 outside
            else:
                inside = dist <= thr
                count += inside.sum(1).to(X.dtype)
                dist += c2.unsqueeze(1)
                w = torch.exp(dist.clamp_min_(0).mul_(_GAUSS / bw2)).mul_(inside)
        else:
            dist = torch.cdist(C, X[a:z], p=1)
            if kernel == "flat":
                w = dist.le_(bandwidth)
            else:
                inside = dist <= bandwidth
                count += inside.sum(1).to(X.dtype)
                w = torch.exp(dist.square_().mul_(_GAUSS / bw2)).mul_(inside)
        acc.addmm_(w, Xaug[a:z])
    weight = acc[:, d]
    return acc[:, :d], weight, (weight if count is None else count)


def _row_keys(rows):
    """One int64 per row of a integer matrix, equal for equal rows.

    Horner hash modulo the prime 2**49 - 81 with base 8191, computed without
    overflow; distinct rows collide with probability about 2**-49 per pair.
    """
    mod = (1 << 49) - 81
    rows = torch.remainder(rows, 8191)
    h = torch.zeros(rows.shape[0], dtype=torch.int64, device=rows.device)
    for j in range(rows.shape[1]):
        h = torch.remainder(h * 8191 + rows[:, j], mod)
    return h


def _dedupe(centers, alive, active, grid):
    """Drop seeds sitting on the same grid cell of size ``grid`` as another one.

    Converged seeds are preferred over moving ones, then lower indices.
    """
    idx = torch.nonzero(alive).squeeze(1)
    if idx.numel() < 2 or grid <= 0 or int(active.sum()) < _DEDUPE_MIN_MOVING:
        return  # few moving seeds: stepping them costs less than looking for duplicates
    idx = idx[torch.argsort(active[idx].to(torch.int8), stable=True)]
    keys = _row_keys(torch.round(centers[idx] / grid).to(torch.int64))
    _, inv = torch.unique(keys, return_inverse=True)
    m = idx.numel()
    first = torch.full((m,), m, dtype=torch.int64, device=idx.device).scatter_reduce(
        0, inv, torch.arange(m, device=idx.device), "amin"
    )
    keep = torch.zeros(m, dtype=torch.bool, device=idx.device)
    keep[first[first < m]] = True
    drop = idx[~keep]
    alive[drop] = False
    active[drop] = False


def _coarse_levels(X, random_state):
    """Nested random subsets of ``X``, coarse to fine, each ``_COARSE_FACTOR`` times smaller, ending with ``X``."""
    n = X.shape[0]
    sizes = []
    while n // _COARSE_FACTOR >= _COARSE_MIN:
        n //= _COARSE_FACTOR
        sizes.insert(0, n)
    if not sizes:
        return [X]
    perm = torch.from_numpy(_rng(random_state).permutation(X.shape[0])).to(X.device)
    return [X[perm[:m]] for m in sizes] + [X]


def _shift_seeds(levels, seeds, bandwidth, kernel, metric, max_iter, tol, batch_size):
    """Run mean shift from every seed; returns (centers, intensity, alive, n_iter).

    ``levels`` are point sets, coarse to fine; the seeds are shifted to
    convergence on each in turn, the result being that of the last (finest)
    one. On a coarse level, a seed with no point in its window stays where it
    is (it is only dropped when the finest level has no point in its window).
    """
    d = seeds.shape[1]
    dev = seeds.device
    dtype = seeds.dtype
    centers = seeds.clone()
    s = centers.shape[0]
    alive = torch.ones(s, dtype=torch.bool, device=dev)
    intensity = torch.zeros(s, dtype=dtype, device=dev)
    n_iter = torch.zeros(s, dtype=torch.int64, device=dev)
    stop = tol * bandwidth
    for level, X in enumerate(levels):
        last = level == len(levels) - 1
        n = X.shape[0]
        x2 = (X * X).sum(1)
        Xaug = torch.cat([X, torch.ones((n, 1), dtype=dtype, device=dev)], 1)
        active = alive.clone()
        for it in range(max_iter + 1):
            idx = torch.nonzero(active).squeeze(1)
            if idx.numel() == 0:
                break
            new = torch.empty((idx.numel(), d), dtype=dtype, device=dev)
            weight = torch.empty(idx.numel(), dtype=dtype, device=dev)
            count = torch.empty(idx.numel(), dtype=dtype, device=dev)
            for a in range(0, idx.numel(), batch_size):
                z = min(idx.numel(), a + batch_size)
                sums, weight[a:z], count[a:z] = _window_sums(
                    centers[idx[a:z]], X, Xaug, x2, bandwidth, kernel, metric
                )
                new[a:z] = sums
            empty = weight <= 0
            new /= weight.clamp_min(torch.finfo(dtype).tiny).unsqueeze(1)
            diff = new - centers[idx]
            shift = diff.abs().sum(1) if metric == "l1" else torch.linalg.vector_norm(diff, dim=1)
            done = (shift <= stop) | empty | (it == max_iter)
            ok = ~empty
            centers[idx[ok]] = new[ok]
            intensity[idx] = count
            if last:
                alive[idx[empty]] = False
            n_iter[idx[~done]] += 1
            active[idx[done]] = False
            _dedupe(centers, alive, active, stop)
    alive &= intensity > 0
    return centers, intensity, alive, int(n_iter.max()) if s else 0


def _pairwise(A, B, metric):
    if metric == "l1":
        return torch.cdist(A, B, p=1)
    d2 = torch.addmm((B * B).sum(1).unsqueeze(0), A, B.T, alpha=-2.0).add_((A * A).sum(1).unsqueeze(1))
    return d2.clamp_min_(0).sqrt_()


def _merge(centers, intensity, bandwidth, metric):
    """scikit-learn's post-processing: keep the densest mode of each bandwidth-neighbourhood."""
    k = centers.shape[0]
    c_np = centers.double().cpu().numpy()
    keys = tuple(c_np.T[::-1]) + (intensity.double().cpu().numpy(),)
    order = np.lexsort(keys)[::-1].copy()  # intensity desc, then centre tuple desc
    sorted_c = centers[torch.from_numpy(order).to(centers.device)]
    unique = np.ones(k, dtype=bool)
    if k <= _DENSE_MERGE_MAX:
        near = (_pairwise(sorted_c, sorted_c, metric) <= bandwidth).cpu().numpy()
        for i in range(k):
            if unique[i]:
                unique[near[i]] = False
                unique[i] = True
    else:
        for i in range(k):
            if unique[i]:
                row = (_pairwise(sorted_c[i : i + 1], sorted_c, metric)[0] <= bandwidth).cpu().numpy()
                unique[row] = False
                unique[i] = True
    return sorted_c[torch.from_numpy(np.flatnonzero(unique)).to(centers.device)]


def _assign(X, centers, metric, offset=None):
    """Index of the nearest centre of every row of ``X - offset`` and the distance to it."""
    n = X.shape[0]
    k = centers.shape[0]
    chunk = max(1, _block_elements(X.device) // k)
    labels = torch.empty(n, dtype=torch.int64, device=X.device)
    dist = torch.empty(n, dtype=X.dtype, device=X.device)
    c2 = (centers * centers).sum(1).unsqueeze(0)
    for a in range(0, n, chunk):
        z = min(n, a + chunk)
        Xc = X[a:z] if offset is None else X[a:z] - offset
        if metric == "l1":
            m, lab = torch.cdist(Xc, centers, p=1).min(1)
        else:
            m, lab = torch.addmm(c2, Xc, centers.T, alpha=-2.0).min(1)
            m = (m + (Xc * Xc).sum(1)).clamp_min_(0).sqrt_()
        labels[a:z] = lab
        dist[a:z] = m
    return labels, dist


@dataclass
class _Result:
    centers: torch.Tensor  # (K, D) on the device, in the input's coordinates
    labels: torch.Tensor  # (P,) int64, -1 = unassigned
    dist: torch.Tensor  # (P,) distance to the assigned centre
    n_iter: int


def _rng(random_state):
    """numpy Generator derived from a scikit-learn style ``random_state``."""
    rs = check_random_state(random_state)
    return np.random.default_rng(rs.randint(np.iinfo(np.int32).max))


def _sample_indices(n, max_points, random_state, device):
    idx = np.sort(_rng(random_state).choice(n, size=max_points, replace=False))
    return torch.from_numpy(idx).to(device)


def _mean_shift(
    X,
    bandwidth,
    *,
    kernel="flat",
    metric="euclidean",
    seeds="bin",
    bin_size=None,
    min_bin_freq=1,
    cluster_all=True,
    merge=True,
    max_iter=300,
    tol=1e-3,
    max_points=20000,
    batch_size=1024,
    coarse_to_fine=True,
    device=None,
    random_state=0,
    name="X",
):
    """Shared implementation of :func:`mean_shift` and :class:`MeanShift`; ``X`` is a valid tensor."""
    _check_params(bandwidth, kernel, metric, bin_size, min_bin_freq, max_iter, tol, max_points, batch_size)
    bandwidth = float(bandwidth)
    t0 = time.perf_counter()
    n, d = X.shape
    sample = X
    if max_points is not None and n > max_points:
        sample = X[_sample_indices(n, int(max_points), random_state, X.device)]
    if isinstance(seeds, str):
        _check_choice(seeds, "seeds", _SEED_MODES)
        seed_pts = _bin_seeds(sample, float(bin_size or bandwidth), int(min_bin_freq), seeds == "bin_mean")
    elif seeds is None:
        seed_pts = sample
    else:
        seed_pts = _as_tensor(seeds, "seeds", X.device)
        if seed_pts.shape[1] != d:
            raise ValueError(f"seeds must have {d} columns like {name}; got shape {tuple(seed_pts.shape)}.")
    # centre the data: the L2 block uses ||x||^2 - 2 c.x, better conditioned near 0
    mu = sample.mean(0)
    sample_c = sample - mu
    levels = _coarse_levels(sample_c, random_state) if coarse_to_fine else [sample_c]
    centers, intensity, alive, n_iter = _shift_seeds(
        levels, seed_pts - mu, bandwidth, kernel, metric, int(max_iter), float(tol), int(batch_size)
    )
    if not bool(alive.any()):
        logger.warning(
            "no seed had a point within bandwidth=%g (scikit-learn raises here); using the points as seeds", bandwidth
        )
        centers, intensity, alive, n_iter = _shift_seeds(
            levels, sample_c, bandwidth, kernel, metric, int(max_iter), float(tol), int(batch_size)
        )
    n_seeds = centers.shape[0]
    centers, intensity = centers[alive], intensity[alive]
    if merge:
        centers = _merge(centers, intensity, bandwidth, metric)
    labels, dist = _assign(X, centers, metric, offset=mu)
    if not cluster_all:
        labels[dist > bandwidth] = -1
    logger.debug(
        "mean_shift: %d points (levels %s in the mode search), %d seeds -> %d modes, %d iterations, %.1f ms",
        n, [lv.shape[0] for lv in levels], n_seeds, centers.shape[0], n_iter, 1e3 * (time.perf_counter() - t0),
    )
    return _Result(centers + mu, labels, dist, n_iter)


# --------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------
def mean_shift(
    points,
    bandwidth,
    *,
    kernel="flat",
    metric="euclidean",
    seeds="bin",
    bin_size=None,
    min_bin_freq=1,
    cluster_all=True,
    merge=True,
    max_iter=300,
    tol=1e-3,
    max_points=20000,
    batch_size=1024,
    coarse_to_fine=True,
    device=None,
    random_state=0,
):
    """Mean-shift clustering of points, vectorised in torch.

    Same result as ``sklearn.cluster.mean_shift(points, bandwidth=bandwidth,
    bin_seeding=True)`` (up to float32 rounding and, for more than
    ``max_points`` points, subsampling of the mode search); see the module
    docstring for the algorithm.

    Parameters
    ----------
    points : array-like or torch.Tensor of shape (P, D)
        Points to cluster (finite values).
    bandwidth : float
        Radius of the kernel's window (the Gaussian kernel has standard
        deviation ``bandwidth / 2`` and is truncated at ``bandwidth``), > 0. For harmonic embeddings, the margin eps (0.5 in the paper).
    kernel : {"flat", "gaussian"}, default="flat"
    metric : {"euclidean", "l1"}, default="euclidean"
        Distance used by the kernel, the convergence test, the merge and the
        assignment. "euclidean" is scikit-learn's.
    seeds : {"bin", "bin_mean"}, array-like of shape (S, D) or None, default="bin"
        "bin": grid points of the occupied cells of a grid of cell size
        ``bin_size`` (scikit-learn's ``bin_seeding=True``); "bin_mean": the
        centroids of the points of those cells; None: every point of the mode
        search (scikit-learn's ``bin_seeding=False``, slow); an array: these
        seeds.
    bin_size : float or None, default=None
        Cell size of the seeding grid; None = ``bandwidth``.
    min_bin_freq : int, default=1
        Cells with fewer points give no seed.
    cluster_all : bool, default=True
        If False, points farther than ``bandwidth`` from every mode get -1.
    merge : bool, default=True
        Merge modes closer than ``bandwidth`` (keeping the one with most
        points within the bandwidth). If False every distinct converged seed
        is a cluster.
    max_iter : int, default=300
        Maximum number of shift steps per seed.
    tol : float, default=1e-3
        A seed has converged when it moves by at most ``tol * bandwidth``.
    max_points : int or None, default=20000
        At most this many randomly chosen points are used for seeding and
        shifting; all points are assigned. None: use all.
    batch_size : int, default=1024
        Number of seeds shifted together.
    coarse_to_fine : bool, default=True
        Shift the seeds to convergence on nested random subsets of the
        points, 8 times smaller each (none smaller than 1000 points), before
        the final convergence on all of them (see the module docstring).
    device : str, torch.device or None, default=None
        Where to compute; None = the device of ``points`` if it is a tensor,
        else the CPU.
    random_state : int, RandomState instance or None, default=0
        Seeds the subsampling (only used when there are more than
        ``max_points`` points).

    Returns
    -------
    cluster_centers : ndarray of shape (K, D), float64
        The modes, densest first.
    labels : ndarray of shape (P,), int64
        Index of the mode of each point (-1 only with ``cluster_all=False``).

    Raises
    ------
    ValueError
        If ``points`` is not 2-D, empty or has NaN/inf values, or a parameter
        is out of range.

    Notes
    -----
    When no seed has a point within the bandwidth, scikit-learn raises; here
    the mode search is re-run with the points themselves as seeds (logged as
    a warning), so a result is always returned.
    """
    dev = _resolve_device(device, points)
    X = _as_tensor(points, "points", dev)
    res = _mean_shift(
        X, bandwidth, kernel=kernel, metric=metric, seeds=seeds, bin_size=bin_size, min_bin_freq=min_bin_freq,
        cluster_all=cluster_all, merge=merge, max_iter=max_iter, tol=tol, max_points=max_points,
        batch_size=batch_size, coarse_to_fine=coarse_to_fine, device=dev, random_state=random_state, name="points",
    )
    return res.centers.double().cpu().numpy(), res.labels.cpu().numpy()


class MeanShift(ClusterMixin, BaseEstimator):
    """Mean-shift clustering estimator backed by :func:`mean_shift` (torch).

    A drop-in, much faster replacement for
    ``sklearn.cluster.MeanShift(bandwidth=..., bin_seeding=True)``.

    Parameters
    ----------
    bandwidth : float, default=0.5
        Kernel radius; the paper's margin eps by default.
    kernel : {"flat", "gaussian"}, default="flat"
    metric : {"euclidean", "l1"}, default="euclidean"
    seeds : {"bin", "bin_mean"}, array-like of shape (S, D) or None, default="bin"
    bin_size : float or None, default=None
    min_bin_freq : int, default=1
    cluster_all : bool, default=True
    merge : bool, default=True
    max_iter : int, default=300
    tol : float, default=1e-3
    max_points : int or None, default=20000
    batch_size : int, default=1024
    coarse_to_fine : bool, default=True
    device : str, torch.device or None, default=None
    random_state : int, RandomState instance or None, default=0
        See :func:`mean_shift` for all parameters.

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (K, D)
    labels_ : ndarray of shape (P,)
    n_iter_ : int
        Largest number of shift steps taken by a seed.
    n_features_in_ : int
    """

    def __init__(
        self,
        *,
        bandwidth=0.5,
        kernel="flat",
        metric="euclidean",
        seeds="bin",
        bin_size=None,
        min_bin_freq=1,
        cluster_all=True,
        merge=True,
        max_iter=300,
        tol=1e-3,
        max_points=20000,
        batch_size=1024,
        coarse_to_fine=True,
        device=None,
        random_state=0,
    ):
        self.bandwidth = bandwidth
        self.kernel = kernel
        self.metric = metric
        self.seeds = seeds
        self.bin_size = bin_size
        self.min_bin_freq = min_bin_freq
        self.cluster_all = cluster_all
        self.merge = merge
        self.max_iter = max_iter
        self.tol = tol
        self.max_points = max_points
        self.batch_size = batch_size
        self.coarse_to_fine = coarse_to_fine
        self.device = device
        self.random_state = random_state

    def fit(self, X, y=None):
        """Cluster ``X`` of shape (P, D); ``y`` is ignored."""
        dev = _resolve_device(self.device, X)
        Xt = _as_tensor(X, "X", dev)
        res = _mean_shift(
            Xt, self.bandwidth, kernel=self.kernel, metric=self.metric, seeds=self.seeds, bin_size=self.bin_size,
            min_bin_freq=self.min_bin_freq, cluster_all=self.cluster_all, merge=self.merge, max_iter=self.max_iter,
            tol=self.tol, max_points=self.max_points, batch_size=self.batch_size,
            coarse_to_fine=self.coarse_to_fine, device=dev, random_state=self.random_state,
        )
        self.cluster_centers_ = res.centers.double().cpu().numpy()
        self.labels_ = res.labels.cpu().numpy()
        self.n_iter_ = res.n_iter
        self.n_features_in_ = Xt.shape[1]
        return self

    def predict(self, X):
        """Index of the nearest cluster centre of every row of ``X`` (in ``metric``)."""
        check_is_fitted(self, "cluster_centers_")
        dev = _resolve_device(self.device, X)
        Xt = _as_tensor(X, "X", dev)
        if Xt.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {Xt.shape[1]} features but this MeanShift was fitted with {self.n_features_in_}."
            )
        centers = torch.as_tensor(self.cluster_centers_, dtype=_DTYPE, device=dev)
        return _assign(Xt, centers, self.metric)[0].cpu().numpy()


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
    fg_prob=None,
    max_points=20000,
    device=None,
    random_state=0,
):
    """Instance label map from a predicted embedding by mean-shift clustering.

    The foreground pixels' embeddings are clustered by :func:`mean_shift`;
    each cluster becomes an instance. Then, in this order: clusters are
    optionally split into connected components, instances smaller than
    ``min_size`` pixels are removed, ids are made consecutive, and every
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
        Foreground probability, used by the scores (None = 1).
    max_points : int or None, default=20000
        Size of the random subsample used for the mode search.
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
    from .. import postprocess as pp

    check_positive(bandwidth, "bandwidth")
    check_positive(min_size, "min_size", integer=True, allow_zero=True)
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
    points = emb.reshape(n_dims, h * w)[:, torch.from_numpy(fg_idx).to(dev)].T.contiguous()
    res = _mean_shift(
        points, bandwidth, kernel=kernel, metric=metric, seeds=seeds, max_points=max_points, device=dev,
        random_state=random_state, name="embedding",
    )
    labels = res.labels.cpu().numpy()
    within = (res.dist <= bandwidth).cpu().numpy()
    out[fg_idx] = labels + 1
    out = out.reshape(h, w)
    cluster_of = np.arange(res.centers.shape[0] + 1)  # instance id -> cluster id + 1
    if split_components:
        comp = pp.split_into_components(out)
        cluster_of = np.zeros(int(comp.max()) + 1, dtype=np.int64)
        cluster_of[comp.ravel()] = out.ravel()
        out = comp
    if min_size > 1:
        out = pp.remove_small_instances(out, min_size)
    out, ids = pp.relabel_sequential(out, return_ids=True)
    k = ids.size
    if k == 0:
        return out, np.zeros(0, dtype=np.float64)
    inst = out.ravel()[fg_idx]  # instance id (0 = removed) of every foreground pixel
    keep = inst > 0
    scores = pp._membership_scores(inst[keep] - 1, within[keep], None if prob is None else prob.ravel()[fg_idx][keep], k)
    logger.debug("cluster_embeddings: %d foreground pixels -> %d instances (modes of %s)", fg_idx.size, k, cluster_of[ids])
    return out, scores
