"""The settings an evaluation runs under are restored when the last one ends."""

from __future__ import annotations

import gc
import threading

import numpy as np
import pytest

from claimready import arraywork
from claimready.arraywork import array_work


def _hugepages() -> bool:
    """Whether NumPy advises huge pages now (read by setting it back)."""
    switch = np._core.multiarray._set_madvise_hugepage  # type: ignore[attr-defined]
    before: bool = switch(True)
    switch(before)
    return before


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NUMPY_MADVISE_HUGEPAGE", raising=False)


def test_collector_and_huge_pages_are_off_inside_and_restored_after() -> None:
    assert gc.isenabled()
    hugepages = _hugepages()
    with array_work():
        assert not gc.isenabled()
        assert not _hugepages()
        np.ones(1 << 22).sum()
    assert gc.isenabled()
    assert _hugepages() == hugepages


def test_settings_stay_until_the_last_concurrent_user_leaves() -> None:
    inside, leave = threading.Event(), threading.Event()

    def other() -> None:
        with array_work():
            inside.set()
            leave.wait(10)

    thread = threading.Thread(target=other)
    thread.start()
    assert inside.wait(10)
    with array_work():
        pass
    assert not gc.isenabled()  # the other user is still inside
    leave.set()
    thread.join(10)
    assert gc.isenabled()


def test_an_error_inside_restores_the_settings() -> None:
    with pytest.raises(RuntimeError), array_work():
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_a_collector_turned_off_by_the_caller_stays_off() -> None:
    gc.disable()
    try:
        with array_work():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_environment_keeps_its_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUMPY_MADVISE_HUGEPAGE", "1")
    hugepages = _hugepages()
    assert arraywork._hugepage_switch() is None
    with array_work():
        pass
    assert _hugepages() == hugepages
