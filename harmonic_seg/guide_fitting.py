"""Deprecated: this module moved to :mod:`harmonic_seg.guides.fitting` (its public names are also in
:mod:`harmonic_seg.guides`). It stays importable, with a FutureWarning, for code and pickles that name it."""

import warnings

from .guides import fitting as _new
from .guides.fitting import *  # noqa: F401,F403
from .guides.fitting import __all__  # noqa: F401

warnings.warn(
    "harmonic_seg.guide_fitting moved to harmonic_seg.guides.fitting (its public names are also in "
    "harmonic_seg.guides); the old path is deprecated and will be removed in a future version. "
    "Import from harmonic_seg.guides.",
    FutureWarning,
    stacklevel=2,
)


def __getattr__(name):
    """The module's other names (not in __all__), as before the move."""
    return getattr(_new, name)
