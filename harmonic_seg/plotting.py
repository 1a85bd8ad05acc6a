"""Figures of guide functions, embeddings and instance segmentations.

The array helpers (:func:`embedding_to_rgb`, :func:`label_to_rgb`) need numpy
(and scikit-image) only. The ``plot_*`` functions and
:func:`overlay_instances` need matplotlib (``pip install matplotlib`` or
``pip install harmonic_seg[plot]``), which is imported when they are first
called, so ``import harmonic_seg.plotting`` works without it.

Figures made here (when no ``ax`` is given) are plain
:class:`matplotlib.figure.Figure` objects drawn on an Agg canvas: they never
touch pyplot's global state or open a window, work on headless machines, are
saved with ``fig.savefig(...)`` and are displayed by Jupyter. To draw into an
interactive window, pass ``ax`` from ``matplotlib.pyplot.subplots()``.

Examples
--------
>>> import numpy as np
>>> from harmonic_seg.plotting import embedding_to_rgb, label_to_rgb
>>> labels = np.zeros((8, 8), int); labels[1:4, 1:4] = 1; labels[5:7, 2:8] = 2
>>> label_to_rgb(labels).shape
(8, 8, 3)
>>> rgb = embedding_to_rgb(np.random.default_rng(0).normal(size=(4, 8, 8)), labels > 0)
>>> bool(rgb.min() >= 0 and rgb.max() <= 1 and (rgb[labels == 0] == 0).all())
True
"""

from __future__ import annotations

import numbers

import numpy as np

from ._validation import check_image, check_label_map, check_shape_2d
from .guides import GuideFunctions

__all__ = [
    "plot_guides",
    "embedding_to_rgb",
    "plot_embedding",
    "label_to_rgb",
    "overlay_instances",
    "plot_comparison",
]

_GOLDEN = 0.618033988749895
_PCA_MAX_POINTS = 100_000
_METHODS = ("pca", "random")


# ---------------------------------------------------------------------------
# matplotlib plumbing
# ---------------------------------------------------------------------------
def _require_matplotlib():
    """Import matplotlib's object-oriented API, or fail with an install hint."""
    try:
        import matplotlib  # noqa: F401
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(
            "harmonic_seg.plotting's plot functions need matplotlib, which is not installed: "
            "pip install matplotlib  (or: pip install harmonic_seg[plot])."
        ) from exc
    return Figure, FigureCanvasAgg


def _new_figure(ncols, figsize=None, nrows=1):
    """A constrained-layout Figure on an Agg canvas with ``nrows x ncols`` axes (pyplot untouched)."""
    Figure, FigureCanvasAgg = _require_matplotlib()
    if figsize is None:
        figsize = (3.2 * ncols, 3.2 * nrows)
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes.ravel()


def _check_ax(ax, name="ax"):
    if not (hasattr(ax, "imshow") and hasattr(ax, "figure")):
        raise TypeError(f"{name} must be a matplotlib Axes or None; got {type(ax).__name__}.")
    return ax


def _show(ax, rgb_or_map, title=None, **kwargs):
    ax.imshow(rgb_or_map, interpolation="nearest", **kwargs)
    ax.set_xticks([])
    ax.set_yticks([])
    if title is not None:
        ax.set_title(title)


# ---------------------------------------------------------------------------
# validation helpers
# ---------------------------------------------------------------------------
def _check_embedding(embedding, name="embedding"):
    if embedding is None or isinstance(embedding, (str, bytes)):
        raise TypeError(f"{name} must be an array of shape (N, H, W); got {type(embedding).__name__}.")
    arr = np.asarray(embedding)
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool) or np.iscomplexobj(arr):
        raise TypeError(f"{name} must hold real numbers; got dtype {arr.dtype}.")
    if arr.ndim != 3:
        raise ValueError(
            f"{name} must have shape (N, H, W) (channels first, as returned by predict_embeddings); "
            f"got shape {arr.shape}."
        )
    if 0 in arr.shape:
        raise ValueError(f"{name} must not be empty; got shape {arr.shape}.")
    if arr.dtype != np.float32:
        arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values.")
    return arr


def _check_mask(mask, shape, name):
    if isinstance(mask, (str, bytes)):
        raise TypeError(f"{name} must be an array of shape {tuple(shape)}; got {type(mask).__name__}.")
    arr = np.asarray(mask)
    if arr.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)} to match the image; got shape {arr.shape}.")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"{name} must be a boolean or numeric mask; got dtype {arr.dtype}.")
    return arr != 0


def _check_labels_for_display(labels, name, shape=None):
    """A 2-D label map, or a (K, H, W) stack of possibly overlapping masks (shown first-wins)."""
    arr = np.asarray(labels) if not isinstance(labels, (str, bytes)) and labels is not None else labels
    if isinstance(arr, np.ndarray) and arr.ndim == 3:
        if not (arr.dtype == bool or np.issubdtype(arr.dtype, np.integer)):
            raise TypeError(f"{name} given as a (K, H, W) mask stack must be boolean or integer; got {arr.dtype}.")
        masks = arr != 0
        if masks.shape[0] == 0:
            lab = np.zeros(masks.shape[1:], np.int32)
        else:
            lab = np.where(masks.any(axis=0), masks.argmax(axis=0) + 1, 0).astype(np.int32)
    else:
        lab = check_label_map(arr, name)
    if shape is not None and lab.shape != tuple(shape):
        raise ValueError(f"{name} must have spatial shape {tuple(shape)} to match the image; got {lab.shape}.")
    return lab


def _image_to_rgb(image, name="image", percentiles=(1.0, 99.8)):
    """(H, W[, C]) image -> (H, W, 3) float in [0, 1] (per-channel percentile scaling)."""
    arr = check_image(image, name).astype(np.float64, copy=False)
    if arr.ndim == 3:
        c = arr.shape[2]
        if c == 1:
            arr = arr[:, :, 0]
        elif c in (3, 4):
            arr = arr[:, :, :3]
        else:
            raise ValueError(
                f"{name} must have 1, 3 or 4 channels to be displayed; got shape {arr.shape}. "
                f"Pass one channel, e.g. {name}[..., 0]."
            )
    flat = arr.reshape(-1, 1 if arr.ndim == 2 else 3)
    lo, hi = np.percentile(flat, percentiles, axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    scaled = np.clip((flat - lo) / span, 0.0, 1.0)
    if arr.ndim == 2:
        scaled = np.repeat(scaled, 3, axis=1)
    return scaled.reshape(arr.shape[0], arr.shape[1], 3)


def _unwrap_guides(guides):
    """Accept GuideFunctions, a fitted GuideFunctionFitter or a fitted HarmonicSegmenter."""
    obj = guides
    for _ in range(2):
        if isinstance(obj, GuideFunctions):
            return obj
        obj = getattr(obj, "guides_", None)
    if isinstance(obj, GuideFunctions):
        return obj
    raise TypeError(
        "guides must be a GuideFunctions instance (or a fitted GuideFunctionFitter / HarmonicSegmenter); "
        f"got {type(guides).__name__}."
    )


# ---------------------------------------------------------------------------
# numpy-only colour conversions
# ---------------------------------------------------------------------------
def embedding_to_rgb(embedding, foreground=None, random_state=0, *, method="pca", percentiles=(1.0, 99.0)):
    """Project an embedding map to RGB colours (background black).

    Parameters
    ----------
    embedding : array-like of shape (N, H, W)
        Per-pixel embeddings, channels first (as returned by
        :meth:`HarmonicSegmenter.predict_embeddings` or
        :func:`harmonic_seg.guides.embedding_map`).
    foreground : array-like of shape (H, W) or None, default=None
        Pixels to colour (non-zero = foreground, so a label map works); the
        rest is black. None treats the pixels whose embedding is exactly zero
        as background (the background of a target embedding map) and every
        other pixel as foreground.
    random_state : int, default=0
        Seed of the pixel subsample the PCA is fitted on (at most 100,000
        foreground pixels) and of the random projection. The result is a
        deterministic function of the inputs and this seed.
    method : {"pca", "random"}, default="pca"
        ``"pca"``: the three leading principal components of the foreground
        embeddings, each with its sign fixed so that its largest loading is
        positive. ``"random"``: a fixed Gaussian random projection to three
        dimensions (unit-norm columns), independent of the data.
    percentiles : tuple of float, default=(1.0, 99.0)
        Each projected channel is mapped linearly from these percentiles of
        its foreground values to [0, 1] and clipped (robust to outliers).

    Returns
    -------
    rgb : ndarray of shape (H, W, 3), float32
        Values in [0, 1]; exactly 0 outside the foreground. A channel that
        is constant over the foreground is set to 0.5 there; with N < 3 the
        missing channels repeat the available ones (N = 1 gives grey levels).

    Raises
    ------
    ValueError
        If ``embedding`` is not 3-D or not finite, if ``foreground`` does
        not match its spatial shape, or if ``method`` or ``percentiles`` are
        invalid.
    """
    emb = _check_embedding(embedding)
    n, h, w = emb.shape
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}; got {method!r}.")
    try:
        p_lo, p_hi = (float(p) for p in percentiles)
    except (TypeError, ValueError):
        raise ValueError(f"percentiles must be a pair (low, high); got {percentiles!r}.") from None
    if not 0 <= p_lo < p_hi <= 100:
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100; got {percentiles!r}.")
    if isinstance(random_state, bool) or not isinstance(random_state, (numbers.Integral, type(None))):
        raise TypeError(f"random_state must be an int or None; got {type(random_state).__name__}.")
    if foreground is None:
        fg = np.any(emb != 0, axis=0)
    else:
        fg = _check_mask(foreground, (h, w), "foreground")
    rgb = np.zeros((h, w, 3), np.float32)
    points = emb[:, fg].T  # (P, N)
    if points.shape[0] == 0:
        return rgb
    rng = np.random.default_rng(random_state)
    if method == "random":
        proj = rng.standard_normal((n, 3))
        proj /= np.linalg.norm(proj, axis=0, keepdims=True)
        values = points @ proj.astype(points.dtype)
    else:
        sample = points
        if points.shape[0] > _PCA_MAX_POINTS:
            sample = points[np.sort(rng.choice(points.shape[0], _PCA_MAX_POINTS, replace=False))]
        sample = sample.astype(np.float64)
        mean = sample.mean(axis=0)
        centred = sample - mean
        cov = centred.T @ centred / max(1, sample.shape[0] - 1)
        evals, evecs = np.linalg.eigh(cov)  # ascending
        comps = evecs[:, ::-1][:, : min(3, n)]
        signs = np.sign(comps[np.abs(comps).argmax(axis=0), np.arange(comps.shape[1])])
        comps = comps * np.where(signs == 0, 1.0, signs)
        values = (points - mean.astype(points.dtype)) @ comps.astype(points.dtype)
        if values.shape[1] < 3:
            values = values[:, np.arange(3) % values.shape[1]]
    lo, hi = np.percentile(values, [p_lo, p_hi], axis=0)
    const = hi - lo <= 1e-12 * np.maximum(1.0, np.abs(hi))
    scaled = np.clip((values - lo) / np.where(const, 1.0, hi - lo), 0.0, 1.0)
    scaled[:, const] = 0.5
    rgb[fg] = scaled.astype(np.float32)
    return rgb


def label_to_rgb(labels):
    """Colour an instance label map: one colour per instance id, background black.

    Parameters
    ----------
    labels : array-like of shape (H, W)
        Integer label map, 0 = background.

    Returns
    -------
    rgb : ndarray of shape (H, W, 3), float32
        Values in [0, 1]. An instance's colour depends only on its id (hues
        spaced by the golden ratio, alternating saturation and brightness),
        so neighbouring ids get clearly different colours and an id keeps its
        colour from one image to the next. Background is exactly 0.

    Raises
    ------
    ValueError, TypeError
        If ``labels`` is not a 2-D map of non-negative integers.
    """
    from skimage.color import hsv2rgb

    lab = check_label_map(labels, "labels")
    ids, inverse = np.unique(lab, return_inverse=True)
    idf = ids.astype(np.float64)
    hsv = np.stack(
        [
            np.mod(idf * _GOLDEN, 1.0),
            np.where(ids % 2 == 0, 0.65, 0.9),
            np.where((ids // 2) % 2 == 0, 1.0, 0.8),
        ],
        axis=-1,
    )
    table = hsv2rgb(hsv[None]).reshape(-1, 3).astype(np.float32)
    table[ids == 0] = 0.0
    return table[inverse.reshape(lab.shape)]


def _overlay_rgb(image, labels, alpha, boundaries):
    """Composite of an image with instance colours; numpy only."""
    base = _image_to_rgb(image, "image")
    lab = _check_labels_for_display(labels, "labels", base.shape[:2])
    colours = label_to_rgb(lab).astype(np.float64)
    fg = lab > 0
    out = base.copy()
    out[fg] = (1.0 - alpha) * base[fg] + alpha * colours[fg]
    if boundaries:
        from skimage.segmentation import find_boundaries

        edge = find_boundaries(lab, mode="inner") & fg
        out[edge] = colours[edge]
    return out


# ---------------------------------------------------------------------------
# plot functions (matplotlib)
# ---------------------------------------------------------------------------
def plot_guides(guides, shape, n=3, ax=None, *, origin=(0, 0), cmap="RdBu_r"):
    """Show guide functions as images (the left column of the paper's Fig. 2).

    Parameters
    ----------
    guides : GuideFunctions
        Or a fitted :class:`GuideFunctionFitter` / :class:`HarmonicSegmenter`,
        whose guide functions are shown.
    shape : tuple of int
        ``(H, W)`` of the window on which the guides are evaluated (e.g. the
        shape of a training image).
    n : int, default=3
        Number of guide functions shown (the first ``n``; at most
        ``guides.n_guides``).
    ax : matplotlib Axes, sequence of ``n`` Axes, or None, default=None
        None: a new figure with one panel per guide. One Axes: the ``n`` maps
        side by side in that Axes, separated by a blank column. A sequence:
        one map per Axes.
    origin : tuple of float, default=(0, 0)
        Global coordinate of the window's top-left pixel.
    cmap : str, default="RdBu_r"
        Colour map; harmonic guides are shown on the fixed range [-1, 1],
        linear (coordinate) guides on each map's own range.

    Returns
    -------
    axes : ndarray of Axes, or Axes
        The Axes drawn into (``axes[0].figure`` is the figure).

    Raises
    ------
    ValueError
        If ``shape`` is not a pair of positive integers, ``n`` is not in
        ``1 .. guides.n_guides`` or a sequence ``ax`` does not hold ``n`` Axes.
    ImportError
        If matplotlib is not installed.
    """
    g = _unwrap_guides(guides)
    h, w = check_shape_2d(shape, "shape")
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or not 1 <= n <= g.n_guides:
        raise ValueError(f"n must be an integer between 1 and the number of guides ({g.n_guides}); got {n!r}.")
    _require_matplotlib()
    maps = g.evaluate((h, w), origin=origin, dtype=np.float64)[: int(n)]
    if g.kind == "sin":
        vmin, vmax = -1.0, 1.0
    else:  # linear guides: each on its own range, displayed in [0, 1]
        lo = maps.min(axis=(1, 2), keepdims=True)
        hi = maps.max(axis=(1, 2), keepdims=True)
        maps = (maps - lo) / np.where(hi > lo, hi - lo, 1.0)
        vmin, vmax = 0.0, 1.0
    titles = [f"guide {i + 1}" for i in range(int(n))]
    if ax is None:
        _, axes = _new_figure(int(n))
    elif hasattr(ax, "imshow"):
        ax = _check_ax(ax)
        gap = max(1, w // 20)
        parts = []
        for i, m in enumerate(maps):
            if i:
                parts.append(np.full((h, gap), np.nan))
            parts.append(m)
        _show(ax, np.concatenate(parts, axis=1), f"guides 1-{int(n)}", cmap=cmap, vmin=vmin, vmax=vmax)
        return ax
    else:
        axes = list(ax)
        if len(axes) != int(n):
            raise ValueError(f"ax must be None, one Axes or a sequence of n={int(n)} Axes; got {len(axes)} Axes.")
        axes = np.array([_check_ax(a) for a in axes], dtype=object)
    for a, m, t in zip(axes, maps, titles):
        _show(a, m, t, cmap=cmap, vmin=vmin, vmax=vmax)
    return axes


def plot_embedding(embedding, foreground=None, *, ax=None, method="pca", random_state=0, title=None):
    """Show an embedding map in RGB (the paper's Fig. 2, middle and right).

    Parameters
    ----------
    embedding : array-like of shape (N, H, W)
    foreground : array-like of shape (H, W) or None, default=None
        See :func:`embedding_to_rgb`.
    ax : matplotlib Axes or None, default=None
        None: a new one-panel figure.
    method : {"pca", "random"}, default="pca"
    random_state : int, default=0
    title : str or None, default=None

    Returns
    -------
    ax : Axes

    Raises
    ------
    ValueError
        See :func:`embedding_to_rgb`.
    ImportError
        If matplotlib is not installed.
    """
    _require_matplotlib()
    rgb = embedding_to_rgb(embedding, foreground, random_state, method=method)
    ax = _new_figure(1)[1][0] if ax is None else _check_ax(ax)
    _show(ax, rgb, title)
    return ax


def overlay_instances(image, labels, alpha=0.5, ax=None, *, boundaries=True, title=None):
    """Show instances over an image: blended colours and instance outlines.

    Parameters
    ----------
    image : array-like of shape (H, W) or (H, W, C)
        Grey-level or RGB(A) image, any numeric dtype (percentile-scaled for
        display).
    labels : array-like of shape (H, W) or (K, H, W)
        Label map (0 = background) or a stack of possibly overlapping masks
        (shown with the lower index on top).
    alpha : float, default=0.5
        Opacity of the instance colours (0: image only, 1: colours only).
    ax : matplotlib Axes or None, default=None
        None: a new one-panel figure.
    boundaries : bool, default=True
        Draw each instance's inner boundary in its full colour.
    title : str or None, default=None

    Returns
    -------
    ax : Axes

    Raises
    ------
    ValueError
        If the shapes of ``image`` and ``labels`` differ or ``alpha`` is not
        in [0, 1].
    ImportError
        If matplotlib is not installed.
    """
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must be a number in [0, 1]; got {alpha!r}.")
    _require_matplotlib()
    rgb = _overlay_rgb(image, labels, float(alpha), bool(boundaries))
    ax = _new_figure(1)[1][0] if ax is None else _check_ax(ax)
    _show(ax, rgb, title)
    return ax


def plot_comparison(
    image,
    y_true,
    y_pred,
    *,
    embedding=None,
    foreground=None,
    titles=None,
    path=None,
    figsize=None,
    dpi=100,
):
    """Image | ground truth | prediction (| predicted embedding) side by side.

    Parameters
    ----------
    image : array-like of shape (H, W) or (H, W, C)
        The input image (1, 3 or 4 channels; percentile-scaled for display).
    y_true : array-like of shape (H, W) or (K, H, W)
        Ground-truth label map, or a stack of possibly overlapping instance
        masks (e.g. ``Dataset.masks`` of BBBC010).
    y_pred : array-like of shape (H, W)
        Predicted label map.
    embedding : array-like of shape (N, H, W) or None, default=None
        Predicted embedding; adds a fourth panel (see :func:`embedding_to_rgb`).
    foreground : array-like of shape (H, W) or None, default=None
        Pixels coloured in the embedding panel; None uses ``y_pred > 0``.
    titles : sequence of str or None, default=None
        One title per panel; None gives "image", "ground truth (K)",
        "prediction (K)" and "predicted embedding", K being instance counts.
    path : str, path-like or None, default=None
        When given, the figure is saved there (format from the suffix).
    figsize : tuple of float or None, default=None
        None: 3.2 inches per panel, scaled to the image's aspect ratio.
    dpi : float, default=100
        Resolution of the saved file.

    Returns
    -------
    fig : matplotlib.figure.Figure
        Drawn on an Agg canvas; nothing is shown.

    Raises
    ------
    ValueError
        If the spatial shapes of the arrays differ, or ``titles`` does not
        hold one title per panel.
    ImportError
        If matplotlib is not installed.
    """
    _require_matplotlib()
    rgb = _image_to_rgb(image, "image")
    shape = rgb.shape[:2]
    truth = _check_labels_for_display(y_true, "y_true", shape)
    pred = check_label_map(y_pred, "y_pred")
    if pred.shape != shape:
        raise ValueError(f"y_pred must have shape {shape} to match the image; got shape {pred.shape}.")
    panels = [rgb, label_to_rgb(truth), label_to_rgb(pred)]
    if embedding is not None:
        emb = _check_embedding(embedding)
        if emb.shape[1:] != shape:
            raise ValueError(f"embedding must have spatial shape {shape} to match the image; got shape {emb.shape}.")
        fg = pred > 0 if foreground is None else _check_mask(foreground, shape, "foreground")
        panels.append(embedding_to_rgb(emb, fg))
    elif foreground is not None:
        raise ValueError("foreground is only used with embedding=...; got foreground without an embedding.")
    if titles is None:
        titles = [
            "image",
            f"ground truth ({np.unique(truth[truth > 0]).size})",
            f"prediction ({np.unique(pred[pred > 0]).size})",
            "predicted embedding",
        ][: len(panels)]
    else:
        if isinstance(titles, str) or len(titles) != len(panels):
            got = "a string" if isinstance(titles, str) else f"{len(titles)} titles"
            raise ValueError(f"titles must hold one title per panel ({len(panels)}); got {got}.")
        titles = [str(t) for t in titles]
    if isinstance(dpi, bool) or not isinstance(dpi, numbers.Real) or dpi <= 0:
        raise ValueError(f"dpi must be a positive number; got {dpi!r}.")
    if figsize is None:
        aspect = shape[0] / shape[1]
        figsize = (3.2 * len(panels), 3.2 * aspect + 0.5)
    fig, axes = _new_figure(len(panels), figsize=figsize)
    for a, p, t in zip(axes, panels, titles):
        _show(a, p, t)
    if path is not None:
        fig.savefig(path, dpi=dpi)
    return fig
