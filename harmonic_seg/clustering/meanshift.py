"""Fast mean-shift clustering in torch.

At test time the embedding network predicts an N-dimensional embedding at
every pixel; instances are the modes of the foreground embeddings found by
mean-shift clustering with bandwidth equal to the margin eps (paper, sec. 3.3;
see :func:`harmonic_seg.clustering.cluster_embeddings`).
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
  paths (``benchmarks/bench_meanshift.py`` compares the two).
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

Threads
    On the CPU the mean shift runs on one torch thread unless ``num_threads``
    says otherwise (restored afterwards). The shift steps are many small
    operations, each ending at a barrier of torch's thread team; when another
    process holds one of the cores, every step waits for a time slice of the
    thread sharing it and a clustering of seconds can take minutes; one thread
    only loses the share of its core that the other process takes
    (``docs/benchmarks.md``, "Shared CPU"). On one thread the result also does
    not depend on the machine's number of cores (float sums are rounded in the
    same order).

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
from sklearn.utils.validation import check_is_fitted

from .._validation import _describe, check_device, check_positive
from ._meanshift_ops import _assign, _bin_seeds, _coarse_levels, _merge, _sample_indices, _shift_seeds
from ..nn._threads import small_op_threads

__all__ = ["mean_shift", "MeanShift"]

logger = logging.getLogger(__name__)

KERNELS = ("flat", "gaussian")
METRICS = ("euclidean", "l1")
_SEED_MODES = ("bin", "bin_mean")
_DTYPE = torch.float32
#: Largest point norm accepted: squared distances stay far below float32's 3.4e38.
_MAX_NORM = 1e18


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
    # "auto", "cpu", "cuda[:k]" or "mps", one this torch can use: a clear error for "", "meta", 0 or a missing GPU
    return torch.device(check_device(device, "device", resolve=True))


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
    largest = float(t.abs().max()) * t.shape[1] ** 0.5
    if largest > _MAX_NORM:
        # squared distances of such points overflow float32 and every window comes out empty
        raise ValueError(
            f"{name} holds values too large for float32 distances (a point of norm up to {largest:.3g}, more than "
            f"{_MAX_NORM:g}); rescale the points (and the bandwidth with them)."
        )
    return t


def _check_params(bandwidth, kernel, metric, bin_size, min_bin_freq, max_iter, tol, max_points, batch_size,
                  num_threads=None):
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
    if num_threads is not None:
        check_positive(num_threads, "num_threads", integer=True)


@dataclass
class _Result:
    centers: torch.Tensor  # (K, D) on the device, in the input's coordinates
    labels: torch.Tensor  # (P,) int64, -1 = unassigned
    dist: torch.Tensor  # (P,) distance to the assigned centre
    n_iter: int


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
    num_threads=None,
):
    """Shared implementation of :func:`mean_shift` and :class:`MeanShift`; ``X`` is a valid tensor.

    Runs on ``num_threads`` torch threads on the CPU (None: one, or the explicit count of an enclosing
    :func:`harmonic_seg.nn._threads.torch_threads`).
    """
    _check_params(bandwidth, kernel, metric, bin_size, min_bin_freq, max_iter, tol, max_points, batch_size,
                  num_threads)
    with small_op_threads(num_threads, X.device):
        return _mean_shift_impl(
            X, float(bandwidth), kernel=kernel, metric=metric, seeds=seeds, bin_size=bin_size,
            min_bin_freq=min_bin_freq, cluster_all=cluster_all, merge=merge, max_iter=max_iter, tol=tol,
            max_points=max_points, batch_size=batch_size, coarse_to_fine=coarse_to_fine, random_state=random_state,
            name=name,
        )


def _mean_shift_impl(X, bandwidth, *, kernel, metric, seeds, bin_size, min_bin_freq, cluster_all, merge, max_iter,
                     tol, max_points, batch_size, coarse_to_fine, random_state, name):
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
        binned = (
            f"; with seeds={seeds!r} a grid cell needs min_bin_freq={min_bin_freq} point(s) to seed"
            if isinstance(seeds, str) else ""
        )
        logger.warning(
            "no seed had a point within bandwidth=%g (%d seed(s) for %d point(s) in the mode search%s); using those "
            "points as seeds (scikit-learn raises here)",
            bandwidth, seed_pts.shape[0], sample.shape[0], binned,
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
    num_threads=None,
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
        else the CPU; else "auto", "cpu", "cuda", "cuda:k" or "mps", one this
        torch can use.
    random_state : int, RandomState instance or None, default=0
        Seeds the subsampling (only used when there are more than
        ``max_points`` points).
    num_threads : int or None, default=None
        torch's CPU threads during the call (restored after); None: one,
        which other processes sharing the CPU slow down only by the share of
        the core they take (see "Threads" in the module docstring). Ignored
        on a GPU.

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
        num_threads=num_threads,
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
    num_threads : int or None, default=None
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
        num_threads=None,
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
        self.num_threads = num_threads

    def fit(self, X, y=None):
        """Cluster ``X`` of shape (P, D); ``y`` is ignored."""
        dev = _resolve_device(self.device, X)
        Xt = _as_tensor(X, "X", dev)
        res = _mean_shift(
            Xt, self.bandwidth, kernel=self.kernel, metric=self.metric, seeds=self.seeds, bin_size=self.bin_size,
            min_bin_freq=self.min_bin_freq, cluster_all=self.cluster_all, merge=self.merge, max_iter=self.max_iter,
            tol=self.tol, max_points=self.max_points, batch_size=self.batch_size,
            coarse_to_fine=self.coarse_to_fine, device=dev, random_state=self.random_state,
            num_threads=self.num_threads,
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
        if self.num_threads is not None:
            check_positive(self.num_threads, "num_threads", integer=True)
        centers = torch.as_tensor(self.cluster_centers_, dtype=_DTYPE, device=dev)
        with small_op_threads(self.num_threads, dev):
            return _assign(Xt, centers, self.metric)[0].cpu().numpy()
