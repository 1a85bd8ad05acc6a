"""Where every block of a large image reads, clusters and writes (plain numpy, no dask).

A block owns its *core*: one chunk of the output. It clusters its *context*,
the core grown by ``overlap`` pixels on every side (clipped to the image), so
that an object that reaches into the core is seen whole when it is smaller
than the overlap. The network reads the *input* region: the context grown by
half the network's receptive field, its start moved down to a multiple of the
network's size multiple (the pooling grid of the whole image), so that the
embedding predicted for the context equals the whole image's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Block", "BlockPlan", "plan_blocks"]


@dataclass(frozen=True)
class Block:
    """One block: its grid index and three boxes ``(y0, y1, x0, x1)`` in whole-image pixels."""

    index: tuple
    core: tuple
    context: tuple
    input: tuple

    def strip(self, side, plan):
        """The box this block shares with its neighbour on ``side`` ("bottom" or "right"; "top", "left"):
        the intersection of both contexts, in whole-image pixels."""
        y0, y1, x0, x1 = self.context
        cy0, cy1, cx0, cx1 = self.core
        o, (h, w) = plan.overlap, plan.shape
        if side == "bottom":
            return max(0, cy1 - o), y1, x0, x1
        if side == "top":
            return y0, min(h, cy0 + o), x0, x1
        if side == "right":
            return y0, y1, max(0, cx1 - o), x1
        if side == "left":
            return y0, y1, x0, min(w, cx0 + o)
        raise ValueError(f"side must be 'top', 'bottom', 'left' or 'right'; got {side!r}.")


@dataclass(frozen=True)
class BlockPlan:
    """The blocks of an image of ``shape`` (H, W) in raster order, with the margins that made them."""

    shape: tuple
    chunks: tuple
    overlap: int
    network_margin: int
    multiple: int
    blocks: tuple

    @property
    def grid(self):
        """Number of blocks along (rows, columns)."""
        return len(self.chunks[0]), len(self.chunks[1])

    def block(self, i, j):
        return self.blocks[i * self.grid[1] + j]


def _starts(sizes):
    return np.concatenate([[0], np.cumsum(sizes)]).astype(int)


def plan_blocks(shape, chunks, overlap, network_margin, multiple):
    """Blocks of an image of ``shape`` (H, W) cut by ``chunks``.

    Parameters
    ----------
    shape : tuple of int
        (H, W).
    chunks : tuple of tuple of int
        Block sizes along rows and columns (dask's normalised chunks), summing to H and W.
    overlap : int
        Context added on every side of a block for the clustering.
    network_margin : int
        Input added on every side of the context for the network (half its receptive field).
    multiple : int
        Input regions start on multiples of this (the network's size multiple).

    Returns
    -------
    BlockPlan
    """
    h, w = (int(n) for n in shape)
    ys, xs = _starts(chunks[0]), _starts(chunks[1])
    if ys[-1] != h or xs[-1] != w:
        raise ValueError(f"chunks {chunks} do not add up to the image shape {(h, w)}.")
    blocks = []
    for i in range(len(ys) - 1):
        for j in range(len(xs) - 1):
            core = (int(ys[i]), int(ys[i + 1]), int(xs[j]), int(xs[j + 1]))
            ctx = (max(0, core[0] - overlap), min(h, core[1] + overlap),
                   max(0, core[2] - overlap), min(w, core[3] + overlap))
            iy0 = (max(0, ctx[0] - network_margin) // multiple) * multiple
            ix0 = (max(0, ctx[2] - network_margin) // multiple) * multiple
            inp = (iy0, min(h, ctx[1] + network_margin), ix0, min(w, ctx[3] + network_margin))
            blocks.append(Block((i, j), core, ctx, inp))
    return BlockPlan((h, w), tuple(tuple(int(c) for c in ch) for ch in chunks), int(overlap),
                     int(network_margin), int(multiple), tuple(blocks))


def local_slices(inner, outer):
    """Slices selecting the box ``inner`` inside an array that covers the box ``outer`` (both (y0, y1, x0, x1))."""
    return (slice(inner[0] - outer[0], inner[1] - outer[0]), slice(inner[2] - outer[2], inner[3] - outer[2]))
