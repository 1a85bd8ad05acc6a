"""The deprecation path of the clustering's old import paths (``harmonic_seg.nn.MeanShift``, ...)."""

from __future__ import annotations

import importlib
import warnings


def moved(old_module, name, new_module, *, stacklevel=3):
    """``new_module.name``, with a FutureWarning that ``old_module.name`` is deprecated."""
    warnings.warn(
        f"{old_module}.{name} moved to {new_module}.{name}; the old path is deprecated and will be removed in a "
        f"future version. Import it from {new_module}.",
        FutureWarning,
        stacklevel=stacklevel,
    )
    return getattr(importlib.import_module(new_module), name)
