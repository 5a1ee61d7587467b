"""An exclusive lock across threads and processes, on a lock file kept open."""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from pathlib import Path
from types import TracebackType

from claimready.errors import StorageError

__all__ = ["FileLock"]


class FileLock:
    """An exclusive lock held across threads (threading) and processes (flock).

    The lock file is opened on first use and kept open until :meth:`close`,
    so taking the lock is one ``flock`` call (nothing removes a lock file).
    A forked child opens its own: a descriptor inherited from the parent
    would share the parent's lock rather than exclude it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._thread_lock = threading.RLock()
        self._fd = -1
        self._pid = -1
        self._depth = 0

    def __enter__(self) -> FileLock:
        self._thread_lock.acquire()
        if self._depth == 0:
            try:
                if self._fd < 0 or self._pid != os.getpid():
                    self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
                    self._pid = os.getpid()
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            except OSError as exc:
                self._thread_lock.release()
                raise StorageError(f"{self.path}: cannot lock: {exc}") from exc
        self._depth += 1
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._depth -= 1
        if self._depth == 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._thread_lock.release()

    def close(self) -> None:
        """Close the lock file (not while the lock is held)."""
        with self._thread_lock:
            if self._depth:
                raise StorageError(f"{self.path}: cannot close a lock while it is held")
            if self._fd >= 0 and self._pid == os.getpid():
                os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        if self._fd >= 0 and self._pid == os.getpid():
            with contextlib.suppress(OSError):
                os.close(self._fd)
