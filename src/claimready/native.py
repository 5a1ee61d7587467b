"""The optional compiled helpers: each is built where a C compiler (and, for some,
OpenSSL's headers) was present at install, and has a Python stand-in with the
same results where it was not."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["optional_module"]


def optional_module(name: str) -> ModuleType | None:
    """The compiled module ``name``, or None where it was not built."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None
