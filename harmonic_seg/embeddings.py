"""Deprecated: this module moved to :mod:`harmonic_seg.guides.embeddings` (its public names are also in
:mod:`harmonic_seg.guides`). It stays importable, with a FutureWarning, for code and pickles that name it."""

import warnings

from .guides import embeddings as _new
from .guides.embeddings import *  # noqa: F401,F403
from .guides.embeddings import __all__  # noqa: F401

warnings.warn(
    "harmonic_seg.embeddings moved to harmonic_seg.guides.embeddings (its public names are also in "
    "harmonic_seg.guides); the old path is deprecated and will be removed in a future version. "
    "Import from harmonic_seg.guides.",
    FutureWarning,
    stacklevel=2,
)


def __getattr__(name):
    """The module's other names (not in __all__), as before the move."""
    return getattr(_new, name)
