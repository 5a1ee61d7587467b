"""The sequencing file: entries made durable, in order, before integration.

Layout: a 16-byte header (magic, then the big-endian uint64 index of the first
record), then records of ``uint32 length || uint32 CRC-32(length || data) ||
data``. An append is acknowledged only after its fsync. A torn tail (a crash
mid-write) fails its length or CRC check and is cut off.

The caller serialises access with :class:`FileLock`.
"""

from __future__ import annotations

import fcntl
import os
import struct
import threading
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType

from claimready.errors import StorageError
from claimready.ledger.storage import atomic_write

__all__ = ["FileLock", "SequenceFile"]

_MAGIC = b"CRSEQv1\n"
HEADER_SIZE = 16
_RECORD = struct.Struct(">II")


class FileLock:
    """An exclusive lock held across threads (threading) and processes (flock)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._thread_lock = threading.RLock()
        self._fd = -1
        self._depth = 0

    def __enter__(self) -> FileLock:
        self._thread_lock.acquire()
        if self._depth == 0:
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
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
            os.close(self._fd)
            self._fd = -1
        self._thread_lock.release()


def _frame(entry: bytes) -> bytes:
    head = len(entry).to_bytes(4, "big")
    return head + zlib.crc32(entry, zlib.crc32(head)).to_bytes(4, "big") + entry


def scan(data: bytes | memoryview, offset: int = 0) -> Iterator[tuple[int, bytes]]:
    """Yield ``(end offset, entry)`` for each intact record from ``offset``; stop at a torn one."""
    end = len(data)
    while offset + 8 <= end:
        length, crc = _RECORD.unpack_from(data, offset)
        stop = offset + 8 + length
        if stop > end:
            return
        entry = bytes(data[offset + 8 : stop])
        if zlib.crc32(entry, zlib.crc32(data[offset : offset + 4])) != crc:
            return
        yield stop, entry
        offset = stop


class SequenceFile:
    """Append-only, fsync'd record file; index = base + position."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = -1
        self._inode = -1
        self.base = 0
        self.end = HEADER_SIZE
        self.count = 0
        self._cursor = (-1, HEADER_SIZE)

    def open(self) -> None:
        """Open (creating if needed), then cut any torn tail. Call under the lock."""
        if not self.path.exists():
            self._create(0)
        self._reopen()
        self.end, self.count = HEADER_SIZE, 0
        self.refresh(truncate=True)

    def _create(self, base: int) -> None:
        atomic_write(self.path, _MAGIC + base.to_bytes(8, "big"))

    def _reopen(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND)
        self._inode = os.fstat(self._fd).st_ino
        self._cursor = (-1, HEADER_SIZE)
        header = os.pread(self._fd, HEADER_SIZE, 0)
        if len(header) != HEADER_SIZE or header[:8] != _MAGIC:
            raise StorageError(f"{self.path}: not a sequencing file")
        self.base = int.from_bytes(header[8:], "big")

    def close(self) -> None:
        """Close the file."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def refresh(self, *, truncate: bool = False) -> None:
        """Catch up with records other processes appended. Call under the lock.

        With ``truncate``, a torn tail left by a crashed writer is cut off.
        """
        if self.path.stat().st_ino != self._inode:
            self._reopen()
            self.end, self.count = HEADER_SIZE, 0
        size = os.fstat(self._fd).st_size
        if size == self.end:
            return
        data = os.pread(self._fd, size - self.end, self.end)
        consumed = 0
        for stop, _entry in scan(data):
            consumed = stop
            self.count += 1
        self.end += consumed
        if self.end != size and truncate:
            os.ftruncate(self._fd, self.end)
            os.fsync(self._fd)

    def append(self, entries: Sequence[bytes]) -> int:
        """Append entries durably; return the index of the first. Call under the lock."""
        self.refresh(truncate=True)
        first = self.base + self.count
        payload = b"".join(_frame(entry) for entry in entries)
        try:
            written = os.write(self._fd, payload)
            if written != len(payload):
                raise OSError(f"short write ({written} of {len(payload)} bytes)")
            os.fdatasync(self._fd)
        except OSError as exc:
            os.ftruncate(self._fd, self.end)
            raise StorageError(f"{self.path}: cannot append: {exc}") from exc
        self.end += len(payload)
        self.count += len(entries)
        return first

    def read_from(self, index: int, *, limit: int) -> list[bytes]:
        """Up to ``limit`` entries starting at ``index`` (already sequenced ones only)."""
        if index < self.base:
            raise StorageError(f"{self.path}: index {index} precedes the file's base {self.base}")
        at_index, offset = self._cursor
        if not self.base <= at_index <= index:
            at_index, offset = self.base, HEADER_SIZE
        data = os.pread(self._fd, self.end - offset, offset)
        out: list[bytes] = []
        consumed = 0
        for stop, entry in scan(data):
            if at_index >= index:
                out.append(entry)
            at_index += 1
            consumed = stop
            if len(out) >= limit:
                break
        self._cursor = (at_index, offset + consumed)
        return out

    def restart(self, base: int) -> None:
        """Replace the file with an empty one starting at ``base``. Call under the lock."""
        self._create(base)
        self._reopen()
        self.end, self.count = HEADER_SIZE, 0
