"""Building blocks of the torch mean shift of :mod:`harmonic_seg.clustering.meanshift`.

Seeding, batched shift steps, seed de-duplication, coarse-to-fine levels,
merging of modes and assignment of points; all take and return tensors that
the caller has validated. See :mod:`harmonic_seg.clustering.meanshift` for the algorithm.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from sklearn.utils import check_random_state

from ..nn._threads import small_op_threads

logger = logging.getLogger("harmonic_seg.clustering.meanshift")  # messages of the mean shift, one logger

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
#: Gaussian kernel: exp(-d^2 / (2 sigma^2)) with sigma = bandwidth / 2, i.e. exp(-2 d^2 / bandwidth^2).
_GAUSS = -2.0


def _bin_seeds(X, bin_size, min_bin_freq, centroid):
    """Seeds from a grid binning of ``X`` (scikit-learn's ``get_bin_seeds``).

    Returns the grid point (``centroid=False``) or the centroid of the points
    (``centroid=True``) of every cell with at least ``min_bin_freq`` points, in
    order of first appearance; ``X`` itself when every point has its own cell.
    """
    n, d = X.shape
    if not float(X.abs().max()) / bin_size < 2.0**62 or not np.float32(bin_size) > 0:  # int64 cell indices
        raise ValueError(
            f"bin_size (or bandwidth) {bin_size:g} is too small for a seeding grid over points up to "
            f"{float(X.abs().max()):.3g} in magnitude (float32 cells, at most 2**62 per axis); use a larger "
            "bin_size or seeds=None."
        )
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
    """Index of the nearest centre of every row of ``X - offset`` and the distance to it.

    A loop of small operations like the shift steps: on one CPU thread unless an enclosing call
    chose the threads explicitly (:func:`harmonic_seg.nn._threads.small_op_threads`).
    """
    with small_op_threads(None, X.device):
        return _assign_chunks(X, centers, metric, offset)


def _assign_chunks(X, centers, metric, offset):
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


def _rng(random_state):
    """numpy Generator derived from a scikit-learn style ``random_state``."""
    rs = check_random_state(random_state)
    return np.random.default_rng(rs.randint(np.iinfo(np.int32).max))


def _sample_indices(n, max_points, random_state, device):
    idx = np.sort(_rng(random_state).choice(n, size=max_points, replace=False))
    return torch.from_numpy(idx).to(device)
