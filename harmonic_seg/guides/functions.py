"""Guide functions: sine waves (paper eq. 3) or plain coordinates (CoordConv).

A guide set is stored in *absolute pixel units*: guide ``i`` at row ``y`` and
column ``x`` of an image is ``sin(wy_i * y + wx_i * x + phase_i)``. Because
nothing depends on the size of the array being evaluated, the same guide set
can be evaluated on any window of an image (a crop at an offset, one tile of a
huge image) or on a strided grid (a down-sampled level of a network), and the
same coordinates always give the same values.

The paper writes frequencies relative to the image size,
``sin(psi_1 x / W + psi_2 y / H + psi_3)``; :meth:`GuideFunctions.from_paper_units`
and :meth:`GuideFunctions.to_paper_units` convert given a reference shape.

This module needs numpy only.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
from sklearn.utils import check_random_state

from .._validation import check_shape_2d

__all__ = [
    "GuideFunctions",
    "guide_maps",
    "random_guides",
    "coordinate_guides",
    "FREQUENCY_RANGES",
]

#: Frequency ranges (paper units, radians per image side) of the fixed guide
#: sets used by the ablations of the paper's Tables 4-5. The paper does not
#: state its "low" and "high" ranges; these are our choice.
FREQUENCY_RANGES = {"random": (0.0, 50.0), "low": (0.0, 10.0), "high": (100.0, 200.0)}

_KINDS = ("sin", "linear")


@dataclass(frozen=True)
class GuideFunctions:
    """A set of N guide functions in absolute pixel coordinates.

    Parameters
    ----------
    frequencies : ndarray of shape (N, 2)
        ``(wy, wx)`` in radians per pixel along rows and columns.
    phases : ndarray of shape (N,)
        Phase offsets in radians.
    kind : {"sin", "linear"}, default="sin"
        ``"sin"``: ``f = sin(wy*y + wx*x + phase)`` (harmonic guides).
        ``"linear"``: ``f = wy*y + wx*x + phase`` (plain coordinates, as in
        CoordConv, when built by :func:`coordinate_guides`).
    """

    frequencies: np.ndarray
    phases: np.ndarray
    kind: str = "sin"

    def __post_init__(self):
        freqs = _real_array(self.frequencies, "frequencies", "(N, 2)")  # own copy: made read-only below
        phases = _real_array(self.phases, "phases", "(N,)")
        if freqs.ndim != 2 or freqs.shape[1] != 2 or freqs.shape[0] < 1:
            raise ValueError(f"frequencies must have shape (N, 2) with N >= 1; got {freqs.shape}.")
        if phases.shape != (freqs.shape[0],):
            raise ValueError(
                f"phases must have shape ({freqs.shape[0]},) to match frequencies; got {phases.shape}."
            )
        if not (np.all(np.isfinite(freqs)) and np.all(np.isfinite(phases))):
            raise ValueError("frequencies and phases must be finite.")
        if self.kind not in _KINDS:
            raise ValueError(f"kind must be one of {_KINDS}; got {self.kind!r}.")
        freqs.setflags(write=False)
        phases.setflags(write=False)
        object.__setattr__(self, "frequencies", freqs)
        object.__setattr__(self, "phases", phases)

    @property
    def n_guides(self):
        """Number of guide functions N."""
        return self.frequencies.shape[0]

    def __eq__(self, other):
        return (
            isinstance(other, GuideFunctions)
            and self.kind == other.kind
            and np.array_equal(self.frequencies, other.frequencies)
            and np.array_equal(self.phases, other.phases)
        )

    __hash__ = None

    # --- conversions ---------------------------------------------------------
    @classmethod
    def from_paper_units(cls, psi, phases, reference_shape):
        """Build from the paper's parametrisation ``sin(psi_x x/W + psi_y y/H + phase)``.

        Parameters
        ----------
        psi : array-like of shape (N, 2)
            ``(psi_y, psi_x)``: radians per image height and per image width.
        phases : array-like of shape (N,)
        reference_shape : tuple of int
            ``(H, W)`` of the reference image.
        """
        h, w = check_shape_2d(reference_shape, "reference_shape")
        psi = np.asarray(psi, dtype=np.float64)
        return cls(psi / np.array([h, w], dtype=np.float64), phases)

    def to_paper_units(self, reference_shape):
        """Frequencies as ``(psi_y, psi_x)`` in radians per image side of ``reference_shape``."""
        h, w = check_shape_2d(reference_shape, "reference_shape")
        return self.frequencies * np.array([h, w], dtype=np.float64)

    def to_dict(self):
        """JSON-serialisable description (used by the safe save format)."""
        return {
            "frequencies": self.frequencies.tolist(),
            "phases": self.phases.tolist(),
            "kind": self.kind,
        }

    @classmethod
    def from_dict(cls, d):
        """Inverse of :meth:`to_dict`."""
        if not isinstance(d, dict) or not {"frequencies", "phases"} <= set(d):
            raise ValueError(
                "a guide set must be a dict with the keys 'frequencies', 'phases' (and optionally 'kind'), as "
                f"written by GuideFunctions.to_dict(); got {d!r:.120}."
            )
        return cls(d["frequencies"], d["phases"], d.get("kind", "sin"))

    # --- evaluation ----------------------------------------------------------
    def evaluate(self, shape, origin=(0, 0), stride=1, dtype=np.float32):
        """Guide maps on a window; see :func:`guide_maps`."""
        return guide_maps(self, shape, origin=origin, stride=stride, dtype=dtype)

    def evaluate_at(self, coords):
        """Guide values at arbitrary points.

        Parameters
        ----------
        coords : ndarray of shape (P, 2)
            ``(y, x)`` pixel coordinates.

        Returns
        -------
        values : ndarray of shape (P, N), float64
        """
        arg = np.asarray(coords, dtype=np.float64) @ self.frequencies.T + self.phases
        return np.sin(arg) if self.kind == "sin" else arg


def _real_array(value, name, shape):
    """``value`` as a new float64 array, or a TypeError naming ``name``."""
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be an array of real numbers of shape {shape}; got {value!r:.80}.") from None
    return arr


def check_origin(origin, name="origin"):
    """``origin`` as a pair of finite floats ``(y0, x0)``, or a TypeError/ValueError naming it."""
    try:
        if isinstance(origin, (str, bytes)):
            raise TypeError
        y0, x0 = (float(v) for v in origin)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a pair of numbers (y0, x0); got {origin!r:.80}.") from None
    if not (np.isfinite(y0) and np.isfinite(x0)):
        raise ValueError(f"{name} must be a pair of finite numbers (y0, x0); got {origin!r:.80}.")
    return y0, x0


def window_coordinates(n, origin, stride):
    """Pixel coordinates of ``n`` cells of size ``stride`` starting at ``origin``.

    A cell of a grid down-sampled by ``stride`` covers input pixels
    ``origin + stride*i ... origin + stride*i + stride - 1``; its coordinate is
    the centre of that block, ``origin + stride*i + (stride - 1) / 2``. With
    this convention guide maps of every level of a U-Net are spatially aligned
    with the full-resolution output.
    """
    return origin + stride * np.arange(n, dtype=np.float64) + (stride - 1) / 2.0


def guide_maps(guides, shape, origin=(0, 0), stride=1, dtype=np.float32):
    """Evaluate a guide set on a (possibly offset, possibly strided) window.

    Parameters
    ----------
    guides : GuideFunctions
    shape : tuple of int
        ``(h, w)``: number of rows and columns of the output grid.
    origin : tuple of float, default=(0, 0)
        Global pixel coordinate ``(y0, x0)`` of the window's top-left pixel.
    stride : int, default=1
        Down-sampling factor of the grid (the paper's Delta_L). Cell ``(i, j)``
        stands for the block of input pixels starting at
        ``(y0 + stride*i, x0 + stride*j)`` and is evaluated at that block's centre.
    dtype : dtype, default=np.float32

    Returns
    -------
    maps : ndarray of shape (N, h, w)

    Notes
    -----
    Uses ``sin(a + b) = sin(a) cos(b) + cos(a) sin(b)``, so only ``N*(h + w)``
    sines are evaluated; the rest is multiply-adds.
    """
    if not isinstance(guides, GuideFunctions):
        raise TypeError(f"guides must be a GuideFunctions instance; got {type(guides).__name__}.")
    h, w = check_shape_2d(shape, "shape")
    if isinstance(stride, (bool, np.bool_)) or not isinstance(stride, numbers.Integral) or stride < 1:
        raise ValueError(f"stride must be a positive integer; got {stride!r}.")
    y0, x0 = check_origin(origin)
    ys = window_coordinates(h, y0, int(stride))
    xs = window_coordinates(w, x0, int(stride))
    (a1, b1), (a2, b2) = _separable_factors(guides, ys, xs)
    out = a1[:, :, None] * b1[:, None, :]
    out += a2[:, :, None] * b2[:, None, :]
    return out.astype(dtype, copy=False)


def _separable_factors(guides, ys, xs):
    """Every guide as a sum of two products of a row factor and a column factor.

    ``f_n(y, x) = a1[n, y] * b1[n, x] + a2[n, y] * b2[n, x]``: for sine guides
    ``sin(ay) cos(ax) + cos(ay) sin(ax)``, for linear ones ``ay * 1 + 1 * ax``.
    :func:`guide_maps` multiplies them out; sums of a guide over a run of
    pixels need only the row factor and prefix sums of the column factor.

    Parameters
    ----------
    guides : GuideFunctions
    ys, xs : ndarray of shape (h,) and (w,)
        Pixel coordinates of the rows and columns (:func:`window_coordinates`).

    Returns
    -------
    ((a1, b1), (a2, b2)) : ndarrays of shape (N, h) and (N, w)
    """
    ay = guides.frequencies[:, :1] * ys[None, :] + guides.phases[:, None]  # (N, h)
    ax = guides.frequencies[:, 1:] * xs[None, :]  # (N, w)
    if guides.kind == "linear":
        return (ay, np.ones_like(ax)), (np.ones_like(ay), ax)
    return (np.sin(ay), np.cos(ax)), (np.cos(ay), np.sin(ax))


def random_guides(n_guides, reference_shape, kind="random", random_state=None):
    """Fixed, un-optimised harmonic guides (the paper's ablation baselines).

    Parameters
    ----------
    n_guides : int
    reference_shape : tuple of int
        ``(H, W)`` that the paper-unit frequency range refers to.
    kind : {"random", "low", "high"} or tuple of float, default="random"
        Frequency range in paper units (see
        :data:`~harmonic_seg.guides.functions.FREQUENCY_RANGES`), or an
        explicit ``(low, high)`` range.
    random_state : int, RandomState instance or None, default=None

    Returns
    -------
    GuideFunctions
    """
    if isinstance(n_guides, (bool, np.bool_)) or not isinstance(n_guides, numbers.Integral) or n_guides < 1:
        raise ValueError(f"n_guides must be a positive integer; got {n_guides!r}.")
    check_shape_2d(reference_shape, "reference_shape")
    if isinstance(kind, str):
        if kind not in FREQUENCY_RANGES:
            raise ValueError(f"kind must be one of {sorted(FREQUENCY_RANGES)} or a (low, high) pair; got {kind!r}.")
        lo, hi = FREQUENCY_RANGES[kind]
    else:
        try:
            lo, hi = (float(v) for v in kind)
        except (TypeError, ValueError):
            raise ValueError(
                f"kind must be one of {sorted(FREQUENCY_RANGES)} or a (low, high) pair of numbers; got {kind!r}."
            ) from None
        if not 0 <= lo < hi < np.inf:
            raise ValueError(f"frequency range must satisfy 0 <= low < high < inf; got {kind!r}.")
    try:
        rng = check_random_state(random_state)
    except ValueError:
        raise ValueError(
            f"random_state must be None, an int in [0, 2**32 - 1] or a RandomState instance; got {random_state!r}."
        ) from None
    psi = rng.uniform(lo, hi, size=(int(n_guides), 2))
    phases = rng.uniform(0.0, 2 * np.pi, size=int(n_guides))
    return GuideFunctions.from_paper_units(psi, phases, reference_shape)


def coordinate_guides(reference_shape):
    """Two linear guides ``y / H`` and ``x / W`` (CoordConv's extra channels).

    Values span [0, 1) over the reference shape and keep growing beyond it, so
    they are defined on any window, like the harmonic guides.
    """
    h, w = check_shape_2d(reference_shape, "reference_shape")
    return GuideFunctions(np.array([[1.0 / h, 0.0], [0.0, 1.0 / w]]), np.zeros(2), kind="linear")
