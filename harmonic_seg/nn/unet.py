"""U-Net embedding network with SinConv layers in the decoder (paper sections 3.2, 4).

The encoder is a stack of double-convolution blocks separated by 2x2 max
pooling; the decoder up-samples (bilinear or transposed convolution),
concatenates the skip connection and applies a double-convolution block whose
*first* convolution is a :class:`~harmonic_seg.nn.layers.SinConv` fed with the
guide maps at that block's resolution (stride ``2**level``), as in the paper.
Two 1x1 heads give ``n_outputs`` embedding channels and one foreground logit.

Default choices
---------------
``depth=4, base_width=32, norm="batch", upsample="bilinear"``. Four pooling
levels give a receptive field of about 200 pixels, enough to see whole cells
and leaves at the paper's 448-pixel crops; halving the paper's widths
(64..1024 -> 32..512) divides parameters and FLOPs by about four (7.9 M
parameters, most of them in the cheap 16x-down-sampled levels), which keeps a training step on a 2-core CPU at a few hundred
milliseconds per 256x256 crop while the ablations of the paper show the
embedding task is not capacity bound. BatchNorm is the default because in eval
mode it is a fixed per-channel affine map: predictions do not depend on the
tile a pixel is seen in, so tiled inference equals untiled inference (group or
instance norm normalise over the tile and break this). It trains well with the
small batches of 256-pixel crops used here since its statistics pool over all
pixels of the batch. Bilinear up-sampling has no parameters and no
checkerboard artefacts. Measured (benchmarks/bench_network.py): 28.7 GFLOPs
per 256x256 forward pass against 103 for the paper-size network (widths
64..512); on one H100, 380 training patches/s at 256x256 (batch 8). On a
2-core CPU a training step costs seconds per crop; ``base_width=16`` is about
four times cheaper for CPU-only experiments.
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..guides import GuideFunctions
from .layers import SinConv, as_origin, make_guide_mapper

logger = logging.getLogger(__name__)

__all__ = ["HarmonicUNet", "count_parameters"]

_NORMS = ("batch", "group", "instance", None)


def count_parameters(module, trainable_only=True):
    """Number of (trainable) parameters of a module."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def _norm(kind, channels):
    if kind is None:
        return nn.Identity()
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(math.gcd(8, channels), channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    raise ValueError(f"norm must be one of {_NORMS}; got {kind!r}.")


class _ConvBlock(nn.Module):
    """(conv 3x3 -> norm -> ReLU) x 2; the first conv may be a SinConv."""

    def __init__(self, cin, cout, norm, mapper=None, stride=1):
        super().__init__()
        bias = norm is None
        self.conv1 = SinConv(cin, cout, mapper=mapper, stride=stride, bias=bias)
        self.norm1 = _norm(norm, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=bias)
        self.norm2 = _norm(norm, cout)

    def forward(self, x, origin=None):
        x = F.relu(self.norm1(self.conv1(x, origin)), inplace=True)
        return F.relu(self.norm2(self.conv2(x)), inplace=True)


class _UpBlock(nn.Module):
    def __init__(self, cin, cskip, cout, norm, mapper, stride, upsample):
        super().__init__()
        self.upsample = upsample
        if upsample == "transpose":
            self.up = nn.ConvTranspose2d(cin, cout, 2, stride=2)
            cin = cout
        elif upsample != "bilinear":
            raise ValueError(f"upsample must be 'bilinear' or 'transpose'; got {upsample!r}.")
        self.block = _ConvBlock(cin + cskip, cout, norm, mapper=mapper, stride=stride)

    def forward(self, x, skip, origin):
        if self.upsample == "transpose":
            x = self.up(x)
        else:
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.block(torch.cat([x, skip], dim=1), origin)


class HarmonicUNet(nn.Module):
    """U-Net regressing harmonic embeddings and a foreground logit.

    Parameters
    ----------
    in_channels : int
        Channels of the input images.
    n_outputs : int
        Embedding channels (the number of guide functions of the targets).
    guides : GuideFunctions or None, default=None
        Guide set fed to the SinConv layers; required for ``variant="sin"``.
    variant : {"sin", "coord", "none"}, default="sin"
        ``"sin"``: SinConv layers with ``guides``; ``"coord"``: CoordConv
        (linear coordinate guides scaled by ``reference_shape``); ``"none"``:
        plain U-Net.
    depth : int, default=4
        Number of 2x2 pooling steps. Inputs are padded (bottom/right only, so
        that coordinates do not move) to a multiple of ``2**depth``.
    base_width : int, default=32
        Channels of the first level; level ``l`` has ``base_width * 2**l``,
        capped at ``max_width``.
    norm : {"batch", "group", "instance", None}, default="batch"
    reference_shape : tuple of int or None, default=None
        ``(H, W)`` scaling the coordinates for ``variant="coord"``.
    upsample : {"bilinear", "transpose"}, default="bilinear"
    max_width : int or None, default=None
        Cap on the channel count of any level.
    pad_mode : {"reflect", "replicate", "constant"}, default="reflect"
        Padding of inputs whose size is not a multiple of ``2**depth``
        (``"reflect"`` falls back to ``"replicate"`` on inputs too small to reflect).
    """

    def __init__(
        self,
        in_channels,
        n_outputs,
        guides=None,
        variant="sin",
        depth=4,
        base_width=32,
        norm="batch",
        reference_shape=None,
        upsample="bilinear",
        max_width=None,
        pad_mode="reflect",
    ):
        super().__init__()
        for name, v in (("in_channels", in_channels), ("n_outputs", n_outputs), ("base_width", base_width)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer; got {v!r}.")
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
            raise ValueError(f"depth must be a non-negative integer; got {depth!r}.")
        if norm not in _NORMS:
            raise ValueError(f"norm must be one of {_NORMS}; got {norm!r}.")
        if pad_mode not in ("reflect", "replicate", "constant"):
            raise ValueError(f"pad_mode must be 'reflect', 'replicate' or 'constant'; got {pad_mode!r}.")
        if guides is not None and not isinstance(guides, GuideFunctions):
            raise TypeError(f"guides must be a GuideFunctions instance or None; got {type(guides).__name__}.")
        mapper = make_guide_mapper(variant, guides, reference_shape)
        self.in_channels = in_channels
        self.n_outputs = n_outputs
        self.depth = depth
        self.variant = variant
        self.pad_mode = pad_mode
        self._config = dict(
            in_channels=in_channels,
            n_outputs=n_outputs,
            guides=None if guides is None else guides.to_dict(),
            variant=variant,
            depth=depth,
            base_width=base_width,
            norm=norm,
            reference_shape=None if reference_shape is None else [int(s) for s in reference_shape],
            upsample=upsample,
            max_width=max_width,
            pad_mode=pad_mode,
        )
        widths = [base_width * 2**lvl for lvl in range(depth + 1)]
        if max_width is not None:
            widths = [min(w, int(max_width)) for w in widths]
        self.widths = widths
        self.encoder = nn.ModuleList()
        cin = in_channels
        for w in widths:
            self.encoder.append(_ConvBlock(cin, w, norm))
            cin = w
        self.decoder = nn.ModuleList()
        for lvl in reversed(range(depth)):
            self.decoder.append(
                _UpBlock(cin, widths[lvl], widths[lvl], norm, mapper, stride=2**lvl, upsample=upsample)
            )
            cin = widths[lvl]
        self.head = nn.Conv2d(cin, n_outputs + 1, 1)

    # --- persistence -----------------------------------------------------------
    @property
    def config(self):
        """JSON-serialisable constructor arguments (see :meth:`from_config`)."""
        return {k: (list(v) if isinstance(v, list) else v) for k, v in self._config.items()}

    @classmethod
    def from_config(cls, config):
        """Build an (untrained) network from :attr:`config`."""
        cfg = dict(config)
        if cfg.get("guides") is not None:
            cfg["guides"] = GuideFunctions.from_dict(cfg["guides"])
        if cfg.get("reference_shape") is not None:
            cfg["reference_shape"] = tuple(cfg["reference_shape"])
        return cls(**cfg)

    @property
    def size_multiple(self):
        """Inputs are padded to a multiple of this (``2**depth``); tiles should start on it."""
        return 2**self.depth

    @property
    def receptive_field(self):
        """Upper bound on the side (pixels) of the receptive field of an output pixel.

        Counts 3x3 convolutions, 2x2 pooling and the 2-cell footprint of the
        up-sampling at every level, plus ``2**depth`` of slack for the
        position-dependent alignment of the pooling grid (the field is not
        centred on every pixel). An output pixel depends only on inputs within
        ``receptive_field // 2`` pixels of it, so tiled inference equals untiled
        inference (eval-mode BatchNorm or no norm) when ``overlap // 2`` is at
        least that; 246 for the default depth 4, 54 for depth 2.
        """
        rf = 1 + 4  # level-0 double conv
        for lvl in range(1, self.depth + 1):
            rf += 2 ** (lvl - 1) + 4 * 2**lvl  # pool + double conv at stride 2**lvl
        for lvl in range(self.depth):
            rf += 2 ** (lvl + 1) + 4 * 2**lvl  # up-sampling + double conv
        return rf + 2**self.depth

    def n_parameters(self, trainable_only=True):
        """Number of (trainable) parameters."""
        return count_parameters(self, trainable_only)

    # --- forward ---------------------------------------------------------------
    def forward(self, x, origin=None):
        """Embeddings and foreground logits.

        Parameters
        ----------
        x : torch.Tensor of shape (B, C, H, W)
            Any ``H, W >= 1``.
        origin : torch.Tensor or array-like of shape (B, 2) or (2,), default=None
            Global ``(y0, x0)`` of ``x[..., 0, 0]`` (zeros when None): the guide
            maps depend on absolute position, so crops and tiles pass their offset.

        Returns
        -------
        embedding : torch.Tensor of shape (B, n_outputs, H, W)
        fg_logit : torch.Tensor of shape (B, 1, H, W)
        """
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"x must have shape (B, {self.in_channels}, H, W); got {tuple(x.shape)}."
            )
        b, _, h, w = x.shape
        origin = as_origin(origin, b, x.device)
        m = self.size_multiple
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            mode = self.pad_mode
            if mode == "reflect" and (ph >= h or pw >= w):
                mode = "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        skips = []
        for lvl, block in enumerate(self.encoder):
            if lvl:
                x = F.max_pool2d(x, 2)
            x = block(x, origin)
            skips.append(x)
        for i, up in enumerate(self.decoder):
            x = up(x, skips[self.depth - 1 - i], origin)
        out = self.head(x)[..., :h, :w]
        return out[:, : self.n_outputs], out[:, self.n_outputs :]
