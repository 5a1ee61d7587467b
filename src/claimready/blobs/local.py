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
import io
import os
import tempfile
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
from claimready.canonical import canonical_json, loads
from claimready.errors import InputError, NotFoundError, StorageError
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
        """Store several files with one group commit; return their refs in order.

        1. Each file is copied into a temporary file under ``tmp/`` and hashed,
           without a sync. A file that cannot be read raises
           :class:`~claimready.errors.InputError` before anything is installed.
        2. Under the store lock, a sidecar is written to a temporary file next
           to each blob not yet stored.
        3. Sync the data of every temporary file.
        4. Rename the sidecars into place, then sync (the new names).
        5. Rename the blobs into place, then sync (the new names).

        On Linux each sync is one ``syncfs`` of the store's filesystem;
        elsewhere it is an fsync of each file, then of each directory.
        Every blob and sidecar is durable when this returns, and, as with
        :meth:`put_file`, a crash never leaves a blob without its sidecar.
        """
        staged: dict[str, Path] = {}
        refs: list[BlobRef] = []
        try:
            for path in paths:
                with _open_source(path) as stream:
                    temp, ref = self._stage(stream, sync=False)
                refs.append(ref)
                if ref.sha256 in staged:
                    temp.unlink()
                else:
                    staged[ref.sha256] = temp
            sizes = {ref.sha256: ref.size for ref in refs}
            self._install_many(staged, sizes)
        finally:
            for temp in staged.values():
                temp.unlink(missing_ok=True)
        return refs

    def _install_many(self, staged: dict[str, Path], sizes: dict[str, int]) -> None:
        """Steps 2 to 5 of :meth:`put_files`, for blobs staged in temporary files."""
        targets = {digest: self.path_for(digest) for digest in staged}
        with self._store_lock(), self._storage_errors("write to", self._root / LAYOUT_DIR):
            blobs = {d: t for d, t in staged.items() if not targets[d].exists()}
            sidecars: dict[str, Path] = {}
            for digest, target in targets.items():
                target.parent.mkdir(parents=True, exist_ok=True)
                if self._read_metadata(digest) is None:
                    meta = self._new_metadata(BlobRef(sha256=digest, size=sizes[digest]))
                    sidecars[digest] = self._stage_metadata(meta, sync=False)
            try:
                self._sync([*blobs.values(), *sidecars.values()], set())
                for digest, temp in sidecars.items():
                    temp.replace(targets[digest].with_suffix(METADATA_SUFFIX))
                self._sync([], {targets[digest].parent for digest in sidecars})
                for digest, temp in blobs.items():
                    temp.replace(targets[digest])
                self._sync([], {targets[digest].parent for digest in blobs})
            finally:
                for temp in sidecars.values():
                    temp.unlink(missing_ok=True)

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
        """Move a complete temporary file into place, metadata first."""
        target = self.path_for(ref.sha256)
        with self._guard(ref.sha256), self._storage_errors("write", target):
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

    def _guard(self, sha256: str) -> AbstractContextManager[None]:
        """An exclusive lock on the store's metadata, across threads and processes."""
        return self._store_lock()

    @contextmanager
    def _store_lock(self) -> Iterator[None]:
        """One lock for the whole store (blob directories are many and small)."""
        lock_path = self._root / LOCK_FILE
        with self._storage_errors("lock", lock_path):
            self._root.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

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
        """The sidecar for a stored blob, rebuilt from the file if it is missing."""
        info = self.stat(sha256)
        meta = self._read_metadata(info.sha256)
        if meta is not None:
            return meta
        return _Metadata(
            sha256=info.sha256,
            size=info.size,
            stored_at=info.stored_at or utcnow(),
            retain_until=None,
            legal_hold=False,
        )

    def open(self, sha256: str) -> BinaryIO:
        """A binary file object over the blob; the caller closes it."""
        path = self.path_for(sha256)
        try:
            return path.open("rb")
        except FileNotFoundError:
            raise NotFoundError(f"blob {path.name} is not in the blob store {self._root}") from None
        except OSError as exc:
            raise StorageError(f"blob store {self._root}: cannot read {path}: {exc}") from exc

    def exists(self, sha256: str) -> bool:
        """Whether the blob file is present."""
        return self.path_for(sha256).is_file()

    def stat(self, sha256: str) -> BlobStat:
        """Size and storage time from the file; retention and hold from its sidecar."""
        path = self.path_for(sha256)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise NotFoundError(f"blob {path.name} is not in the blob store {self._root}") from None
        except OSError as exc:
            raise StorageError(f"blob store {self._root}: cannot read {path}: {exc}") from exc
        meta = self._read_metadata(path.name)
        return BlobStat(
            sha256=path.name,
            size=size,
            stored_at=None if meta is None else meta.stored_at,
            retain_until=None if meta is None else meta.retain_until,
            legal_hold=False if meta is None else meta.legal_hold,
        )

    def iter_hashes(self) -> Iterator[str]:
        """Blob names in ascending order (temporary and sidecar files are skipped)."""
        layout = self._root / LAYOUT_DIR
        if not layout.is_dir():
            return
        for first in sorted(layout.iterdir()):
            for second in sorted(first.iterdir()) if first.is_dir() else ():
                for entry in sorted(second.iterdir()) if second.is_dir() else ():
                    if is_sha256(entry.name) and entry.name.startswith(first.name + second.name):
                        yield entry.name

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
        path = self.path_for(sha256)
        with self._storage_errors("delete", path):
            path.unlink()
            path.with_suffix(METADATA_SUFFIX).unlink(missing_ok=True)
            _fsync_dir(path.parent)
