"""Shared thread pools: made on first use, and made again in a forked child."""

from __future__ import annotations

import os

import pytest

from claimready.threads import SharedPool


def test_a_pool_is_made_once_per_process() -> None:
    pool = SharedPool(2, "test-pool")
    first = pool.executor()
    assert pool.executor() is first
    assert first.submit(lambda: 41 + 1).result(timeout=10) == 42


@pytest.mark.filterwarnings("ignore:.*multi-threaded.*fork:DeprecationWarning")
def test_a_forked_child_gets_working_threads_of_its_own() -> None:
    pool = SharedPool(1, "test-fork")
    parent = pool.executor()
    assert parent.submit(os.getpid).result(timeout=10) == os.getpid()
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.close(read)
        try:
            mine = pool.executor()
            ok = mine is not parent and mine.submit(os.getpid).result(timeout=10) == os.getpid()
            os.write(write, b"ok" if ok else b"no")
        finally:
            os._exit(0)
    os.close(write)
    try:
        answer = os.read(read, 2)
    finally:
        os.close(read)
        os.waitpid(child, 0)
    assert answer == b"ok"
