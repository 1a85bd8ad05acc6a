"""Deprecated: this module moved to :mod:`harmonic_seg.guides.embeddings` (its public names are also in
:mod:`harmonic_seg.guides`). It stays importable, with a FutureWarning, for code and pickles that name it."""

from ._moved import forward_module

forward_module(globals(), "harmonic_seg.embeddings", "harmonic_seg.guides.embeddings")
