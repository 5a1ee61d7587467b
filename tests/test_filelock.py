"""The lock across threads and processes that guards a ledger's files and a blob store."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from claimready.errors import StorageError
from claimready.filelock import FileLock


def test_a_file_lock_excludes_another_holder_and_keeps_its_file_open(tmp_path: Path) -> None:
    """Two locks on one file exclude each other (as two processes do); between uses the
    file stays open, and it closes only when the lock is not held."""
    path = tmp_path / "sequence.lock"
    first, second = FileLock(path), FileLock(path)
    taken = threading.Event()

    def take_second() -> None:
        with second:
            taken.set()

    with first:
        waiter = threading.Thread(target=take_second)
        waiter.start()
        assert not taken.wait(0.2)  # blocked while the first holds the lock
        with pytest.raises(StorageError, match="while it is held"):
            first.close()
    waiter.join(5)
    assert taken.is_set()
    descriptor = first._fd
    with first:
        assert first._fd == descriptor
    first.close()
    second.close()
    assert first._fd == second._fd == -1
    with first:  # reopened on the next use
        assert first._fd >= 0
    first.close()


def test_a_forked_child_takes_its_own_lock(tmp_path: Path) -> None:
    """A child forked with the lock file open does not share the parent's lock."""
    lock = FileLock(tmp_path / "store.lock")
    with lock:
        pass  # the file is open now, and stays open
    go_read, go_write = os.pipe()
    done_read, done_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: once told, takes the lock, then reports
        status = 1
        try:
            os.read(go_read, 1)
            with lock:
                os.write(done_write, b"taken")
            status = 0
        finally:
            os._exit(status)
    got: list[bytes] = []
    with lock:
        os.write(go_write, b"g")
        reader = threading.Thread(target=lambda: got.append(os.read(done_read, 5)))
        reader.start()
        reader.join(0.3)
        assert not got  # the child waits while the parent holds the lock
    reader.join(5)
    assert got == [b"taken"]
    _pid, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    for fd in (go_read, go_write, done_read, done_write):
        os.close(fd)
    lock.close()
