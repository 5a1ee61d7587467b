"""The sequencing file: entries made durable, in order, before integration.

Layout (version 2): a 32-byte header, then records in preallocated,
zero-filled space::

    header  "CRSEQv2\\n" || uint64 base index || uint32 nonce ||
            uint32 CRC-32(the 20 bytes before) || 8 zero bytes
    record  uint32 (0xA5 << 24 | length) || uint32 chain || data
    chain   CRC-32(length field || data), continuing from the previous
            record's chain (the first continues from the header CRC)

An append overwrites zeros in place with ``pwrite`` and is acknowledged only
after its ``fdatasync``; since the file's size and extents do not change,
that sync writes data alone, with no journal commit. When the zeros run out
the file grows by :data:`PREALLOCATE` zero bytes, written and synced with
the records that needed them.

Reading stops at the first record whose marker, length or chain does not
check. Zeroed space never checks (its marker byte is 0). A crash may leave
records of an unacknowledged append beyond the acknowledged tail; once a
later append overwrites the start of that space, such a stale record no
longer continues the chain (it was chained over a record that is gone), so
it is not read back. On open, and whenever a torn record is found at the
tail, the space after the tail is zeroed again and synced, so stale bytes do
not even linger.

Once everything in it is integrated and it has grown past a threshold, the
file is replaced by an empty one whose base is the next index; the old file
first gets the 8 bytes ``0x5A "RETIRED"`` at its tail, which tells other
handles to reopen the path (so no handle needs to ``stat`` the file per
append).

Version 1 files (``"CRSEQv1\\n" || uint64 base``, records ``uint32 length ||
uint32 CRC-32(length || data) || data``, grown by ``O_APPEND``) are rewritten
as version 2 when opened.

The caller serialises access with :class:`~claimready.filelock.FileLock`.
"""

from __future__ import annotations

import os
import secrets
import struct
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

from claimready import fileops
from claimready.errors import InputError, StorageError
from claimready.ledger.storage import atomic_write

__all__ = ["HEADER_SIZE", "MAX_RECORD", "PREALLOCATE", "SequenceFile", "scan"]

_MAGIC = b"CRSEQv2\n"
_MAGIC_V1 = b"CRSEQv1\n"
HEADER_SIZE = 32
_HEADER = struct.Struct(">8sQII8x")
_V1_HEADER_SIZE = 16
_RECORD = struct.Struct(">II")
_MARK = 0xA5 << 24
_LENGTH_MASK = (1 << 24) - 1
#: Largest entry a record holds.
MAX_RECORD = _LENGTH_MASK
#: Left at the tail of a file that :meth:`SequenceFile.restart` replaced.
_RETIRED = b"\x5aRETIRED"
#: Zero bytes added ahead of the tail each time the file grows.
PREALLOCATE = 1 << 20
_ZEROS = bytes(PREALLOCATE)


def _header(base: int) -> tuple[bytes, int]:
    """A new header for ``base`` with a random nonce, and the chain value it starts."""
    nonce = secrets.randbits(32)
    head = _HEADER.pack(_MAGIC, base, nonce, 0)[:20]
    seed = zlib.crc32(head)
    return head + seed.to_bytes(4, "big") + bytes(8), seed


def _frames(entries: Sequence[bytes], chain: int) -> tuple[bytes, int]:
    """The records of ``entries`` chained from ``chain``, and the chain after the last."""
    parts: list[bytes] = []
    for entry in entries:
        head = (_MARK | len(entry)).to_bytes(4, "big")
        chain = zlib.crc32(entry, zlib.crc32(head, chain))
        parts += (head, chain.to_bytes(4, "big"), entry)
    return b"".join(parts), chain


def scan(data: bytes | memoryview, offset: int, chain: int) -> Iterator[tuple[int, bytes, int]]:
    """Yield ``(end offset, entry, chain)`` per intact record from ``offset``.

    Stops at zeroed space, a torn record, or one not chained from ``chain``.
    """
    end = len(data)
    while offset + 8 <= end:
        field, stored = _RECORD.unpack_from(data, offset)
        if field & ~_LENGTH_MASK != _MARK:
            return
        stop = offset + 8 + (field & _LENGTH_MASK)
        if stop > end:
            return
        entry = bytes(data[offset + 8 : stop])
        chain = zlib.crc32(entry, zlib.crc32(data[offset : offset + 4], chain))
        if chain != stored:
            return
        yield stop, entry, chain
        offset = stop


def _scan_v1(data: bytes) -> Iterator[bytes]:
    """Entries of a version 1 file, up to its first torn record."""
    offset, end = _V1_HEADER_SIZE, len(data)
    while offset + 8 <= end:
        length, crc = _RECORD.unpack_from(data, offset)
        stop = offset + 8 + length
        if stop > end:
            return
        entry = data[offset + 8 : stop]
        if zlib.crc32(entry, zlib.crc32(data[offset : offset + 4])) != crc:
            return
        yield entry
        offset = stop


class SequenceFile:
    """Durable, ordered record file in preallocated space; index = base + position."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = -1
        self._inode = -1
        self.base = 0
        self.end = HEADER_SIZE
        self.count = 0
        self._seed = 0
        self._chain = 0
        self._allocated = HEADER_SIZE
        self._cursor = (-1, HEADER_SIZE, 0)
        self._appended = (-1, HEADER_SIZE, 0)

    def open(self) -> None:
        """Open (creating or upgrading if needed), then clear any torn tail. Call under the lock."""
        if not self.path.exists():
            self._create(0, [])
        self._reopen()
        self.refresh()
        self._clear_tail(full=True)

    def _create(self, base: int, entries: Sequence[bytes]) -> None:
        header, seed = _header(base)
        records, _chain = _frames(entries, seed)
        atomic_write(self.path, header + records + _ZEROS)

    def _reopen(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        fd = os.open(self.path, os.O_RDWR)
        header = os.pread(fd, HEADER_SIZE, 0)
        if header[:8] == _MAGIC_V1:
            os.close(fd)
            self._upgrade_v1()
            fd = os.open(self.path, os.O_RDWR)
            header = os.pread(fd, HEADER_SIZE, 0)
        self._fd = fd
        if len(header) != HEADER_SIZE or header[:8] != _MAGIC:
            raise StorageError(f"{self.path}: not a sequencing file")
        _magic, base, _nonce, seed = _HEADER.unpack(header)
        if zlib.crc32(header[:20]) != seed:
            raise StorageError(f"{self.path}: sequencing file header is corrupt")
        stat = os.fstat(fd)
        self._inode, self._allocated = stat.st_ino, stat.st_size
        self.base, self._seed, self._chain = base, seed, seed
        self.end, self.count = HEADER_SIZE, 0
        self._cursor = (-1, HEADER_SIZE, 0)
        self._appended = (-1, HEADER_SIZE, 0)

    def _upgrade_v1(self) -> None:
        """Rewrite a version 1 file (entries up to any torn tail) as version 2."""
        data = self.path.read_bytes()
        base = int.from_bytes(data[8:_V1_HEADER_SIZE], "big")
        self._create(base, list(_scan_v1(data)))

    def close(self) -> None:
        """Close the file."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def refresh(self, *, truncate: bool = False) -> None:
        """Catch up with records other processes appended. Call under the lock.

        With ``truncate``, a torn record left at the tail by a crashed writer
        is cleared (the space after the tail is zeroed and synced).

        The common case costs one 8-byte read and no ``stat``: on current
        kernels a ``stat`` between writes makes the next write take a
        fine-grained timestamp, which costs about a third of the append rate.
        A file replaced by :meth:`restart` is recognised by the marker that
        call leaves at its tail.
        """
        while True:
            head = os.pread(self._fd, 8, self.end)
            if head in (b"", bytes(8)):
                return
            if head != _RETIRED:
                self._catch_up()
                head = os.pread(self._fd, 8, self.end)
            if head == _RETIRED and self.path.stat().st_ino != self._inode:
                self._reopen()
                continue
            if truncate:
                self._clear_tail(full=False)
            return

    def _catch_up(self) -> None:
        """Read the intact records after ``end``."""
        self._allocated = os.fstat(self._fd).st_size
        data = os.pread(self._fd, self._allocated - self.end, self.end)
        consumed = 0
        for stop, _entry, chain in scan(data, 0, self._chain):
            consumed, self._chain = stop, chain
            self.count += 1
        self.end += consumed

    def _clear_tail(self, *, full: bool) -> None:
        """Zero the space after the tail and sync, if a torn record starts there.

        With ``full``, also if any later byte is non-zero (a crash may have
        persisted later pages of an unacknowledged append but not the first).
        """
        torn = os.pread(self._fd, 8, self.end) not in (b"", bytes(8))
        self._allocated = os.fstat(self._fd).st_size
        if not torn and not (full and not self._tail_is_zero()):
            return
        try:
            self._zero(self.end, self._allocated)
            os.fdatasync(self._fd)
        except OSError as exc:
            raise StorageError(f"{self.path}: cannot clear a torn tail: {exc}") from exc

    def _tail_is_zero(self) -> bool:
        offset = self.end
        while offset < self._allocated:
            chunk = os.pread(self._fd, min(PREALLOCATE, self._allocated - offset), offset)
            if not chunk:
                return True
            if chunk.count(0) != len(chunk):
                return False
            offset += len(chunk)
        return True

    def _zero(self, start: int, stop: int) -> None:
        while start < stop:
            start += os.pwrite(self._fd, _ZEROS[: min(PREALLOCATE, stop - start)], start)

    def append(self, entries: Sequence[bytes]) -> int:
        """Append entries durably; return the index of the first. Call under the lock."""
        for position, entry in enumerate(entries):
            if len(entry) > MAX_RECORD:
                raise InputError(
                    f"entry is {len(entry)} bytes; a record holds at most {MAX_RECORD}",
                    record=position,
                )
        self.refresh(truncate=True)
        first = self.base + self.count
        payload, chain = _frames(entries, self._chain)
        stop = self.end + len(payload)
        if stop > self._allocated:
            # Grow: the records and fresh zeros after them, in one write and one sync.
            payload += _ZEROS
        name = str(self.path)
        try:  # the write and the sync in one run (see claimready.fileops)
            write = fileops.pwrite(self._fd, payload, self.end, name)
            fileops.run([write, fileops.fdatasync(self._fd, name)])
        except OSError as exc:
            self._undo(stop)
            raise StorageError(f"{self.path}: cannot append: {exc.strerror or exc}") from exc
        self._allocated = max(self._allocated, self.end + len(payload))
        # Where this append starts, as a place :meth:`read_from` can start reading.
        self._appended = (first, self.end, self._chain)
        self.end, self._chain = stop, chain
        self.count += len(entries)
        return first

    def _write(self, payload: bytes, offset: int) -> None:
        fileops.run([fileops.pwrite(self._fd, payload, offset, str(self.path))])

    def _undo(self, stop: int) -> None:
        """Best effort after a failed append: zero what it may have written."""
        try:
            self._zero(self.end, stop)
            os.fdatasync(self._fd)
        except OSError:
            pass

    def read_from(self, index: int, *, limit: int) -> list[bytes]:
        """Up to ``limit`` entries starting at ``index`` (already sequenced ones only)."""
        if index < self.base:
            raise StorageError(f"{self.path}: index {index} precedes the file's base {self.base}")
        # Start from the last read or the last append, whichever is nearer before ``index``.
        starts = [mark for mark in (self._cursor, self._appended) if self.base <= mark[0] <= index]
        at_index, offset, chain = max(starts, default=(self.base, HEADER_SIZE, self._seed))
        data = os.pread(self._fd, self.end - offset, offset)
        out: list[bytes] = []
        consumed = 0
        for stop, entry, after in scan(data, 0, chain):
            if at_index >= index:
                out.append(entry)
            at_index += 1
            consumed, chain = stop, after
            if len(out) >= limit:
                break
        self._cursor = (at_index, offset + consumed, chain)
        return out

    def restart(self, base: int) -> None:
        """Replace the file with an empty one starting at ``base``. Call under the lock.

        The old file is first marked retired at its tail, so other handles
        still reading it know to reopen the path.
        """
        self.refresh(truncate=True)
        try:
            self._write(_RETIRED, self.end)
            self._create(base, [])
        except (OSError, StorageError):
            self._undo(self.end + len(_RETIRED))
            raise
        self._reopen()
