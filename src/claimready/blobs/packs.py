"""Pack files: the blobs of one batch in one file, behind a sorted, checksummed index.

A pack is written once and never changed (mode 0444)::

    magic       8 bytes   b"CRPACK1\\n"
    blobs       the blobs' bytes, one after another (in the order stored)
    index       one 48-byte entry per blob, sorted by digest:
                SHA-256 (32 bytes) | offset (uint64 BE) | size (uint64 BE)
    meta        canonical JSON: {"retain_until": ..., "stored_at": ...}
    footer      64 bytes: b"CRPKEND1" | count | index offset | meta length
                (each uint64 BE) | SHA-256 of index ‖ meta ‖ the 32 bytes before it

The pack is named by its footer checksum (``pack-<40 hex>.pack``). Reading an
index checks the magic, the footer, the checksum, that the digests are
sorted and unique, and that the blobs tile the data section exactly (no gap,
no overlap), so every byte of a pack is covered either by the index checksum
or by the SHA-256 of the blob it belongs to.

A blob disposed of while its pack cannot be rewritten is listed in
``<pack>.gone`` (one hex digest per line, appended and fsynced); it reads as
absent from then on, and its bytes go when the pack is rewritten.
"""

from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
import struct
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from claimready import fileops
from claimready.blobs.packout import BUFFER_SIZE, PackOutput
from claimready.canonical import canonical_json, loads
from claimready.errors import StorageError, VerificationError
from claimready.native import optional_module
from claimready.timeutil import format_utc, parse_utc

__all__ = [
    "ENTRY_SIZE",
    "GONE_SUFFIX",
    "MAGIC",
    "PACK_DIR",
    "PACK_SUFFIX",
    "PackIndex",
    "PackMeta",
    "PackSet",
    "PackWriter",
    "encode_tail",
    "read_pack_index",
]

PACK_DIR = "packs"
PACK_SUFFIX = ".pack"
GONE_SUFFIX = ".gone"
TEMP_PREFIX = ".tmp-"
MAGIC = b"CRPACK1\n"
_FOOTER_MAGIC = b"CRPKEND1"
_ENTRY = struct.Struct(">32sQQ")
_FIELDS = struct.Struct(">8sQQQ")
ENTRY_SIZE = _ENTRY.size
_FOOTER_SIZE = _FIELDS.size + 32


@dataclass(frozen=True, slots=True)
class PackMeta:
    """What every blob of a pack shares until a sidecar says otherwise."""

    stored_at: datetime
    retain_until: datetime | None

    def to_json(self) -> bytes:
        """Canonical JSON of the metadata, as kept in the pack."""
        until = None if self.retain_until is None else format_utc(self.retain_until)
        return canonical_json({"retain_until": until, "stored_at": format_utc(self.stored_at)})

    @classmethod
    def from_json(cls, raw: bytes) -> PackMeta:
        """Parse the metadata section of a pack."""
        value = loads(raw)
        until = value["retain_until"]
        return cls(
            stored_at=parse_utc(value["stored_at"]),
            retain_until=None if until is None else parse_utc(until),
        )


def encode_tail(entries: dict[bytes, tuple[int, int]], meta: PackMeta, data_end: int) -> bytes:
    """Index, metadata and footer for blobs ``{digest: (offset, size)}`` ending at ``data_end``."""
    index = b"".join(_ENTRY.pack(digest, *entries[digest]) for digest in sorted(entries))
    meta_json = meta.to_json()
    fields = _FIELDS.pack(_FOOTER_MAGIC, len(entries), data_end, len(meta_json))
    checksum = hashlib.sha256(index + meta_json + fields).digest()
    return index + meta_json + fields + checksum


def pack_name(tail: bytes) -> str:
    """The file name of the pack whose tail (from :func:`encode_tail`) is ``tail``."""
    return f"pack-{tail[-32:].hex()[:40]}{PACK_SUFFIX}"


@dataclass(slots=True)
class PackIndex:
    """One pack's validated index, metadata and disposed blobs."""

    path: Path
    index: bytes
    meta: PackMeta
    gone: set[bytes] = field(default_factory=set)

    @property
    def name(self) -> str:
        """The pack's file name."""
        return self.path.name

    @property
    def count(self) -> int:
        """How many blobs the index lists (disposed ones included)."""
        return len(self.index) // ENTRY_SIZE

    def entry(self, position: int) -> tuple[bytes, int, int]:
        """``(digest, offset, size)`` of the entry at ``position`` in digest order."""
        digest, offset, size = _ENTRY.unpack_from(self.index, position * ENTRY_SIZE)
        return digest, offset, size

    def find(self, digest: bytes) -> tuple[int, int] | None:
        """``(offset, size)`` of a live blob, or None."""
        if digest in self.gone:
            return None
        lo, hi, index = 0, self.count, self.index
        while lo < hi:
            mid = (lo + hi) // 2
            key = index[mid * ENTRY_SIZE : mid * ENTRY_SIZE + 32]
            if key < digest:
                lo = mid + 1
            elif key > digest:
                hi = mid
            else:
                _, offset, size = _ENTRY.unpack_from(index, mid * ENTRY_SIZE)
                return offset, size
        return None

    def live(self) -> Iterator[tuple[bytes, int, int]]:
        """Live blobs as ``(digest, offset, size)``, in digest order."""
        for position in range(self.count):
            found = self.entry(position)
            if found[0] not in self.gone:
                yield found


def _damaged(path: Path, problem: str) -> VerificationError:
    return VerificationError(problem, subject=f"pack {path.name}")


def _read_at(fd: int, size: int, offset: int) -> bytes:
    data = os.pread(fd, size, offset)
    if len(data) != size:
        raise EOFError
    return data


def read_pack_index(path: Path) -> PackIndex:
    """Read and check a pack's index; raise VerificationError naming the pack if damaged."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise _damaged(path, f"cannot be read: {exc.strerror or exc}") from exc
    try:
        length = os.fstat(fd).st_size
        if length < len(MAGIC) + _FOOTER_SIZE:
            raise _damaged(path, f"is {length} bytes, too short for a pack")
        if _read_at(fd, len(MAGIC), 0) != MAGIC:
            raise _damaged(path, "does not start with the pack magic")
        footer = _read_at(fd, _FOOTER_SIZE, length - _FOOTER_SIZE)
        magic, count, data_end, meta_size = _FIELDS.unpack_from(footer)
        tail_size = count * ENTRY_SIZE + meta_size + _FOOTER_SIZE
        if magic != _FOOTER_MAGIC or data_end + tail_size != length or data_end < len(MAGIC):
            raise _damaged(path, "footer does not describe the file")
        tail = _read_at(fd, tail_size, data_end)
    except EOFError:
        raise _damaged(path, "ends early") from None
    except OSError as exc:
        raise _damaged(path, f"cannot be read: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)
    if hashlib.sha256(tail[:-32]).digest() != tail[-32:]:
        raise _damaged(path, "index checksum does not match")
    index = tail[: count * ENTRY_SIZE]
    try:
        meta = PackMeta.from_json(tail[count * ENTRY_SIZE : -_FOOTER_SIZE])
    except (ValueError, KeyError, TypeError) as exc:
        raise _damaged(path, f"metadata is malformed: {exc}") from exc
    found = PackIndex(path=path, index=index, meta=meta)
    _check_layout(found, data_end)
    return found


def _check_layout(pack: PackIndex, data_end: int) -> None:
    """Digests strictly ascending; blobs covering ``[magic, data_end)`` exactly."""
    spans: list[tuple[int, int]] = []
    previous = b""
    for position in range(pack.count):
        digest, offset, size = pack.entry(position)
        if digest <= previous:
            raise _damaged(pack.path, f"index entry {position} is out of order")
        previous = digest
        spans.append((offset, size))
    end = len(MAGIC)
    for offset, size in sorted(spans):
        if offset != end:
            raise _damaged(pack.path, f"blob data at byte {offset} does not follow byte {end}")
        end = offset + size
    if end != data_end:
        raise _damaged(pack.path, f"blob data ends at byte {end}, the index at {data_end}")


def read_gone(path: Path) -> set[bytes]:
    """Digests listed in a ``.gone`` file (a torn last line is ignored)."""
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return set()
    gone = set()
    for line in text.split(b"\n"):
        if len(line) == 64:
            try:
                gone.add(bytes.fromhex(line.decode("ascii")))
            except ValueError:
                continue
    return gone


def _map(where: dict[bytes, str], pack: PackIndex) -> None:
    """Map each digest of ``pack`` to its name, unless an earlier pack has it."""
    name, index = pack.name, pack.index
    for start in range(0, len(index), ENTRY_SIZE):
        where.setdefault(index[start : start + 32], name)


class PackSet:
    """This process's view of a store's packs, refreshed from the directory on demand.

    Holds every pack's index (48 bytes per blob) and a map from digest to
    pack (about 100 bytes per blob). Packs whose index does not check are
    kept aside in :attr:`damaged` and their blobs read as absent.

    Threads of one store share it: :meth:`refresh` and :meth:`adopt` take
    turns, and replace :attr:`packs` and :attr:`damaged` rather than change
    them, so a reader iterating one never sees it change size.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.packs: dict[str, PackIndex] = {}
        self.damaged: dict[str, VerificationError] = {}
        self._where: dict[bytes, str] = {}
        self._lock = threading.Lock()

    def refresh(self) -> None:
        """Load packs added since the last refresh, forget removed ones, reread ``.gone`` lists."""
        with self._lock:  # listed under the lock: a pack adopted meanwhile is not "removed"
            try:
                names = set(os.listdir(self.directory))  # noqa: PTH208 - names only, per refresh
            except FileNotFoundError:
                names = set()
            packs = {n for n in names if n.endswith(PACK_SUFFIX) and not n.startswith(TEMP_PREFIX)}
            current, damaged = self.packs, self.damaged
            if set(current) - packs or set(damaged) - packs:
                current = {n: p for n, p in current.items() if n in packs}
                damaged = {n: e for n, e in damaged.items() if n in packs}
                where: dict[bytes, str] = {}
                for pack in current.values():
                    _map(where, pack)
                self.packs, self.damaged, self._where = current, damaged, where
            added = sorted(packs - set(current) - set(damaged))
            if added:
                current, damaged = dict(current), dict(damaged)
            for name in added:
                try:
                    current[name] = read_pack_index(self.directory / name)
                except VerificationError as exc:
                    damaged[name] = exc
            # Packs first: a name the map gives is always among them.
            self.packs, self.damaged = current, damaged
            for name in added:
                if name in current:
                    _map(self._where, current[name])
            for name, pack in current.items():
                gone_name = name + GONE_SUFFIX
                pack.gone = read_gone(self.directory / gone_name) if gone_name in names else set()

    def adopt(self, pack: PackIndex) -> None:
        """Add a pack this process has just installed, without reading it back."""
        with self._lock:
            self.packs = {**self.packs, pack.name: pack}
            _map(self._where, pack)

    def locate(self, digest: bytes) -> tuple[PackIndex, int, int] | None:
        """``(pack, offset, size)`` of a live packed blob, without refreshing."""
        packs = self.packs
        pack = packs.get(self._where.get(digest, ""))
        if pack is None:
            return None
        found = pack.find(digest)
        if found is None:
            for other in packs.values():
                found = other.find(digest) if other is not pack else None
                if found is not None:
                    return other, *found
            return None
        return pack, *found

    def digests(self) -> list[bytes]:
        """Every live packed digest, sorted."""
        return sorted(d for d in list(self._where) if self.locate(d) is not None)

    def holders(self, digest: bytes) -> list[PackIndex]:
        """Every pack holding a live copy of ``digest``."""
        return [p for p in self.packs.values() if p.find(digest) is not None]


#: ``claimready.blobs._readhash.read_files``: see that module.
ReadFiles = Callable[
    [tuple[bytes, ...], int, mmap.mmap, int], tuple[int, int, list[tuple[bytes, int]], int]
]
#: Why it stopped: every path read, the buffer is full (2: read the next path another way).
_DONE, _FULL = 0, 1


_READHASH = optional_module("claimready.blobs._readhash")
#: The compiled reader of :meth:`PackWriter.add_paths`, or None where it was not
#: built (it needs a C compiler and OpenSSL's headers).
NATIVE_READER: ReadFiles | None = None if _READHASH is None else _READHASH.read_files


def _read_into(fd: int, space: memoryview, path: str) -> int:
    """``readv`` into ``space``; a failure names ``path`` (a failure to write does not)."""
    try:
        return os.readv(fd, [space])
    except OSError as exc:
        exc.filename = path
        raise


class ReadsInto(Protocol):
    """A binary source that can fill a buffer (raw and buffered files alike)."""

    def readinto(self, buffer: memoryview, /) -> int | None:
        """Fill ``buffer``; return how many bytes were read (0 at the end)."""
        ...


class PackWriter:
    """Builds a pack in a temporary file under the pack directory.

    :meth:`add`, :meth:`add_path` and :meth:`add_paths` put sources into the
    pack, hashing them; a blob already added, or one ``known`` says is
    stored, leaves nothing behind (its bytes are overwritten by the next
    one). Sources are read straight into the buffers of a
    :class:`~claimready.blobs.packout.PackOutput`, which writes them out in
    the background. Nothing is synced before :meth:`finish` (or :meth:`install`).

    :meth:`add_paths` reads small files with the compiled
    ``claimready.blobs._readhash`` where it was built (:data:`NATIVE_READER`), the GIL
    released once per run of files rather than several times per file; the
    result is the same as :meth:`add_path` on each.
    """

    def __init__(self, directory: Path, *, native: bool = True) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=directory, prefix=TEMP_PREFIX, suffix=PACK_SUFFIX)
        self.fd = fd
        self.path = Path(name)
        # Held until the file is closed: a sweep of crashed writers' leftovers passes it by.
        fcntl.flock(fd, fcntl.LOCK_EX)
        self.entries: dict[bytes, tuple[int, int]] = {}
        #: Where :meth:`publish` renames the pack once :meth:`finish` has made it durable.
        self.final: Path | None = None
        self._reader = NATIVE_READER if native else None
        try:
            self._out = PackOutput(fd, self.path)
        except BaseException:
            self.close(remove=True)
            raise
        self._out.buffer[: len(MAGIC)] = MAGIC
        self._out.fill = len(MAGIC)

    @property
    def end(self) -> int:
        """Where the next blob starts."""
        return self._out.end

    def add(self, source: ReadsInto, known: Callable[[bytes], bool]) -> tuple[str, int]:
        """Append ``source`` unless its digest is known; return its hex digest and size."""
        out, hasher, size = self._out, hashlib.sha256(), 0
        start = out.end
        while count := source.readinto(space := out.space()):
            hasher.update(space[:count])
            out.fill += count
            size += count
        return self._added(start, hasher.digest(), size, known)

    def add_path(self, path: str, known: Callable[[bytes], bool]) -> tuple[str, int]:
        """As :meth:`add` for the file at ``path``, read with plain system calls.

        Raises :class:`OSError` naming ``path`` when the file cannot be
        opened or read.
        """
        out, hasher, size = self._out, hashlib.sha256(), 0
        start = out.end
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)  # its OSError names the path
        try:
            while count := _read_into(fd, space := out.space(), path):
                hasher.update(space[:count])
                out.fill += count
                size += count
        except BaseException:
            out.rewind(start)
            raise
        finally:
            os.close(fd)
        return self._added(start, hasher.digest(), size, known)

    def add_paths(
        self, paths: Sequence[str | os.PathLike[str]], known: Callable[[bytes], bool]
    ) -> list[tuple[str, int]]:
        """:meth:`add_path` on each of ``paths`` in turn; their hex digests and sizes in order."""
        read_files = self._reader
        if read_files is None:
            return [self.add_path(os.fspath(path), known) for path in paths]
        names = tuple(map(os.fsencode, paths))
        found: list[tuple[str, int]] = []
        index, out = 0, self._out
        while index < len(names):
            if out.fill == BUFFER_SIZE:
                out.flush()
            index, _end, read, status = read_files(names, index, out.buffer, out.fill)
            self._place(read, found, known)
            if status == _FULL and out.fill >= out.align:
                out.flush()  # a file that still does not fit comes back, to be read below
            elif status != _DONE:
                found.append(self.add_path(os.fspath(paths[index]), known))
                index += 1
        return found

    def _place(
        self,
        read: list[tuple[bytes, int]],
        found: list[tuple[str, int]],
        known: Callable[[bytes], bool],
    ) -> None:
        """Keep the files just read after the buffer's fill, closing up behind duplicates."""
        out = self._out
        position = out.fill
        for digest, size in read:
            if digest not in self.entries and not known(digest):
                if position != out.fill:
                    out.buffer.move(out.fill, position, size)
                self.entries[digest] = (out.end, size)
                out.fill += size
            position += size
            found.append((digest.hex(), size))

    def _added(
        self, start: int, digest: bytes, size: int, known: Callable[[bytes], bool]
    ) -> tuple[str, int]:
        if digest in self.entries or known(digest):
            self._out.rewind(start)
        else:
            self.entries[digest] = (start, size)
        return digest.hex(), size

    def drop(self, digests: set[bytes]) -> None:
        """Leave out blobs found stored after all: copy the others into a fresh file."""
        self._out.drain()
        fresh = PackWriter(self.path.parent)
        try:
            for digest, (offset, size) in sorted(self.entries.items(), key=lambda item: item[1]):
                if digest not in digests:
                    fresh.entries[digest] = (fresh.end, size)
                    fresh.copy_from(self.fd, offset, size)
        except BaseException:
            fresh.close(remove=True)
            raise
        self.close(remove=True)
        self.fd, self.path, self.entries, self._out, self.final = (
            fresh.fd,
            fresh.path,
            fresh.entries,
            fresh._out,
            None,
        )

    def copy_from(self, fd: int, offset: int, size: int) -> None:
        """Append ``size`` bytes read from ``fd`` at ``offset``, a chunk at a time."""
        done, out = 0, self._out
        while done < size:
            space = out.space()
            count = os.preadv(fd, [space[: size - done]], offset + done)
            if not count:
                raise OSError(f"{self.path}: source ends {size - done} bytes early")
            out.fill += count
            done += count

    def install(self, meta: PackMeta) -> bytes:
        """:meth:`finish` then :meth:`publish`; returns the tail."""
        tail = self.finish(meta)
        self.publish()
        return tail

    def finish(self, meta: PackMeta) -> bytes:
        """Write the index, metadata and footer; make the file read-only and durable.

        The last writes, the truncation, the mode and the sync are one run of
        calls (:mod:`claimready.fileops`). The file keeps its temporary name
        until :meth:`publish`, so a caller may do this outside any lock.
        Returns the tail (see :func:`encode_tail`).
        """
        tail = encode_tail(self.entries, meta, self.end)
        temp = str(self.path)
        length = self.end + len(tail)
        self._out.drain(
            tail,
            then=[
                fileops.ftruncate(self.fd, length, temp),
                fileops.fchmod(self.fd, 0o444, temp),
                fileops.fsync(self.fd, temp),
            ],
        )
        self.final = self.path.with_name(pack_name(tail))
        return tail

    def publish(self) -> None:
        """Rename the finished pack to its final name (:func:`pack_name`) and sync the directory.

        :attr:`path` is the final path afterwards.
        """
        if self.final is None:
            raise StorageError(f"{self.path}: the pack is not finished")
        fileops.run(
            [
                fileops.rename(str(self.path), str(self.final)),
                fileops.fsync_dir(str(self.path.parent)),
            ]
        )
        self.path, self.final = self.final, None

    def close(self, *, remove: bool) -> None:
        """Close the file, removing it unless it was installed."""
        out = getattr(self, "_out", None)
        if out is not None:
            out.close()
        os.close(self.fd)
        if remove:
            self.path.unlink(missing_ok=True)
