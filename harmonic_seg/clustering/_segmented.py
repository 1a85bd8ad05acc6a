"""Mean shift within every connected component on its own: the mode search of large images.

A large image has thousands of components of a few hundred pixels each. One mean shift of all
components together (their embeddings moved apart) costs every seed a pass over every pixel; here
a component's seeds pass over that component's pixels only, with the same two matrix products per
step as the mean shift of one point set, and none of the validation, coarse levels and
bookkeeping that one call of :func:`~harmonic_seg.clustering.mean_shift` pays for.

Every quantity of a component is computed from that component's pixels alone, in their raster
order, with the same arithmetic whatever else the image holds: a component has the same modes in
a block of an image as in the whole image.

The mean shift is scikit-learn's with ``bin_seeding`` at the centroids of the cells (``seeds=
"bin_mean"`` of :func:`~harmonic_seg.clustering.mean_shift`, optionally with ``min_bin_freq``) and
the same de-duplication of seeds that meet, without coarse-to-fine levels; then the same merge of
modes closer than the bandwidth (the densest kept) and assignment of every pixel of the component to
its nearest mode.
"""

from __future__ import annotations

import numpy as np
import torch

from ..nn._threads import small_op_threads

#: De-duplicate seeds only while at least this many move (as the mean shift of one point set).
_DEDUPE_MIN_MOVING = 16
#: De-duplicate every this many steps: a check costs about as much as a step of a small component.
_DEDUPE_EVERY = 2
#: Largest (seeds x points [x dimensions]) block of one step: 4M float32 (16 MB).
_BLOCK = 1 << 22
#: Odd random int64 multipliers: a row of integers times them, summed with wrap-around, is one key per row.
_HASH = np.random.default_rng(20200614).integers(1, 2**62, size=4096, dtype=np.int64) | 1
#: Gaussian kernel: exp(-2 d^2 / bandwidth^2), as in :mod:`harmonic_seg.clustering._meanshift_ops`.
_GAUSS = -2.0
#: Searched component by component, only the seeding cells with at least this many pixels seed (every
#: component keeps its fullest cell): a cell of one or two pixels is almost always a pixel on the way
#: between two modes, whose seed shifts to a mode another seed finds. On the 1024 x 1024 nuclei mosaic
#: of the benchmarks (500 nuclei) this takes about a quarter off the mode search and the instances come
#: closer to the truth (``benchmarks/bench_mode_search.py``).
SEED_MIN_PIXELS = 3


def modes_per_component(points, comp, n_comps, p, change, core_threshold, core_fraction, bandwidth, ms):
    """Mode of every foreground pixel, searched in each connected component on its own.

    Used when the foreground has more pixels than one mode search takes (``max_points``): a sample of a
    fixed size drawn from the whole image would leave the components of a large image with fewer and
    fewer pixels, and a component none of whose pixels is drawn would have no mode of its own. Searched
    one by one, every component has its own core (probability and share of lowest change) and its own
    pixels, so its modes depend on its pixels alone: the same in a block of an image as in the whole
    image. Components with at most ``max_points`` searching pixels are searched all at once
    (:func:`segmented_mean_shift`, every pixel, seeds from the cells of at least
    :data:`SEED_MIN_PIXELS` pixels); a larger one by the mean shift of one point set (its own sample of
    ``max_points`` pixels, coarse to fine).
    """
    from ._meanshift_ops import _assign
    from .meanshift import _mean_shift

    core = component_core(comp, n_comps, p, None if change is None else change.numpy(), core_threshold,
                          core_fraction)
    searching = np.bincount(comp, weights=None if core is None else core, minlength=n_comps)
    # the joint search seeds at the cells' centroids; other seeds: one mean shift per component
    large = searching > ms["max_points"] if ms["seeds"] == "bin_mean" else np.ones(n_comps, dtype=bool)
    small = ~large[comp]
    mode = np.empty(comp.size, dtype=np.int64)
    n_modes = 0
    if small.any():
        sub = np.cumsum(~large) - 1  # the small components numbered 0..k-1
        mode[small], n_modes = segmented_mean_shift(
            points[small], sub[comp[small]], int((~large).sum()), bandwidth,
            search=None if core is None else core[small], kernel=ms["kernel"], metric=ms["metric"],
            min_bin_freq=SEED_MIN_PIXELS)
    for c in np.flatnonzero(large):
        sel = np.flatnonzero(comp == c)
        pts = torch.from_numpy(points[sel]).to(ms["device"])
        search = pts if core is None else pts[torch.from_numpy(core[sel]).to(ms["device"])]
        res = _mean_shift(search, bandwidth, **ms)
        assigned = res.labels if search is pts else _assign(pts, res.centers, ms["metric"])[0]
        mode[sel] = assigned.cpu().numpy() + n_modes
        n_modes += int(res.centers.shape[0])
    return mode, n_modes


def component_core(comp, n_comps, prob, change, core_threshold, core_fraction):
    """Which pixels seek modes, decided in each component on its own (None: all pixels).

    ``comp`` (P,) component of each pixel, 0..n_comps-1; ``prob`` (P,) foreground probability or
    None; ``change`` (P,) embedding change (NaN: no foreground neighbour) or None. A component keeps
    the pixels with probability at least ``core_threshold`` (all if none has it) and, among those
    where possible, the ``core_fraction`` of its pixels of lowest change (at least one; ties kept;
    all if no pixel has a neighbour), as :func:`~harmonic_seg.clustering.cluster_embeddings` does
    for a whole image.
    """
    if core_threshold is None and change is None:
        return None
    core = np.ones(comp.size, dtype=bool)
    if core_threshold is not None and prob is not None:
        high = prob >= core_threshold
        has = np.bincount(comp, weights=high, minlength=n_comps) > 0
        core = high | ~has[comp]
    if change is not None:
        smooth = _lowest_per_component(comp, n_comps, np.asarray(change, dtype=np.float64), core_fraction)
        both = core & smooth
        has = np.bincount(comp, weights=both, minlength=n_comps) > 0
        core = np.where(has[comp], both, core)
    return core


def _lowest_per_component(comp, n_comps, change, fraction):
    n = np.bincount(comp, minlength=n_comps)
    finite = np.isfinite(change)
    n_finite = np.bincount(comp, weights=finite, minlength=n_comps).astype(np.int64)
    k = np.minimum(n_finite, np.maximum(1, np.ceil(fraction * n).astype(np.int64)))
    order = np.lexsort((np.where(finite, change, np.inf), comp))  # by component, then change (NaN last)
    start = np.concatenate([[0], np.cumsum(n)[:-1]])
    kth = np.where(k > 0, change[order[start + np.maximum(k, 1) - 1]], np.inf)
    out = finite & (change <= kth[comp])
    return np.where(n_finite[comp] == 0, True, out)


def segmented_mean_shift(points, comp, n_comps, bandwidth, *, search=None, kernel="flat", metric="euclidean",
                         min_bin_freq=1, max_iter=300, tol=1e-3):
    """Mode of every point, searched within its component.

    Parameters
    ----------
    points : ndarray of shape (P, N), float32
    comp : ndarray of shape (P,), int64
        Component of every point, 0..n_comps-1; the points of a component in a fixed order.
    n_comps : int
    bandwidth : float
    search : ndarray of shape (P,), bool, or None
        The points that seed and shift (the rest are only assigned); None: all.
    min_bin_freq : int, default=1
        Seeds only from the cells with at least this many searching points (and every component's
        fullest cell).

    Returns
    -------
    mode : ndarray of shape (P,), int64
        Mode of every point, 0..n_modes-1, the modes of a component consecutive.
    n_modes : int
    """
    points = np.ascontiguousarray(points, dtype=np.float32)
    order = np.argsort(comp, kind="stable")
    n = np.bincount(comp, minlength=n_comps)
    start = np.concatenate([[0], np.cumsum(n)]).astype(np.int64)
    pts = points[order]
    sel = np.ones(order.size, bool) if search is None else np.asarray(search, bool)[order]
    # every component searches at least one point (a component without a search point: all of them)
    has = np.bincount(comp[order], weights=sel, minlength=n_comps) > 0
    sel |= ~has[comp[order]]
    s_pts, s_comp = pts[sel], comp[order][sel]
    s_n = np.bincount(s_comp, minlength=n_comps)
    s_start = np.concatenate([[0], np.cumsum(s_n)[:-1]]).astype(np.int64)
    seeds, seed_comp = _bin_mean_seeds(s_pts, s_comp, bandwidth, int(min_bin_freq))
    by_comp = np.concatenate([[0], np.cumsum(np.bincount(seed_comp, minlength=n_comps))])
    mode_sorted = np.empty(order.size, dtype=np.int64)
    n_modes = 0
    with small_op_threads(None, torch.device("cpu")):
        for c in range(n_comps):
            a, z = start[c], start[c + 1]
            if z == a:
                continue
            x = s_pts[s_start[c]: s_start[c] + s_n[c]]
            cs, ci = _shift(seeds[by_comp[c]: by_comp[c + 1]], x, float(bandwidth), kernel, metric, int(max_iter),
                            float(tol))
            if cs.shape[0] <= 1:
                mode_sorted[a:z] = n_modes
                n_modes += 1
                continue
            kept = _merge(cs, ci, bandwidth, metric)
            mode_sorted[a:z] = n_modes + _nearest(pts[a:z], kept, metric)
            n_modes += kept.shape[0]
    mode = np.empty_like(mode_sorted)
    mode[order] = mode_sorted
    return mode, n_modes


def _bin_mean_seeds(pts, comp, bin_size, min_bin_freq=1):
    """Centroids of the grid cells of side ``bin_size`` of each component's points, by component.

    Only cells with at least ``min_bin_freq`` points seed (scikit-learn's ``min_bin_freq``), and every
    component keeps its fullest cell (the first of those in raster order), so that it has a mode.
    """
    cells = np.round(pts / np.float32(bin_size)).astype(np.int64)
    key = comp * _HASH[0] + (cells * _HASH[1: cells.shape[1] + 1]).sum(1)  # one int64 per (component, cell)
    _, first, inv, counts = np.unique(key, return_index=True, return_inverse=True, return_counts=True)
    inv = inv.ravel()
    sums = np.stack([np.bincount(inv, weights=col, minlength=counts.size) for col in pts.T], 1)
    seeds = (sums / counts[:, None]).astype(np.float32)
    seed_comp = comp[first]
    if min_bin_freq > 1:
        keep = counts >= min_bin_freq
        fullest = np.lexsort((first, -counts, seed_comp))  # by component, fullest first, then first appearance
        keep[fullest[np.r_[True, seed_comp[fullest][1:] != seed_comp[fullest][:-1]]]] = True
        seeds, seed_comp, first = seeds[keep], seed_comp[keep], first[keep]
    by = np.lexsort((first, seed_comp))  # by component, then first appearance: a fixed order per component
    return seeds[by], seed_comp[by]


def _shift(seeds, x, bandwidth, kernel, metric, max_iter, tol):
    """Shift the seeds of one component to convergence over its points ``x``; the live (centers, intensity).

    Seeds that meet on a cell of side ``tol * bandwidth`` while at least ``_DEDUPE_MIN_MOVING`` move
    are reduced to one (the converged one, then the first), as the mean shift of one point set does,
    checked every :data:`_DEDUPE_EVERY` steps (seeds that met stay together until then).
    """
    centers = seeds.copy()
    intensity = np.zeros(seeds.shape[0], dtype=np.float64)
    alive = np.ones(seeds.shape[0], dtype=bool)
    active = alive.copy()
    stop = tol * bandwidth
    xt = torch.from_numpy(np.ascontiguousarray(x))
    x2 = (xt * xt).sum(1)
    xt = torch.cat([xt, torch.ones((xt.shape[0], 1), dtype=xt.dtype)], 1)
    fast = kernel == "flat" and metric == "euclidean"
    xd, x2row = xt[:, : xt.shape[1] - 1].T, x2.unsqueeze(0)
    for step in range(max_iter + 1):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        c = centers[idx]
        if fast and idx.size * xt.shape[0] <= _BLOCK:
            new, weight, count = _flat_window_means(c, xt, xd, x2row, bandwidth)
        else:
            new, weight, count = _window_means(c, xt, x2, bandwidth, kernel, metric)
        empty = weight <= 0
        diff = new - c
        shift = np.abs(diff).sum(1) if metric == "l1" else np.sqrt(np.einsum("ij,ij->i", diff, diff))
        done = (shift <= stop) | empty
        ok = ~empty
        centers[idx[ok]] = new[ok]
        intensity[idx] = count
        alive[idx[empty]] = False
        active[idx[done]] = False
        if step % _DEDUPE_EVERY == 0 and stop > 0 and int(active.sum()) >= _DEDUPE_MIN_MOVING:
            _dedupe(centers, alive, active, stop)
    keep = alive & (intensity > 0)
    return centers[keep], intensity[keep]


def _flat_window_means(c, x, xd, x2row, bandwidth):
    """:func:`_window_means` of the flat kernel and the Euclidean distance when the rows of ``c`` fit in
    one block: the same matrix products, with fewer calls (``xd`` is ``x``'s coordinates transposed,
    ``x2row`` the points' squared norms as one row; the rows' own squared norms in numpy, which on a few
    dozen rows costs a tenth of a torch call)."""
    thresh = torch.from_numpy((np.float32(bandwidth * bandwidth) - np.einsum("ij,ij->i", c, c))[:, None])
    w = torch.addmm(x2row, torch.from_numpy(c), xd, alpha=-2.0).le_(thresh)  # 1.0 inside the window
    acc = torch.mm(w, x).numpy()
    d = acc.shape[1] - 1
    weight = acc[:, d].astype(np.float64)
    return acc[:, :d] / np.maximum(acc[:, d: d + 1], np.finfo(np.float32).tiny), weight, weight


def _window_means(c, x, x2, bandwidth, kernel, metric):
    """Kernel-weighted means of the points ``x`` around each row of ``c``, their weights and counts.

    torch on the CPU (``x``, ``x2`` tensors, ``x`` with a column of ones appended, ``c`` numpy): one
    matrix product gives the distances, one the sums and the weights, as in the mean shift of one
    point set.
    """
    k = c.shape[0]
    d = x.shape[1] - 1
    ct = torch.from_numpy(np.ascontiguousarray(c))
    acc = torch.empty((k, d + 1), dtype=torch.float32)
    count = torch.empty(k, dtype=torch.float32)
    bw2 = bandwidth * bandwidth
    step = max(1, _BLOCK // (x.shape[0] * (d if metric == "l1" else 1)))
    for a in range(0, k, step):
        cb = ct[a: a + step]
        if metric == "l1":
            dist = torch.cdist(cb, x[:, :d], p=1)
            inside = dist <= bandwidth
            d2 = dist.square_()
        else:
            c2 = (cb * cb).sum(1, keepdim=True)
            d2 = torch.addmm(x2.unsqueeze(0), cb, x[:, :d].T, alpha=-2.0)
            if kernel == "flat":
                w = d2.le_(bw2 - c2)  # in place: 1.0 inside the window, 0.0 outside
                torch.mm(w, x, out=acc[a: a + step])
                count[a: a + step] = acc[a: a + step, d]
                continue
            d2 += c2
            inside = d2 <= bw2
        w = inside.to(torch.float32) if kernel == "flat" else torch.exp(d2.mul_(_GAUSS / bw2)).mul_(inside)
        torch.mm(w, x, out=acc[a: a + step])
        count[a: a + step] = inside.sum(1).to(torch.float32)
    weight = acc[:, d].double().numpy()
    new = (acc[:, :d] / acc[:, d: d + 1].clamp_min(torch.finfo(torch.float32).tiny)).numpy()
    return new, weight, count.double().numpy()


def _dedupe(centers, alive, active, grid):
    idx = np.flatnonzero(alive)
    idx = idx[np.argsort(active[idx], kind="stable")]  # converged first, then by index
    cells = np.round(centers[idx] / grid).astype(np.int64)
    keys = (cells * _HASH[: cells.shape[1]]).sum(1)  # one int64 per cell (wrapping): distinct cells collide ~2^-64
    _, first = np.unique(keys, return_index=True)
    drop = np.ones(idx.size, dtype=bool)
    drop[first] = False
    alive[idx[drop]] = False
    active[idx[drop]] = False


def _pairwise(A, B, metric):
    diff = A[:, None, :] - B[None, :, :]
    return np.abs(diff).sum(-1) if metric == "l1" else np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))


def _merge(centers, intensity, bandwidth, metric):
    """The densest mode of each bandwidth-neighbourhood (scikit-learn's rule), densest first."""
    keys = tuple(centers.astype(np.float64).T[::-1]) + (intensity,)
    order = np.lexsort(keys)[::-1]
    sorted_c = centers[order]
    near = _pairwise(sorted_c, sorted_c, metric) <= bandwidth
    unique = np.ones(order.size, dtype=bool)
    for i in range(order.size):
        if unique[i]:
            unique[near[i]] = False
            unique[i] = True
    return sorted_c[unique]


def _nearest(x, centers, metric):
    """Index of the nearest centre of every row of ``x`` (first among equals)."""
    best = np.zeros(x.shape[0], dtype=np.int64)
    best_d = np.full(x.shape[0], np.inf, dtype=np.float32)
    for j, c in enumerate(centers):
        diff = x - c
        dj = np.abs(diff).sum(1) if metric == "l1" else np.einsum("ij,ij->i", diff, diff)
        closer = dj < best_d
        best[closer] = j
        best_d[closer] = dj[closer]
    return best
