"""The bytes of a pack on their way to its file: aligned buffers, written in the background.

A pack is filled one blob after another into a page-aligned buffer. When
the buffer is full, its whole 4 KiB blocks are handed to a background
writer and filling goes on in a fresh buffer (the partial block at the end
moves to its front), so reading and hashing the next sources overlaps
writing the last ones. At most :data:`_IN_FLIGHT` buffers wait to be
written; filling waits for the oldest beyond that.

Where the filesystem allows it, the blocks are written with ``O_DIRECT``,
past the page cache: evidence is written once and read rarely, so ingesting
gigabytes neither evicts what the machine has cached nor pays for a page of
fresh cache memory per 4 KiB written (on a virtual machine whose host takes
freed memory back, that cost is most of a buffered write). A filesystem
that refuses (``EINVAL``) gets ordinary writes from then on, for this pack.
The end of the pack, never a whole block, is always an ordinary write.

Nothing here syncs of its own accord: :meth:`PackOutput.drain` makes the
caller's calls (the fsync that covers both kinds of write, the rename) in
the same run as the last writes.
"""

from __future__ import annotations

import errno
import mmap
import os
import threading
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path

from claimready import fileops
from claimready.errors import StorageError
from claimready.threads import SharedPool

__all__ = ["BUFFER_SIZE", "POOL", "PackOutput"]

#: Bytes per buffer.
BUFFER_SIZE = 1 << 20
#: Direct writes start, end and sit in memory on multiples of this.
_ALIGN = 4096
#: Buffers handed to the writer and not yet written, at most.
_IN_FLIGHT = 4
#: Buffers kept for the next pack: touching fresh memory costs a page fault per 4 KiB.
_KEEP = 16


class _BufferPool:
    """Page-aligned buffers reused from one pack to the next."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._free: list[mmap.mmap] = []

    def take(self) -> mmap.mmap:
        """A buffer of :data:`BUFFER_SIZE` bytes, its content undefined."""
        with self._lock:
            if self._free:
                return self._free.pop()
        return mmap.mmap(-1, BUFFER_SIZE)

    def give(self, buffer: mmap.mmap) -> None:
        """Hand a buffer back once nothing reads or writes it any more."""
        with self._lock:
            if len(self._free) < _KEEP:
                self._free.append(buffer)


#: Buffers reused between packs, and the threads that write them out.
POOL = _BufferPool()
_WRITERS = SharedPool(2, "pack-write")


def _open_direct(path: Path) -> int | None:
    """A second descriptor on ``path`` that writes past the page cache, where there is one."""
    flag = getattr(os, "O_DIRECT", 0)
    if not flag:
        return None
    try:
        return os.open(path, os.O_WRONLY | os.O_CLOEXEC | flag)
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP):
            return None
        raise


class PackOutput:
    """Where a :class:`~claimready.blobs.packs.PackWriter` puts a pack's bytes, in order.

    The writer fills :attr:`buffer` from :attr:`fill` on (see :meth:`space`
    and :meth:`put`) and advances :attr:`fill`; :attr:`flushed` is the file
    offset of the buffer's first byte. A failed background write is raised,
    as a :class:`~claimready.errors.StorageError`, by the next call that
    waits for it.
    """

    def __init__(self, fd: int, path: Path) -> None:
        self.fd = fd
        self.path = path
        self._direct = _open_direct(path)
        self._use_direct = self._direct is not None
        self.buffer = POOL.take()
        self.fill = 0
        self.flushed = 0
        self._writing: deque[tuple[Future[None], mmap.mmap]] = deque()
        self._closed = False

    @property
    def end(self) -> int:
        """The file offset just past the last byte put in."""
        return self.flushed + self.fill

    @property
    def align(self) -> int:
        """What whole writes are multiples of: a block with direct writes, else one byte."""
        return _ALIGN if self._use_direct else 1

    def space(self) -> memoryview:
        """The free part of the buffer, handing it to the writer first when it is full."""
        if self.fill == BUFFER_SIZE:
            self.flush()
        return memoryview(self.buffer)[self.fill :]

    def put(self, data: memoryview) -> None:
        """Append ``data``."""
        while data:
            space = self.space()
            count = min(len(space), len(data))
            space[:count] = data[:count]
            self.fill += count
            data = data[count:]

    def flush(self) -> None:
        """Hand the buffer's whole blocks to the writer; go on in a fresh buffer with the rest."""
        whole = self.fill - self.fill % self.align
        if not whole:
            return
        fresh = POOL.take()
        rest = self.fill - whole
        fresh[:rest] = self.buffer[whole : self.fill]
        future = _WRITERS.executor().submit(self._write, self.buffer, whole, self.flushed)
        self._writing.append((future, self.buffer))
        self.buffer, self.flushed, self.fill = fresh, self.flushed + whole, rest
        while len(self._writing) > _IN_FLIGHT:
            self._settle_oldest()

    def _write(self, buffer: mmap.mmap, length: int, offset: int) -> None:
        data, name = memoryview(buffer)[:length], str(self.path)
        if self._use_direct and self._direct is not None:
            _done, error = fileops.attempt([fileops.pwrite(self._direct, data, offset, name)])
            if error is None:
                return
            if error.errno != errno.EINVAL:
                raise error
            self._use_direct = False  # the descriptor is closed once no write uses it
        fileops.run([fileops.pwrite(self.fd, data, offset, name)])

    def _settle_oldest(self) -> None:
        future, buffer = self._writing.popleft()
        try:
            future.result()
        except OSError as exc:
            raise StorageError(f"cannot write {self.path}: {exc.strerror or exc}") from exc
        finally:
            POOL.give(buffer)

    def wait(self) -> None:
        """Wait for every background write, raising the first failure."""
        while self._writing:
            self._settle_oldest()

    def rewind(self, start: int) -> None:
        """Forget every byte from file offset ``start`` on."""
        if start >= self.flushed:
            self.fill = start - self.flushed
            return
        self.wait()
        base = start - start % self.align
        kept = start - base
        view = memoryview(self.buffer)
        done = 0
        while done < kept:
            count = os.preadv(self.fd, [view[done:kept]], base + done)
            if not count:
                raise StorageError(f"cannot read back {self.path}: it ends early")
            done += count
        self.flushed, self.fill = base, kept

    def drain(self, tail: bytes = b"", then: Sequence[fileops.Op] = ()) -> int:
        """Write out everything put in, then ``tail``; return the file's length.

        The buffer's writes and the calls of ``then`` (a sync and a rename,
        say) are made in one run (:mod:`claimready.fileops`) once the
        background writes are done. Every write after this one is an
        ordinary one.
        """
        self.wait()
        while True:
            writes = self._final_writes(tail)
            done, error = fileops.attempt([*writes, *then])
            if error is None:
                break
            if done == 0 and len(writes) == 3 and error.errno == errno.EINVAL:
                self._use_direct = False  # the filesystem refused the direct write
                continue
            raise error
        self.flushed += self.fill + len(tail)
        self.fill = 0
        self._close_direct()
        return self.flushed

    def _final_writes(self, tail: bytes) -> list[fileops.Op]:
        """The whole blocks (direct, where accepted), the rest of the buffer, the tail."""
        name, view = str(self.path), memoryview(self.buffer)
        whole = self.fill - self.fill % _ALIGN if self._use_direct else 0
        writes = []
        if whole and self._direct is not None:
            writes.append(fileops.pwrite(self._direct, view[:whole], self.flushed, name))
        else:
            whole = 0
        writes.append(fileops.pwrite(self.fd, view[whole : self.fill], self.flushed + whole, name))
        writes.append(fileops.pwrite(self.fd, tail, self.flushed + self.fill, name))
        return writes

    def _close_direct(self) -> None:
        self._use_direct = False
        if self._direct is not None:
            os.close(self._direct)
            self._direct = None

    def close(self) -> None:
        """Wait for the writes and hand the buffers back (a failed write is ignored here)."""
        for future, buffer in self._writing:
            future.exception()
            POOL.give(buffer)
        self._writing.clear()
        self._close_direct()
        if not self._closed:
            self._closed = True
            POOL.give(self.buffer)
