"""Image transformers for pipelines: intensity normalisation and channel selection.

They take and return lists of images (H, W) or (H, W, C), so that they
compose with :class:`~harmonic_seg.HarmonicSegmenter` in a
:class:`sklearn.pipeline.Pipeline`. Both are stateless.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils._param_validation import Interval

from ._validation import check_images
from .preprocessing import percentile_normalize

__all__ = ["PercentileNormalizer", "ChannelSelector"]


class _ImageListTransformer(TransformerMixin, BaseEstimator):
    """Shared plumbing: stateless transformers of image lists."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.requires_fit = False
        tags.target_tags.required = False
        return tags

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Validate the parameters and the images; nothing is learned.

        Parameters
        ----------
        X : list of ndarray of shape (H, W) or (H, W, C)
        y : ignored

        Returns
        -------
        self
        """
        check_images(X, "X")
        return self


class PercentileNormalizer(_ImageListTransformer):
    """Map each image's ``low`` and ``high`` intensity percentiles to 0 and 1.

    Parameters
    ----------
    low : float, default=1.0
        Lower percentile, in [0, 100).
    high : float, default=99.8
        Upper percentile, in (low, 100].
    per_channel : bool, default=True
        Normalise the channels of a multi-channel image separately.

    Examples
    --------
    >>> import numpy as np
    >>> from harmonic_seg import PercentileNormalizer
    >>> out = PercentileNormalizer(0, 100).fit_transform([np.arange(16).reshape(4, 4)])
    >>> float(out[0].min()), float(out[0].max())
    (0.0, 1.0)
    """

    _parameter_constraints = {
        "low": [Interval(Real, 0, 100, closed="left")],
        "high": [Interval(Real, 0, 100, closed="right")],
        "per_channel": ["boolean"],
    }

    def __init__(self, low=1.0, high=99.8, *, per_channel=True):
        self.low = low
        self.high = high
        self.per_channel = per_channel

    def transform(self, X):
        """Normalised float32 copies of the images.

        Parameters
        ----------
        X : list of ndarray of shape (H, W) or (H, W, C)

        Returns
        -------
        list of ndarray of shape (H, W) or (H, W, C), float32
        """
        if not self.low < self.high:
            raise ValueError(f"low must be smaller than high; got low={self.low!r}, high={self.high!r}.")
        return [percentile_normalize(im, self.low, self.high, per_channel=self.per_channel) for im in check_images(X, "X")]


class ChannelSelector(_ImageListTransformer):
    """Keep some channels of multi-channel images.

    Parameters
    ----------
    channels : int or list of int, default=0
        Channel index (gives (H, W) images) or list of indices (gives
        (H, W, len(channels)) images). Negative indices count from the end.

    Examples
    --------
    >>> import numpy as np
    >>> from harmonic_seg import ChannelSelector
    >>> ChannelSelector(channels=[2, 0]).fit_transform([np.zeros((4, 5, 3))])[0].shape
    (4, 5, 2)
    """

    _parameter_constraints = {"channels": [Interval(Integral, None, None, closed="neither"), list, tuple]}

    def __init__(self, channels=0):
        self.channels = channels

    def transform(self, X):
        """Selected channels of each image.

        Parameters
        ----------
        X : list of ndarray of shape (H, W, C)

        Returns
        -------
        list of ndarray of shape (H, W) or (H, W, K)
        """
        images = check_images(X, "X")
        c = 1 if images[0].ndim == 2 else images[0].shape[2]
        idx = [self.channels] if isinstance(self.channels, Integral) else list(self.channels)
        if not idx or any(not isinstance(i, Integral) or not -c <= i < c for i in idx):
            raise ValueError(f"channels must be indices in [-{c}, {c - 1}] for images with {c} channel(s); got {self.channels!r}.")
        out = []
        for im in images:
            arr = im[..., None] if im.ndim == 2 else im
            sel = arr[..., idx]
            out.append(np.ascontiguousarray(sel[..., 0] if isinstance(self.channels, Integral) else sel))
        return out
