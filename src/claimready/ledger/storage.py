"""Where a ledger keeps its published objects (tiles, bundles, checkpoints).

Objects are small, whole, and addressed by a relative ``/``-separated path.
Writes are atomic: a reader sees the old object or the new one, never a mix.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path, PurePosixPath
from typing import Protocol

from claimready.errors import StorageError

__all__ = ["FileStorage", "Storage", "atomic_write"]


class Storage(Protocol):
    """Read and write whole small objects by relative path."""

    def read(self, path: str) -> bytes | None:
        """The object's bytes, or None if it does not exist."""
        ...

    def write(self, path: str, data: bytes) -> None:
        """Store ``data`` at ``path`` atomically and durably, replacing any previous object."""
        ...

    def exists(self, path: str) -> bool:
        """Whether an object exists at ``path``."""
        ...

    def list(self, prefix: str) -> list[str]:
        """Paths of every object under the directory ``prefix``, sorted."""
        ...


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(target: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write ``target`` atomically: temp file, fsync, rename, fsync the directory."""
    directory = target.parent
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{target.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
        os.close(fd)
        fd = -1
        Path(tmp).replace(target)
        _fsync_dir(directory)
    except OSError as exc:
        if fd >= 0:
            os.close(fd)
        Path(tmp).unlink(missing_ok=True)
        raise StorageError(f"{target}: cannot write: {exc}") from exc


class FileStorage:
    """:class:`Storage` on a local directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _resolve(self, path: str) -> Path:
        rel = PurePosixPath(path)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            raise StorageError(f"{path}: not a relative object path")
        return self.root.joinpath(*rel.parts)

    def read(self, path: str) -> bytes | None:
        """The object's bytes, or None if it does not exist."""
        try:
            return self._resolve(path).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"{path}: cannot read: {exc}") from exc

    def write(self, path: str, data: bytes) -> None:
        """Store ``data`` at ``path`` atomically and durably."""
        atomic_write(self._resolve(path), data)

    def exists(self, path: str) -> bool:
        """Whether an object exists at ``path``."""
        return self._resolve(path).is_file()

    def list(self, prefix: str) -> list[str]:
        """Paths of every object under the directory ``prefix``, sorted (temp files skipped)."""
        base = self._resolve(prefix)
        if not base.is_dir():
            return []
        found: list[str] = []
        for dirpath, _dirs, files in os.walk(base):
            rel = Path(dirpath).relative_to(self.root).as_posix()
            found.extend(f"{rel}/{name}" for name in files if not name.startswith("."))
        return sorted(found)
