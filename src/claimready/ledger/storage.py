"""Where a ledger keeps its published objects (tiles, bundles, checkpoints).

Objects are small, whole, and addressed by a relative ``/``-separated path.
Writes are atomic: a reader sees the old object or the new one, never a mix.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
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
        self._prefix = os.fspath(self.root) + os.sep

    def _resolve(self, path: str) -> str:
        # String checks, not pathlib: full verification resolves two paths per 256 entries.
        parts = path.split("/")
        if not path or path.startswith("/") or ".." in parts or "" in parts or "\0" in path:
            raise StorageError(f"{path}: not a relative object path")
        return self._prefix + path

    def path_of(self, path: str) -> Path:
        """The local file that holds the object at ``path``."""
        return Path(self._resolve(path))

    def read(self, path: str) -> bytes | None:
        """The object's bytes, or None if it does not exist."""
        try:
            with open(self._resolve(path), "rb") as stream:  # noqa: PTH123 - hot path
                return stream.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"{path}: cannot read: {exc}") from exc

    def write(self, path: str, data: bytes) -> None:
        """Store ``data`` at ``path`` atomically and durably."""
        atomic_write(Path(self._resolve(path)), data)

    def exists(self, path: str) -> bool:
        """Whether an object exists at ``path``."""
        return os.path.isfile(self._resolve(path))  # noqa: PTH113 - hot path

    def list(self, prefix: str) -> list[str]:
        """Paths of every object under the directory ``prefix``, sorted (temp files skipped)."""
        base = self._resolve(prefix)
        if not os.path.isdir(base):  # noqa: PTH112 - called once per tile by verification
            return []
        found: list[str] = []
        for dirpath, _dirs, files in os.walk(base):
            rel = Path(dirpath).relative_to(self.root).as_posix()
            found.extend(f"{rel}/{name}" for name in files if not name.startswith("."))
        return sorted(found)
