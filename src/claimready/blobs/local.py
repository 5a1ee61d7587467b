"""Blobs as files under a root directory: ``<root>/sha256/ab/cd/<hex>``.

Each blob is written to a temporary file, fsynced, made read-only and renamed
into place; the directory is fsynced after the rename, so a crash leaves either
the whole blob or none of it. Retention and legal hold live in a sidecar JSON
file next to the blob (``<hex>.json``), replaced atomically.

A filesystem cannot enforce write-once storage: anyone with write access to
the directory (or root) can change permissions, edit or remove a blob and its
sidecar. This store refuses to delete retained or held blobs through its own
API and :meth:`~claimready.blobs.base.BlobStore.rehash` detects edited
content, but only object storage with Object Lock makes retention binding.
"""

from __future__ import annotations

import ctypes
import fcntl
import functools
import hashlib
import heapq
import io
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from claimready.blobs.base import (
    CHUNK_SIZE,
    BlobRef,
    BlobStat,
    BlobStore,
    Readable,
    check_retention_days,
    check_sha256,
    default_retain_until,
    is_sha256,
)
from claimready.blobs.packs import (
    ENTRY_SIZE,
    GONE_SUFFIX,
    PACK_DIR,
    TEMP_PREFIX,
    PackIndex,
    PackMeta,
    PackSet,
    PackWriter,
)
from claimready.canonical import canonical_json, loads
from claimready.errors import InputError, NotFoundError, StorageError, VerificationError
from claimready.filelock import FileLock
from claimready.timeutil import format_utc, parse_utc, utcnow

__all__ = ["LocalBlobStore"]

LAYOUT_DIR = "sha256"
STAGING_DIR = "tmp"
LOCK_FILE = ".lock"
METADATA_SUFFIX = ".json"
READ_ONLY = 0o444


@dataclass(frozen=True, slots=True)
class _Metadata:
    """The sidecar record kept next to each blob."""

    sha256: str
    size: int
    stored_at: datetime
    retain_until: datetime | None
    legal_hold: bool

    def to_json(self) -> bytes:
        return canonical_json(
            {
                "sha256": self.sha256,
                "size": self.size,
                "stored_at": format_utc(self.stored_at),
                "retain_until": None
                if self.retain_until is None
                else format_utc(self.retain_until),
                "legal_hold": self.legal_hold,
            }
        )

    @classmethod
    def from_json(cls, raw: Any) -> _Metadata:
        until = raw["retain_until"]
        hold = raw["legal_hold"]
        if not isinstance(hold, bool):
            raise TypeError("legal_hold is not a boolean")
        return cls(
            sha256=check_sha256(raw["sha256"]),
            size=int(raw["size"]),
            stored_at=parse_utc(raw["stored_at"]),
            retain_until=None if until is None else parse_utc(until),
            legal_hold=hold,
        )


#: How often a writer looks for temporary packs a crashed writer left (a scan of
#: the pack directory), rather than at every batch.
_SWEEP_SECONDS = 600.0
#: Age after which an unlocked temporary pack counts as left by a crash.
_STALE_AFTER = 60.0


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _open_source(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """The file to store, opened for reading; an unreadable file is an input error."""
    source = Path(path)
    try:
        stream = source.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", file=source) from exc
    with stream:
        yield stream


@functools.cache
def _syncfs_call() -> Callable[[int], int] | None:
    """libc's ``syncfs``, where the platform has it."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:  # pragma: no cover - no C library to load
        return None
    call: Callable[[int], int] | None = getattr(libc, "syncfs", None)
    return call


def _syncfs(root: Path) -> bool:
    """Sync the whole filesystem holding ``root``; False where ``syncfs`` is missing."""
    call = _syncfs_call()
    if call is None:
        return False
    fd = os.open(root, os.O_RDONLY)
    try:
        if call(fd) != 0:
            number = ctypes.get_errno()
            raise OSError(number, os.strerror(number), str(root))
    finally:
        os.close(fd)
    return True


def _copy_hashing(source: Readable, target: BinaryIO) -> BlobRef:
    """Copy ``source`` into ``target`` chunk by chunk, hashing what passes."""
    hasher = hashlib.sha256()
    size = 0
    while chunk := source.read(CHUNK_SIZE):
        hasher.update(chunk)
        target.write(chunk)
        size += len(chunk)
    return BlobRef(sha256=hasher.hexdigest(), size=size)


class LocalBlobStore(BlobStore):
    """A content-addressed blob store in a local (or mounted) directory."""

    def __init__(self, root: str | os.PathLike[str], *, default_retention_days: int) -> None:
        """Use ``root`` (created on first write); new blobs are retained for the given days."""
        self._root = Path(root).expanduser()
        self._default_days = check_retention_days(default_retention_days)
        self._packs = PackSet(self._root / PACK_DIR)
        self._next_sweep = 0.0  # when to look for temporary packs left by a crash
        self._lock = FileLock(self._root / LOCK_FILE)
        self._root_made = False

    def __repr__(self) -> str:
        return f"LocalBlobStore({str(self._root)!r})"

    @property
    def root(self) -> Path:
        """The store's root directory."""
        return self._root

    def path_for(self, sha256: str) -> Path:
        """Where the blob named ``sha256`` lives (whether or not it exists)."""
        digest = check_sha256(sha256)
        return self._root / LAYOUT_DIR / digest[:2] / digest[2:4] / digest

    # -- errors -----------------------------------------------------------------

    @contextmanager
    def _storage_errors(self, action: str, path: Path) -> Iterator[None]:
        """Turn an OS error into a StorageError naming the store and the path."""
        try:
            yield
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise StorageError(
                f"blob store {self._root}: cannot {action} {path}: {reason}"
            ) from exc

    # -- writing ----------------------------------------------------------------

    def put_file(self, path: str | os.PathLike[str]) -> BlobRef:
        """Store the file at ``path`` in one streaming pass; return its name and size."""
        with _open_source(path) as stream:
            return self._put_stream(stream)

    def put_bytes(self, data: bytes) -> BlobRef:
        """Store ``data``; return its name and size."""
        return self._put_stream(io.BytesIO(data))

    def put_files(self, paths: Sequence[str | os.PathLike[str]]) -> list[BlobRef]:
        """Store several files as one pack with one group commit; return their refs in order.

        1. Each file is streamed into a temporary pack under ``packs/`` and
           hashed, without a sync; a blob already stored (loose or packed) or
           already in the batch is not copied. A file that cannot be read
           raises :class:`~claimready.errors.InputError` before anything is
           installed.
        2. The index, metadata and footer are appended and the pack fsync'd,
           still under its temporary name and without the store lock.
        3. Under the store lock, blobs stored meanwhile by another writer
           are left out (the pack rewritten without them, rarely); the pack
           is renamed to its final name and the directory fsync'd.

        Every blob is durable when this returns; a crash leaves at most a
        temporary file, which a later batch removes. Two fsyncs of the
        store's own files, rather than a ``syncfs``, so other writers' dirty
        data on the same filesystem is not flushed with the batch.
        """
        self._packs.refresh()
        loose: set[bytes] = set()
        prefixes = self._loose_prefixes()
        with self._storage_errors("write to", self._root / PACK_DIR):
            writer = PackWriter(self._root / PACK_DIR)
        installed = False
        try:
            known = functools.partial(self._is_stored, loose=loose, prefixes=prefixes)
            try:
                added = writer.add_paths(paths, known)
            except OSError as exc:
                reason = exc.strerror or str(exc)
                if exc.filename is None:  # not a source's fault (memory, say)
                    raise StorageError(f"blob store {self._root}: {reason}") from exc
                raise InputError(f"cannot read: {reason}", file=Path(exc.filename)) from exc
            refs = [BlobRef(sha256=digest, size=size) for digest, size in added]
            installed = self._install_pack(writer, loose)
        finally:
            writer.close(remove=not installed)
        return refs

    def _is_stored(self, digest: bytes, loose: set[bytes], prefixes: frozenset[str]) -> bool:
        """Whether a blob is stored, remembering loose ones (their sidecars are checked later).

        ``prefixes`` are the first-level directories of the loose layout, so a
        store with few loose blobs is not probed file by file.
        """
        if self._packs.locate(digest) is not None:
            return True
        if not prefixes:  # no loose blob at all, as in a store written in packs
            return False
        name = digest.hex()
        if (
            name[:2] in prefixes
            and os.path.isfile(  # noqa: PTH113 - hot path
                f"{self._root}/{LAYOUT_DIR}/{name[:2]}/{name[2:4]}/{name}"
            )
        ):
            loose.add(digest)
            return True
        return False

    def _loose_prefixes(self) -> frozenset[str]:
        try:
            return frozenset(os.listdir(self._root / LAYOUT_DIR))  # noqa: PTH208 - names only
        except (FileNotFoundError, NotADirectoryError):
            return frozenset()

    def _install_pack(self, writer: PackWriter, loose: set[bytes]) -> bool:
        """Steps 2 and 3 of :meth:`put_files`; False when every blob was stored already.

        The pack is finished and synced before the store lock is taken, so
        batches written at once sync their bytes together; under the lock
        it is only checked against what was stored meanwhile, renamed, and
        its directory synced. A blob another writer stored meanwhile (rare)
        has the pack rewritten without it, under the lock.
        """
        directory = self._root / PACK_DIR
        meta = PackMeta(stored_at=utcnow(), retain_until=default_retain_until(self._default_days))
        tail = b""
        with self._storage_errors("write to", directory):
            if writer.entries:
                tail = writer.finish(meta)
        with self._store_lock(), self._storage_errors("write to", directory):
            self._packs.refresh()
            if time.monotonic() >= self._next_sweep:
                self._remove_stale_temporaries(writer.path)
                self._next_sweep = time.monotonic() + _SWEEP_SECONDS
            prefixes = self._loose_prefixes()
            stored = {d for d in writer.entries if self._is_stored(d, loose, prefixes)}
            if stored:
                writer.drop(stored)
            for digest in sorted(loose):
                if self._read_metadata(digest.hex()) is None:
                    size = self.path_for(digest.hex()).stat().st_size
                    self._write_metadata(self._new_metadata(BlobRef(digest.hex(), size)))
            if not writer.entries:
                return False
            if writer.final is None:
                tail = writer.finish(meta)
            writer.publish()
            index = tail[: len(writer.entries) * ENTRY_SIZE]
            self._packs.adopt(PackIndex(path=writer.path, index=index, meta=meta))
        return True

    def _remove_stale_temporaries(self, own: Path) -> None:
        """Remove temporary packs left by a crash (their writer no longer holds their lock).

        A file younger than :data:`_STALE_AFTER` seconds is kept even
        unlocked: its writer may have created it and not yet taken the lock
        (another thread or process storing a batch at the same moment).
        """
        young = time.time() - _STALE_AFTER
        for path in own.parent.iterdir():
            if not path.name.startswith(TEMP_PREFIX) or path == own:
                continue
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                if os.fstat(fd).st_mtime > young:
                    continue
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            else:
                path.unlink(missing_ok=True)
            finally:
                os.close(fd)

    def _sync(self, files: Sequence[Path], directories: set[Path]) -> None:
        """Make the given files' data and directories' entries durable."""
        if not files and not directories:
            return
        if _syncfs(self._root):
            return
        for path in files:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        for directory in sorted(directories):
            _fsync_dir(directory)

    def _put_stream(self, stream: Readable) -> BlobRef:
        temp, ref = self._stage(stream, sync=True)
        try:
            self._install(temp, ref)
        finally:
            temp.unlink(missing_ok=True)
        return ref

    def _stage(self, stream: Readable, *, sync: bool) -> tuple[Path, BlobRef]:
        """Copy ``stream`` into a read-only temporary file under ``tmp/``, hashing it."""
        staging = self._root / STAGING_DIR
        with self._storage_errors("write to", staging):
            staging.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=staging, prefix=".put-")
        temp = Path(name)
        try:
            with self._storage_errors("write", temp), os.fdopen(fd, "wb") as out:
                ref = _copy_hashing(stream, out)
                out.flush()
                if sync:
                    os.fsync(out.fileno())
                os.fchmod(out.fileno(), READ_ONLY)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return temp, ref

    def _new_metadata(self, ref: BlobRef) -> _Metadata:
        return _Metadata(
            sha256=ref.sha256,
            size=ref.size,
            stored_at=utcnow(),
            retain_until=default_retain_until(self._default_days),
            legal_hold=False,
        )

    def _install(self, temp: Path, ref: BlobRef) -> None:
        """Move a complete temporary file into place, metadata first (not if it is packed)."""
        target = self.path_for(ref.sha256)
        with self._guard(ref.sha256), self._storage_errors("write", target):
            if not target.exists() and self.locate(ref.sha256) is not None:
                return
            target.parent.mkdir(parents=True, exist_ok=True)
            if self._read_metadata(ref.sha256) is None:
                self._write_metadata(self._new_metadata(ref))
            if not target.exists():
                temp.replace(target)
                _fsync_dir(target.parent)

    def _stage_metadata(self, meta: _Metadata, *, sync: bool) -> Path:
        """Write the sidecar to a read-only temporary file in the blob's directory."""
        path = self.path_for(meta.sha256).with_suffix(METADATA_SUFFIX)
        with self._storage_errors("write", path):
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=path.parent, prefix=".meta-")
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(meta.to_json())
                    out.flush()
                    if sync:
                        os.fsync(out.fileno())
                    os.fchmod(out.fileno(), READ_ONLY)
            except BaseException:
                Path(name).unlink(missing_ok=True)
                raise
        return Path(name)

    def _write_metadata(self, meta: _Metadata) -> None:
        """Replace the sidecar atomically: temp file, fsync, rename, fsync directory."""
        path = self.path_for(meta.sha256).with_suffix(METADATA_SUFFIX)
        temp = self._stage_metadata(meta, sync=True)
        with self._storage_errors("write", path):
            try:
                temp.replace(path)
            finally:
                temp.unlink(missing_ok=True)
            _fsync_dir(path.parent)

    def _guard(self, sha256: str) -> AbstractContextManager[object]:
        """An exclusive lock on the store's metadata, across threads and processes."""
        return self._store_lock()

    def _store_lock(self) -> FileLock:
        """One lock for the whole store (blob directories are many and small).

        Its file stays open between batches (see :class:`~claimready.filelock.FileLock`);
        the root is made on the first use.
        """
        if not self._root_made:
            with self._storage_errors("lock", self._root / LOCK_FILE):
                self._root.mkdir(parents=True, exist_ok=True)
            self._root_made = True
        return self._lock

    # -- reading ----------------------------------------------------------------

    def _read_metadata(self, sha256: str) -> _Metadata | None:
        path = self.path_for(sha256).with_suffix(METADATA_SUFFIX)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"blob store {self._root}: cannot read {path}: {exc}") from exc
        try:
            return _Metadata.from_json(loads(raw))
        except (ValueError, KeyError, TypeError, InputError) as exc:
            raise StorageError(
                f"blob store {self._root}: metadata file {path} is malformed: {exc}"
            ) from exc

    def _metadata_or_raise(self, sha256: str) -> _Metadata:
        """The blob's metadata as :meth:`stat` reads it, ready to be changed and written."""
        info = self.stat(sha256)
        return _Metadata(
            sha256=info.sha256,
            size=info.size,
            stored_at=info.stored_at or utcnow(),
            retain_until=info.retain_until,
            legal_hold=info.legal_hold,
        )

    def locate(self, sha256: str) -> tuple[PackIndex, int, int] | None:
        """``(pack, offset, size)`` of a packed blob, or None (the packs are reread once)."""
        digest = bytes.fromhex(sha256)
        found = self._packs.locate(digest)
        if found is None:
            self._packs.refresh()
            found = self._packs.locate(digest)
        return found

    def open(self, sha256: str) -> BinaryIO:
        """A binary stream over the blob (its file or its range of a pack); the caller closes it."""
        path = self.path_for(sha256)
        try:
            return path.open("rb")
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StorageError(f"blob store {self._root}: cannot read {path}: {exc}") from exc
        found = self.locate(path.name)
        if found is None:
            raise NotFoundError(f"blob {path.name} is not in the blob store {self._root}")
        pack, offset, size = found
        with self._storage_errors("read", pack.path):
            fd = os.open(pack.path, os.O_RDONLY)
        return io.BufferedReader(_PackedBlob(fd, offset, size), CHUNK_SIZE)

    def exists(self, sha256: str) -> bool:
        """Whether the blob is stored, loose or in a pack."""
        path = self.path_for(sha256)
        return path.is_file() or self.locate(path.name) is not None

    def stat(self, sha256: str) -> BlobStat:
        """Size and storage time from the file or pack; retention and hold from the sidecar.

        A packed blob without a sidecar has its pack's storage time and retention.
        """
        path = self.path_for(sha256)
        default: _Metadata | None = None
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            found = self.locate(path.name)
            if found is None:
                raise NotFoundError(
                    f"blob {path.name} is not in the blob store {self._root}"
                ) from None
            pack, _, size = found
            default = _Metadata(path.name, size, pack.meta.stored_at, pack.meta.retain_until, False)
        except OSError as exc:
            raise StorageError(f"blob store {self._root}: cannot read {path}: {exc}") from exc
        meta = self._read_metadata(path.name) or default
        return BlobStat(
            sha256=path.name,
            size=size,
            stored_at=None if meta is None else meta.stored_at,
            retain_until=None if meta is None else meta.retain_until,
            legal_hold=False if meta is None else meta.legal_hold,
        )

    def iter_hashes(self) -> Iterator[str]:
        """Blob names in ascending order, loose and packed (temporary and sidecar files skipped)."""
        self._packs.refresh()
        packed = (digest.hex() for digest in self._packs.digests())
        previous = None
        for name in heapq.merge(self.iter_loose(), packed):
            if name != previous:
                yield name
            previous = name

    def iter_loose(self) -> Iterator[str]:
        """Names of the blobs kept as files of their own, in ascending order."""
        layout = self._root / LAYOUT_DIR
        if not layout.is_dir():
            return
        for first in sorted(layout.iterdir()):
            for second in sorted(first.iterdir()) if first.is_dir() else ():
                for entry in sorted(second.iterdir()) if second.is_dir() else ():
                    if is_sha256(entry.name) and entry.name.startswith(first.name + second.name):
                        yield entry.name

    def packs(self) -> list[PackIndex]:
        """The indexes of every pack, refreshed; raises VerificationError naming a damaged one."""
        self._packs.refresh()
        if self._packs.damaged:
            raise next(iter(sorted(self._packs.damaged.items())))[1]
        return [self._packs.packs[name] for name in sorted(self._packs.packs)]

    # -- retention, hold, delete ------------------------------------------------

    def set_legal_hold(self, sha256: str, *, on: bool) -> None:
        """Place or release a legal hold (recorded in the sidecar)."""
        digest = check_sha256(sha256)
        with self._guard(digest):
            meta = self._metadata_or_raise(digest)
            if meta.legal_hold != on:
                self._write_metadata(replace(meta, legal_hold=on))

    def _store_retention(self, sha256: str, until: datetime) -> None:
        meta = self._metadata_or_raise(sha256)
        self._write_metadata(replace(meta, retain_until=until))

    def _remove(self, sha256: str) -> None:
        """Remove the loose file, list every packed copy as gone, then reclaim those packs."""
        path = self.path_for(sha256)
        self._packs.refresh()
        holders = self._packs.holders(bytes.fromhex(sha256))
        with self._storage_errors("delete", path):
            if path.exists():
                path.unlink()
            for pack in holders:
                self._list_gone(pack, sha256)
            path.with_suffix(METADATA_SUFFIX).unlink(missing_ok=True)
            if path.parent.is_dir():
                _fsync_dir(path.parent)
        self._packs.refresh()
        for pack in holders:
            self._rewrite(self._packs.packs[pack.name])

    def _list_gone(self, pack: PackIndex, sha256: str) -> None:
        gone = pack.path.with_name(pack.name + GONE_SUFFIX)
        created = not gone.exists()
        fd = os.open(gone, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, sha256.encode("ascii") + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            _fsync_dir(gone.parent)

    def reclaim(self) -> int:
        """Rewrite every pack holding disposed blobs that may now be rewritten; return how many.

        A pack is rewritten (its disposed blobs' bytes dropped) only when none
        of its remaining blobs is retained or under legal hold.
        """
        with self._store_lock():
            self._packs.refresh()
            candidates = [pack for pack in self._packs.packs.values() if pack.gone]
            return sum(self._rewrite(pack) for pack in candidates)

    def _rewrite(self, pack: PackIndex) -> bool:
        """Copy a pack's live blobs, checked, into a new pack and remove the old one (locked)."""
        now = utcnow()
        live = list(pack.live())
        for digest, _, _ in live:
            info = self.stat(digest.hex())
            if info.legal_hold or (info.retain_until is not None and info.retain_until > now):
                return False
        directory = pack.path.parent
        with self._storage_errors("rewrite", pack.path):
            if live:
                self._copy_live(pack, live)
            pack.path.unlink()
            pack.path.with_name(pack.name + GONE_SUFFIX).unlink(missing_ok=True)
            self._sync([], {directory})
        self._packs.refresh()
        return True

    def _copy_live(self, pack: PackIndex, live: list[tuple[bytes, int, int]]) -> None:
        """Write ``live`` into a new pack with the old one's metadata, checking each blob."""
        writer = PackWriter(pack.path.parent)
        installed = False
        source = os.open(pack.path, os.O_RDONLY)
        try:
            for digest, offset, size in sorted(live, key=lambda entry: entry[1]):
                with io.BufferedReader(_PackedBlob(os.dup(source), offset, size)) as blob:
                    found, _ = writer.add(blob, lambda _digest: False)
                if found != digest.hex():
                    raise VerificationError(
                        f"stored content hashes to {found}; pack {pack.name} left as it is",
                        subject=f"blob {digest.hex()}",
                    )
            writer.install(pack.meta)
            installed = True
        finally:
            os.close(source)
            writer.close(remove=not installed)


class _PackedBlob(io.RawIOBase):
    """A read-only stream over one blob's byte range of a pack file (owns ``fd``)."""

    def __init__(self, fd: int, offset: int, size: int) -> None:
        super().__init__()
        self._fd = fd
        self._position = offset
        self._end = offset + size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        count = min(len(view), self._end - self._position)
        if count <= 0:
            return 0
        data = os.pread(self._fd, count, self._position)
        view[: len(data)] = data
        self._position += len(data)
        return len(data)

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()
