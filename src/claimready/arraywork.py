"""Process settings for a burst of large, short-lived arrays (an evaluation).

:func:`array_work` wraps work that makes and drops gigabytes of NumPy arrays in a
few seconds. While any such work runs:

- the cyclic garbage collector is paused: the work makes many arrays and result
  objects but no reference cycles, and each collection would walk every object
  the process holds while the other threads wait for the interpreter;
- NumPy stops advising the kernel to back its large arrays with 2 MiB pages.
  Each fresh huge page is zeroed whole on first touch, and on virtual machines
  that hand free memory back to their host (free page reporting) every one is
  fresh: zeroing took 29 % of an evaluation's CPU time there. Ordinary pages,
  recycled from the arrays just freed, cost far less. Whoever sets
  ``NUMPY_MADVISE_HUGEPAGE`` in the environment keeps their choice.

Both are restored when the last concurrent user leaves.
"""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np

_lock = threading.Lock()
_users = 0
_restore: list[Callable[[], object]] = []


def _hugepage_switch() -> Callable[[bool], bool] | None:
    """NumPy's switch for huge-page advice, unless the environment decides it."""
    if "NUMPY_MADVISE_HUGEPAGE" in os.environ:
        return None
    core = getattr(np, "_core", None) or getattr(np, "core", None)
    switch = getattr(getattr(core, "multiarray", None), "_set_madvise_hugepage", None)
    return switch if callable(switch) else None


@contextmanager
def array_work() -> Iterator[None]:
    """Run the body with the collector paused and NumPy's huge-page advice off."""
    global _users
    with _lock:
        _users += 1
        if _users == 1:
            if gc.isenabled():
                gc.disable()
                _restore.append(gc.enable)
            switch = _hugepage_switch()
            if switch is not None and switch(False):
                _restore.append(lambda: switch(True))
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0:
                while _restore:
                    _restore.pop()()
