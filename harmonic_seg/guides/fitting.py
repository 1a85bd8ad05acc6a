"""Stage 1: search for guide functions that separate training instances (paper eq. 4).

The loss is the mean, over images, of the mean hinge
``max(0, eps - ||e(S) - e(S')||_1)`` over pairs of instances ``(S, S')`` of the
same image. It is minimised by Adam on minibatches of random images; the
gradient is computed analytically and fully vectorised in numpy.

To keep every step cheap, each instance is represented during the search by
about ``max_pixels_per_instance`` of its pixels on a regular lattice (a
quadrature of its mean). The margin used during the search is enlarged
by ``margin_slack`` to absorb that sampling noise; the reported separation is
always computed exactly, on every pixel.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
from sklearn.utils import check_random_state
from tqdm.auto import tqdm

from .._labels import relabel_sequential
from .._validation import check_label_map, check_label_maps, check_positive
from .embeddings import _check_guides, _instance_embeddings
from .functions import GuideFunctions

__all__ = [
    "fit_guides",
    "separation_score",
    "pairwise_separation",
    "GuideFitResult",
    "auto_frequency_bound",
    "instance_lengths",
    "AUTO_RANGES",
    "AUTO_PERIOD_FACTOR",
]

#: ``init_range="auto"`` starts every frequency component below
#: ``2 pi / (AUTO_PERIOD_FACTOR * D)`` radians per pixel, ``D`` being the median
#: equivalent diameter of the training instances: the shortest initial period
#: along each axis is four object diameters. Guides whose period is shorter than
#: the objects average to almost 0 over every object, so the targets carry little
#: signal and the network regresses them poorly (``benchmarks/guide_frequency.py``
#: compares the frequency ranges on the embedded nuclei sample).
#: ``init_range="auto-length"`` uses the median length instead (major axis,
#: :func:`~harmonic_seg.guides.instance_lengths`): long thin objects such as worms
#: average a sine over their length, several times their diameter; on round
#: objects the two sizes are close. Compare both on your validation images.
AUTO_PERIOD_FACTOR = 4.0

logger = logging.getLogger(__name__)


@dataclass
class GuideFitResult:
    """Outcome of :func:`fit_guides`.

    Attributes
    ----------
    guides : GuideFunctions
    init_bound : ndarray of shape (2,)
        Upper bound of the initial frequencies along rows and columns, in the
        paper's units (radians per side of the reference shape).
    loss_curve : list of float
        Minibatch loss at every iteration.
    n_iter : int
        Iterations run.
    converged : bool
        Whether the full (subsampled) training loss reached ``tol``.
    n_pairs : int
        Number of same-image instance pairs in the training set.
    warnings : list of str
        What could not be done (e.g. no image holds two instances).
    """

    guides: GuideFunctions
    init_bound: np.ndarray = None
    loss_curve: list = field(default_factory=list)
    n_iter: int = 0
    converged: bool = False
    n_pairs: int = 0
    warnings: list = field(default_factory=list)


#: The object size behind each automatic ``init_range``.
AUTO_RANGES = {"auto": "diameter", "auto-length": "length"}


def auto_frequency_bound(label_maps, factor=AUTO_PERIOD_FACTOR, size="diameter"):
    """Frequency bound of ``init_range="auto"`` (or ``"auto-length"``), in radians per pixel.

    Parameters
    ----------
    label_maps : list of ndarray of shape (H, W)
        Integer label maps, 0 = background.
    factor : float, default=AUTO_PERIOD_FACTOR
        Shortest period, in median instance sizes.
    size : {"diameter", "length"}, default="diameter"
        The instance size: the equivalent diameter ``2 sqrt(A / pi)`` (``A`` the
        area in pixels; ``init_range="auto"``) or the length, the major axis
        of :func:`instance_lengths` (``"auto-length"``).

    Returns
    -------
    float
        ``2 pi / (factor * S)``, ``S`` the median size over all instances of
        all maps; with no instance at all, the bound of a period equal to the
        median image side.
    """
    if size not in AUTO_RANGES.values():
        raise ValueError(f"size must be one of {sorted(AUTO_RANGES.values())}; got {size!r}.")
    return _frequency_bound(check_label_maps(label_maps, "label_maps"), factor, size)


def instance_lengths(label_map):
    """Length of every instance: the major axis of the ellipse with its second moments.

    ``4 sqrt(lambda_max)``, ``lambda_max`` the larger eigenvalue of the covariance
    of the instance's area, each pixel a unit square (``regionprops``'
    ``axis_major_length`` treats pixels as points and is smaller by a fraction
    of a pixel): the diameter for a disc, 1.15 times the length for a
    straight rod (``4 / sqrt(12)``), less for a bent worm. Computed for all instances
    at once from coordinate sums (no loop over instances).

    Parameters
    ----------
    label_map : ndarray of shape (H, W)
        Integer labels, 0 = background.

    Returns
    -------
    ndarray of shape (n_instances,)
        In pixels, in the order of the sorted positive labels.
    """
    return _instance_lengths(check_label_map(label_map, "label_map"))


def _instance_lengths(lab):
    """:func:`instance_lengths` of an already validated label map."""
    fg = np.flatnonzero(lab)
    if fg.size == 0:
        return np.zeros(0)
    values = lab.ravel()[fg]
    if values.max() < 4 * fg.size:  # compact ids: count them directly
        index, n = values, int(values.max()) + 1
    else:  # sparse ids (e.g. 16-bit tracking ids): renumber first
        _, index = np.unique(values, return_inverse=True)
        n = int(index.max()) + 1
    rows, cols = np.divmod(fg, lab.shape[1])
    rows, cols = rows.astype(np.float64), cols.astype(np.float64)
    count = np.bincount(index, minlength=n)
    keep = count > 0
    count = count[keep]
    sums = [np.bincount(index, w, n)[keep] for w in (rows, cols, rows * rows, cols * cols, rows * cols)]
    mr, mc = sums[0] / count, sums[1] / count
    # + 1/12: the variance of a coordinate within its unit pixel
    vr = sums[2] / count - mr * mr + 1 / 12
    vc = sums[3] / count - mc * mc + 1 / 12
    cov = sums[4] / count - mr * mc
    lam = (vr + vc) / 2 + np.sqrt(((vr - vc) / 2) ** 2 + cov * cov)
    return 4.0 * np.sqrt(lam)


def _frequency_bound(label_maps, factor, size="diameter"):
    """:func:`auto_frequency_bound` of already validated label maps."""
    if size == "length":
        sizes = [_instance_lengths(lab) for lab in label_maps]
    else:
        sizes = [2.0 * np.sqrt(relabel_sequential(lab)[2] / np.pi) for lab in label_maps]
    sizes = np.concatenate(sizes) if sizes else np.zeros(0)
    if sizes.size == 0:
        return 2 * np.pi / float(np.median([max(np.shape(lab)) for lab in label_maps]))
    return 2 * np.pi / (factor * float(np.median(sizes)))


def _check_max_frequency(max_frequency, init_low, init_high):
    """Per-axis frequency bound (paper units) of ``max_frequency``, or None."""
    if max_frequency is None:
        return None
    if isinstance(max_frequency, str):
        if max_frequency != "init":
            raise ValueError(f'max_frequency must be None, "init" or a positive number; got {max_frequency!r}.')
        return np.array(init_high, dtype=np.float64)
    check_positive(max_frequency, "max_frequency")
    if np.any(init_low >= max_frequency):
        raise ValueError(
            f"max_frequency must be above the lower end of init_range ({float(np.max(init_low))!r}); "
            f"got {max_frequency!r}. Raise max_frequency or lower init_range."
        )
    return np.full(2, float(max_frequency))


def reference_shape(label_maps):
    """Median (H, W) of a list of label maps: the unit of the paper's frequencies."""
    shapes = np.array([lab.shape for lab in label_maps])
    return tuple(int(v) for v in np.median(shapes, axis=0).round())


class _InstanceSample:
    """Lattice-subsampled pixel coordinates of every instance, grouped by image.

    An instance of ``n`` pixels keeps the pixels of a regular lattice of step
    ``s = floor(sqrt(n / max_pixels))`` at a random offset, about
    ``max_pixels`` of them: a quadrature of its mean that is far more accurate
    than random sampling for the smooth guide functions (aliasing needs a
    frequency near ``2 pi / s``).

    Attributes (all numpy)
    ----------------------
    yi, xi : (P,) int, pixel row and column, sorted by image then instance
    rows, cols : float64 aranges indexed by yi and xi (trigonometric tables)
    inst : (P,) int, instance index of each pixel (0..K-1)
    counts : (K,) int, sampled pixels per instance
    img_pix : (n_images + 1,) int, pixel offsets of each image
    img_inst : (n_images + 1,) int, instance offsets of each image
    """

    def __init__(self, label_maps, max_pixels, rng):
        ys, xs, inst, counts = [], [], [], []
        img_pix, img_inst = [0], [0]
        k0 = 0
        for lab in label_maps:
            flat = lab.ravel()
            fg = np.flatnonzero(flat)
            ids, keys = np.unique(flat[fg], return_inverse=True)
            size = np.bincount(keys, minlength=ids.size)
            step = np.maximum(1, np.floor(np.sqrt(size / max_pixels))).astype(np.int64)
            off_y = (rng.random(ids.size) * step).astype(np.int64)
            off_x = (rng.random(ids.size) * step).astype(np.int64)
            y, x = np.divmod(fg, lab.shape[1])
            s = step[keys]
            keep = (y % s == off_y[keys]) & (x % s == off_x[keys])
            kept = np.bincount(keys[keep], minlength=ids.size)
            keep |= kept[keys] == 0  # degenerate shapes that miss the lattice keep all pixels
            order = np.argsort(keys[keep], kind="stable")
            ys.append(y[keep][order])
            xs.append(x[keep][order])
            group = keys[keep][order]
            inst.append(group + k0)
            counts.append(np.bincount(group, minlength=ids.size))
            k0 += ids.size
            img_pix.append(img_pix[-1] + group.size)
            img_inst.append(k0)
        self.yi = np.concatenate(ys).astype(np.int64)
        self.xi = np.concatenate(xs).astype(np.int64)
        self.rows = np.arange(self.yi.max() + 1 if self.yi.size else 1, dtype=np.float64)
        self.cols = np.arange(self.xi.max() + 1 if self.xi.size else 1, dtype=np.float64)
        self.inst = np.concatenate(inst).astype(np.int64)
        self.counts = np.concatenate(counts).astype(np.float64)
        self.img_pix = np.asarray(img_pix)
        self.img_inst = np.asarray(img_inst)

    def n_instances(self, i):
        return self.img_inst[i + 1] - self.img_inst[i]


def _pairs(k, max_pairs, rng):
    """All pairs i < j of k items, or ``max_pairs`` random distinct pairs."""
    if k * (k - 1) // 2 <= max_pairs:
        return np.triu_indices(k, 1)
    i = rng.integers(0, k, size=max_pairs)
    j = (i + rng.integers(1, k, size=max_pairs)) % k
    return i, j


def _loss_and_grad(psi, phases, scale, sample, images, margin, max_pairs, rng):
    """Hinge loss (eq. 4) on the given images and its gradient w.r.t. psi and phases."""
    pix = np.concatenate([np.arange(sample.img_pix[i], sample.img_pix[i + 1]) for i in images])
    yi, xi, inst = sample.yi[pix], sample.xi[pix], sample.inst[pix]
    # Pixels are grouped by instance: segment starts give a local numbering.
    starts = np.flatnonzero(np.r_[True, inst[1:] != inst[:-1]])
    local = np.cumsum(np.r_[False, inst[1:] != inst[:-1]])
    counts = sample.counts[inst[starts]]
    # sin(a + b) = sin a cos b + cos a sin b with a = wy*y + phase, b = wx*x:
    # trigonometric functions are evaluated once per row and column only.
    freqs = psi / scale  # (N, 2) radians per pixel
    ay = sample.rows[:, None] * freqs[:, 0] + phases
    bx = sample.cols[:, None] * freqs[:, 1]
    sy, cy, sx, cx = np.sin(ay)[yi], np.cos(ay)[yi], np.sin(bx)[xi], np.cos(bx)[xi]
    s = sy * cx + cy * sx
    emb = np.add.reduceat(s, starts, axis=0) / counts[:, None]

    a_idx, b_idx, weights = [], [], []
    base = 0
    for i in images:
        k = sample.n_instances(i)
        base += k
        if k < 2:
            continue
        pi, pj = _pairs(k, max_pairs, rng)
        pi, pj = pi + base - k, pj + base - k
        a_idx.append(pi)
        b_idx.append(pj)
        weights.append(np.full(pi.size, 1.0 / pi.size))
    if not a_idx:
        return 0.0, np.zeros_like(psi), np.zeros_like(phases)
    a_idx, b_idx = np.concatenate(a_idx), np.concatenate(b_idx)
    weights = np.concatenate(weights) / len(images)

    diff = emb[a_idx] - emb[b_idx]
    dist = np.abs(diff).sum(axis=1)
    hinge = np.maximum(0.0, margin - dist)
    loss = float((weights * hinge).sum())
    active = hinge > 0
    if not np.any(active):
        return loss, np.zeros_like(psi), np.zeros_like(phases)
    g_pair = -np.sign(diff[active]) * weights[active, None]  # d loss / d emb[a]
    n_seg = emb.shape[0]
    g_emb = np.stack(
        [
            np.bincount(a_idx[active], g_pair[:, n], n_seg) - np.bincount(b_idx[active], g_pair[:, n], n_seg)
            for n in range(emb.shape[1])
        ],
        axis=1,
    )
    # d emb[k, n] / d arg[p, n] = cos(arg[p, n]) / count[k]
    c = cy * cx - sy * sx
    g_arg = (g_emb / counts[:, None])[local] * c  # (P, N)
    g_phase = g_arg.sum(axis=0)
    g_freq = np.stack([g_arg.T @ sample.rows[yi], g_arg.T @ sample.cols[xi]], axis=1)  # (N, 2)
    return loss, g_freq / scale, g_phase


def fit_guides(
    label_maps,
    n_guides=12,
    margin=0.5,
    *,
    init_range="auto-length",
    max_frequency=None,
    learning_rate=0.1,
    max_iter=1000,
    batch_size=16,
    max_pixels_per_instance=256,
    max_pairs_per_image=2000,
    margin_slack=0.1,
    tol=0.0,
    check_every=50,
    random_state=None,
    ref_shape=None,
    verbose=0,
):
    """Find harmonic guide functions that separate the instances of each image.

    Parameters
    ----------
    label_maps : list of ndarray of shape (H, W)
        Integer label maps, 0 = background. Sizes may differ.
    n_guides : int, default=12
        Number of guide functions N (the embedding dimension).
    margin : float, default=0.5
        The margin eps of eq. 4 (L1 distance).
    init_range : "auto-length", "auto" or tuple of float, default="auto-length"
        Frequencies are initialised uniformly in this range, in the paper's
        units (radians per image side of the reference shape); phases
        uniformly in [0, 2 pi). ``"auto-length"``: from 0 to the bound of
        :func:`auto_frequency_bound`, i.e. periods of at least
        :data:`~harmonic_seg.guides.fitting.AUTO_PERIOD_FACTOR` median
        instance lengths along each axis; ``"auto"``: median equivalent
        diameters instead (higher frequencies for long thin objects);
        the paper's choice is ``(0.0, 50.0)``.
    max_frequency : None, "init" or float, default=None
        Bound on the magnitude of every frequency component, in the same units
        as ``init_range`` (it also caps the initial range): after each step of
        the search, components are clipped to ``[-max_frequency,
        max_frequency]`` (projected Adam).
        ``None``: unbounded (the paper's search); ``"init"``: the upper end of
        the initial range, so that the search can move phases and directions
        but not raise frequencies past those it started from. Low frequencies
        give smooth targets that a network on a small budget learns well.
    learning_rate : float, default=0.1
        Adam step size, in paper units for frequencies and radians for phases.
    max_iter : int, default=1000
        Maximum number of minibatch steps.
    batch_size : int, default=16
        Images per minibatch (all their instance pairs are used, up to
        ``max_pairs_per_image`` random pairs for crowded images).
    max_pixels_per_instance : int, default=256
        About this many pixels per instance, on a regular lattice, represent
        it during the search.
    max_pairs_per_image : int, default=2000
    margin_slack : float, default=0.1
        The search uses ``margin * (1 + margin_slack)`` to absorb the noise of
        pixel subsampling.
    tol : float, default=0.0
        Stop once the loss on all training images is at most ``tol``.
    check_every : int, default=50
        How often (iterations) the loss on all training images is computed.
    random_state : int, RandomState instance or None, default=None
    ref_shape : tuple of int or None, default=None
        Reference (H, W) of the paper's units; default: median training shape.
    verbose : int, default=0
        0: silent; 1 or more: a progress bar (tqdm) over iterations.

    Returns
    -------
    GuideFitResult
    """
    label_maps = check_label_maps(label_maps, "label_maps")
    check_positive(n_guides, "n_guides", integer=True)
    check_positive(margin, "margin")
    check_positive(learning_rate, "learning_rate")
    check_positive(max_iter, "max_iter", integer=True, allow_zero=True)
    check_positive(batch_size, "batch_size", integer=True)
    check_positive(max_pixels_per_instance, "max_pixels_per_instance", integer=True)
    check_positive(max_pairs_per_image, "max_pairs_per_image", integer=True)
    check_positive(margin_slack, "margin_slack", allow_zero=True)
    ref = tuple(ref_shape) if ref_shape is not None else reference_shape(label_maps)
    scale = np.array([ref[0], ref[1]], dtype=np.float64)
    if isinstance(init_range, str) and init_range in AUTO_RANGES:
        lo, hi = np.zeros(2), _frequency_bound(label_maps, AUTO_PERIOD_FACTOR, AUTO_RANGES[init_range]) * scale
    elif isinstance(init_range, str):
        raise ValueError(f'init_range must be "auto", "auto-length" or a pair (low, high); got {init_range!r}.')
    else:
        try:
            lo, hi = (float(v) for v in init_range)
        except (TypeError, ValueError):
            raise ValueError(
                f'init_range must be "auto", "auto-length" or a pair (low, high) of numbers; got {init_range!r}.'
            ) from None
        if not (0 <= lo < hi < np.inf):
            raise ValueError(f"init_range must satisfy 0 <= low < high < inf; got {init_range!r}.")
        lo, hi = np.full(2, lo), np.full(2, hi)
    bound = _check_max_frequency(max_frequency, lo, hi)
    if bound is not None:
        hi = np.minimum(hi, bound)  # the initial frequencies obey the bound too

    rs = check_random_state(random_state)
    rng = np.random.default_rng(rs.randint(0, 2**31 - 1))
    psi = lo + rs.uniform(0.0, 1.0, size=(n_guides, 2)) * (hi - lo)
    phases = rs.uniform(0.0, 2 * np.pi, size=n_guides)

    t0 = time.perf_counter()
    sample = _InstanceSample(label_maps, max_pixels_per_instance, rng)
    n_inst = np.diff(sample.img_inst)
    n_pairs = int((n_inst * (n_inst - 1) // 2).sum())
    usable = np.flatnonzero(n_inst >= 2)
    result = GuideFitResult(GuideFunctions.from_paper_units(psi, phases, ref), init_bound=hi, n_pairs=n_pairs)
    logger.info("guide search: initial frequencies below %s radians per side of %s", np.round(hi, 2), ref)
    if usable.size == 0:
        msg = (
            "no training image holds two or more instances, so there is nothing to separate; "
            "the guide functions keep their random initialisation."
        )
        logger.warning(msg)
        result.warnings.append(msg)
        return result

    fit_margin = margin * (1.0 + margin_slack)
    # Adam state.
    m = [np.zeros_like(psi), np.zeros_like(phases)]
    v = [np.zeros_like(psi), np.zeros_like(phases)]
    b1, b2, adam_eps = 0.9, 0.999, 1e-8
    batch = min(batch_size, usable.size)
    bar = tqdm(total=max_iter, desc="guide search", unit="it", disable=verbose < 1, leave=False)
    for it in range(1, max_iter + 1):
        bar.update()
        images = rng.choice(usable, size=batch, replace=False)
        loss, g_psi, g_phase = _loss_and_grad(psi, phases, scale, sample, images, fit_margin, max_pairs_per_image, rng)
        result.loss_curve.append(loss)
        for k, (param, grad) in enumerate(((psi, g_psi), (phases, g_phase))):
            m[k] = b1 * m[k] + (1 - b1) * grad
            v[k] = b2 * v[k] + (1 - b2) * grad**2
            mhat = m[k] / (1 - b1**it)
            vhat = v[k] / (1 - b2**it)
            param -= learning_rate * mhat / (np.sqrt(vhat) + adam_eps)
        if bound is not None:
            np.clip(psi, -bound, bound, out=psi)
        result.n_iter = it
        if it % check_every == 0 or it == max_iter:
            full, _, _ = _loss_and_grad(psi, phases, scale, sample, usable, fit_margin, max_pairs_per_image, rng)
            logger.debug("guide search: iteration %d, loss on all images %.5f", it, full)
            bar.set_postfix(loss=f"{full:.4f}")
            if full <= tol:
                result.converged = True
                break
    bar.close()
    phases = np.mod(phases, 2 * np.pi)
    result.guides = GuideFunctions.from_paper_units(psi, phases, ref)
    logger.info(
        "guide search: %d iterations in %.2f s, converged=%s", result.n_iter, time.perf_counter() - t0, result.converged
    )
    return result


def pairwise_separation(label_maps, guides):
    """Exact L1 distances between the embeddings of same-image instance pairs.

    Parameters
    ----------
    label_maps : list of ndarray of shape (H, W)
    guides : GuideFunctions

    Returns
    -------
    distances : list of ndarray
        One array per image with the distances of all its pairs ``i < j``
        (empty for images with fewer than two instances).
    """
    label_maps = check_label_maps(label_maps, "label_maps")
    _check_guides(guides)
    out = []
    for lab in label_maps:
        _, emb = _instance_embeddings(lab, guides)
        i, j = np.triu_indices(emb.shape[0], 1)
        out.append(np.abs(emb[i] - emb[j]).sum(axis=1))
    return out


def separation_score(label_maps, guides, margin=0.5):
    """Fraction of same-image instance pairs whose embeddings are >= ``margin`` apart (L1).

    Computed exactly on every pixel and pooled over all pairs of all images.
    Returns ``nan`` when no image holds two instances.

    Parameters
    ----------
    label_maps : list of ndarray of shape (H, W)
    guides : GuideFunctions
    margin : float, default=0.5

    Returns
    -------
    score : float in [0, 1]
    """
    check_positive(margin, "margin")
    dists = pairwise_separation(label_maps, guides)
    d = np.concatenate(dists) if dists else np.zeros(0)
    if d.size == 0:
        return float("nan")
    return float(np.mean(d >= margin))
