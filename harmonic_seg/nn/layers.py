"""Torch layers that see the guide functions: :class:`GuideMapper` and :class:`SinConv`.

The guide maps are evaluated with exactly the convention of
:func:`harmonic_seg.guides.guide_maps`: a cell ``i`` of a grid down-sampled by
``stride`` whose top-left input pixel has global coordinate ``origin`` is
evaluated at ``origin + stride*i + (stride - 1)/2`` (the centre of the block of
input pixels it stands for), so the maps of every level of the network are
spatially aligned with the full-resolution output (paper section 3.2).
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import nn

from ..guides import GuideFunctions, coordinate_guides

logger = logging.getLogger(__name__)

__all__ = ["GuideMapper", "SinConv", "make_guide_mapper", "as_origin"]


def as_origin(origin, batch_size, device):
    """Per-sample global origins as a float64 tensor of shape (B, 2).

    Parameters
    ----------
    origin : None, array-like of shape (2,) or (B, 2), or tensor
        Global ``(y0, x0)`` of pixel ``[0, 0]`` of each sample; None means zeros.
    batch_size : int
    device : torch.device

    Returns
    -------
    origin : torch.Tensor of shape (B, 2), float64
    """
    if origin is None:
        return torch.zeros(batch_size, 2, dtype=torch.float64, device=device)
    if not torch.is_tensor(origin):
        origin = torch.as_tensor(np.asarray(origin, dtype=np.float64))
    origin = origin.to(device=device, dtype=torch.float64)
    if origin.ndim == 1:
        origin = origin.reshape(1, 2).expand(batch_size, 2)
    if origin.shape != (batch_size, 2):
        raise ValueError(f"origin must have shape ({batch_size}, 2) or (2,); got {tuple(origin.shape)}.")
    return origin


class GuideMapper(nn.Module):
    """Evaluates a guide set on strided, offset grids of a batch, in torch.

    Parameters
    ----------
    guides : GuideFunctions
        The guide set (absolute pixel units).
    dtype : torch.dtype, default=torch.float64
        Precision of the stored frequencies and phases and of the evaluation
        (the result is cast to the requested output dtype). float64 keeps the
        maps exact for large global coordinates (tiles of huge images).

    Notes
    -----
    Frequencies and phases are registered buffers: they move with the module
    (``.to(device)``) and are saved in its ``state_dict``.
    """

    def __init__(self, guides, dtype=torch.float64):
        super().__init__()
        if not isinstance(guides, GuideFunctions):
            raise TypeError(f"guides must be a GuideFunctions instance; got {type(guides).__name__}.")
        self.kind = guides.kind
        self.register_buffer("frequencies", torch.tensor(np.array(guides.frequencies), dtype=dtype))
        self.register_buffer("phases", torch.tensor(np.array(guides.phases), dtype=dtype))

    @property
    def n_guides(self):
        """Number of guide maps produced."""
        return int(self.phases.shape[0])

    def extra_repr(self):
        return f"n_guides={self.n_guides}, kind={self.kind!r}"

    def forward(self, origin, shape, stride=1, dtype=torch.float32):
        """Guide maps of a batch.

        Parameters
        ----------
        origin : torch.Tensor of shape (B, 2)
            Global ``(y0, x0)`` of the full-resolution pixel ``[0, 0]`` of each sample.
        shape : tuple of int
            ``(h, w)`` of the (down-sampled) grid.
        stride : int, default=1
            Down-sampling factor of the grid.
        dtype : torch.dtype, default=torch.float32
            Output dtype.

        Returns
        -------
        maps : torch.Tensor of shape (B, N, h, w)
        """
        h, w = int(shape[0]), int(shape[1])
        wdt = self.frequencies.dtype
        dev = self.frequencies.device
        origin = origin.to(device=dev, dtype=wdt)
        half = (stride - 1) / 2.0
        ys = origin[:, :1] + stride * torch.arange(h, device=dev, dtype=wdt)[None, :] + half  # (B, h)
        xs = origin[:, 1:] + stride * torch.arange(w, device=dev, dtype=wdt)[None, :] + half  # (B, w)
        ay = self.frequencies[None, :, :1] * ys[:, None, :] + self.phases[None, :, None]  # (B, N, h)
        ax = self.frequencies[None, :, 1:] * xs[:, None, :]  # (B, N, w)
        if self.kind == "linear":
            out = ay[..., :, None] + ax[..., None, :]
        else:
            out = torch.sin(ay)[..., :, None] * torch.cos(ax)[..., None, :]
            out = out + torch.cos(ay)[..., :, None] * torch.sin(ax)[..., None, :]
        return out.to(dtype)


def make_guide_mapper(variant, guides=None, reference_shape=None):
    """Guide mapper for a network variant.

    Parameters
    ----------
    variant : {"sin", "coord", "none"}
        ``"sin"``: the harmonic guides ``guides`` (SinConv); ``"coord"``:
        CoordConv's linear guides of :func:`~harmonic_seg.guides.coordinate_guides`
        for ``reference_shape``; ``"none"``: no extra maps.
    guides : GuideFunctions or None
    reference_shape : tuple of int or None

    Returns
    -------
    GuideMapper or None
    """
    if variant == "sin":
        if guides is None:
            raise ValueError("variant='sin' needs guides (a GuideFunctions instance).")
        return GuideMapper(guides)
    if variant == "coord":
        if reference_shape is None:
            raise ValueError("variant='coord' needs reference_shape (H, W) to scale the coordinates.")
        return GuideMapper(coordinate_guides(reference_shape))
    if variant == "none":
        return None
    raise ValueError(f"variant must be one of 'sin', 'coord', 'none'; got {variant!r}.")


class SinConv(nn.Module):
    """Convolution whose input is augmented with guide maps (paper Fig. 3).

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the feature input (without guides) and of the output.
    mapper : GuideMapper or None
        Source of the guide maps; None gives a plain convolution (variant
        ``"none"``). The mapper is shared between layers, not owned.
    stride : int, default=1
        Down-sampling factor of the input grid relative to the network input
        (the paper's Delta_L); the guide maps are evaluated at that stride.
    kernel_size : int, default=3
    bias : bool, default=True
    """

    def __init__(self, in_channels, out_channels, mapper=None, stride=1, kernel_size=3, bias=True):
        super().__init__()
        # May be shared between layers; its buffers then appear once per layer
        # in the state dict, which is harmless.
        self.mapper = mapper
        self.level_stride = int(stride)
        self.n_extra = 0 if mapper is None else mapper.n_guides
        self.conv = nn.Conv2d(
            in_channels + self.n_extra, out_channels, kernel_size, padding=kernel_size // 2, bias=bias
        )

    def extra_repr(self):
        return f"stride={self.level_stride}, n_extra={self.n_extra}"

    def forward(self, x, origin=None):
        """Apply the convolution to ``cat(x, guide maps)``.

        Parameters
        ----------
        x : torch.Tensor of shape (B, C, h, w)
        origin : torch.Tensor of shape (B, 2) or None
            Global full-resolution coordinates of ``x``'s top-left pixel block.
        """
        if self.n_extra:
            origin = as_origin(origin, x.shape[0], x.device)
            maps = self.mapper(origin, x.shape[-2:], self.level_stride, dtype=x.dtype)
            x = torch.cat([x, maps.to(x.device)], dim=1)
        return self.conv(x)
