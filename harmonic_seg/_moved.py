"""Old module paths kept importable after a move: one FutureWarning at import, the same objects."""

from __future__ import annotations

import importlib
import warnings


def forward_module(namespace, old, new):
    """Make the module whose globals are ``namespace`` (``old``) an alias of the module ``new``.

    Copies ``new``'s public names (``__all__``) into ``namespace``, forwards every other name through
    a module ``__getattr__`` (private names included, for pickles and old imports) and warns once,
    pointing at the line that imported ``old``.
    """
    module = importlib.import_module(new)
    package = new.rsplit(".", 1)[0]
    namespace["__all__"] = list(module.__all__)
    namespace.update({name: getattr(module, name) for name in module.__all__})
    namespace["__getattr__"] = lambda name: getattr(module, name)
    warnings.warn(
        f"{old} moved to {new} (its public names are also in {package}); the old path is deprecated and "
        f"will be removed in a future version. Import from {package}.",
        FutureWarning,
        stacklevel=3,
    )
