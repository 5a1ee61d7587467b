"""A short run of file system calls made with the interpreter lock released once.

Making a pack or a sequencing record durable takes five to seven blocking
calls in a row (write, sync, rename, sync the directory). Each one made
from Python gives up the interpreter lock and must take it back; with other
threads running Python code beside it, taking it back waits for them (a
median of about 0.3 ms and often 2-3 ms on a 2-core machine), and those
waits set the time of the whole run. :func:`run` makes the run in one go
through the compiled ``claimready._fileops`` where it was built, and the
same calls one by one in Python elsewhere, with the same results and errors.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from claimready.native import optional_module
from claimready.threads import SharedPool

__all__ = [
    "NATIVE",
    "Op",
    "attempt",
    "attempt_parallel",
    "fchmod",
    "fdatasync",
    "fsync",
    "fsync_dir",
    "ftruncate",
    "pwrite",
    "rename",
    "run",
    "write_file",
]

_FSYNC, _FDATASYNC, _RENAME, _FSYNC_DIR, _PWRITE, _WRITE_FILE, _FTRUNCATE, _FCHMOD = range(8)


#: ``claimready._fileops``, or None where it was not built (it needs a C compiler).
NATIVE = optional_module("claimready._fileops")
#: Threads of the Python stand-in for :func:`run_parallel` (the compiled one starts its own).
_POOL = SharedPool(8, "fileops")


@dataclass(frozen=True, slots=True)
class Op:
    """One call: its arguments as the compiled runner takes them, and the file it concerns."""

    args: tuple[Any, ...]
    name: str


def fsync(fd: int, name: str) -> Op:
    """``fsync(fd)``; ``name`` is the file, for errors."""
    return Op((_FSYNC, fd), name)


def fdatasync(fd: int, name: str) -> Op:
    """``fdatasync(fd)``."""
    return Op((_FDATASYNC, fd), name)


def rename(source: str, target: str) -> Op:
    """``rename(source, target)``; an error names ``target``."""
    return Op((_RENAME, os.fsencode(source), os.fsencode(target)), target)


def fsync_dir(directory: str) -> Op:
    """Open ``directory``, ``fsync`` it, close it."""
    return Op((_FSYNC_DIR, os.fsencode(directory)), directory)


def pwrite(fd: int, data: bytes | memoryview, offset: int, name: str) -> Op:
    """Write all of ``data`` at ``offset`` (a write of nothing is an error)."""
    return Op((_PWRITE, fd, data, offset), name)


def write_file(path: str, data: bytes, mode: int) -> Op:
    """Create ``path`` (it must not exist), set ``mode``, write ``data``, ``fsync``, close.

    On a failure the file is removed.
    """
    return Op((_WRITE_FILE, os.fsencode(path), data, mode), path)


def ftruncate(fd: int, length: int, name: str) -> Op:
    """``ftruncate(fd, length)``."""
    return Op((_FTRUNCATE, fd, length), name)


def fchmod(fd: int, mode: int, name: str) -> Op:
    """``fchmod(fd, mode)``."""
    return Op((_FCHMOD, fd, mode), name)


def _write_all(fd: int, data: bytes | memoryview, offset: int | None) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view) if offset is None else os.pwrite(fd, view, offset)
        if written <= 0:
            raise OSError(5, os.strerror(5))  # EIO, as the compiled runner reports it
        view = view[written:]
        if offset is not None:
            offset += written


def _write_file(path: bytes, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, mode)
        _write_all(fd, data, None)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(path)  # noqa: PTH108 - a bytes path, as the compiled runner takes it
        raise
    try:
        os.close(fd)
    except BaseException:
        os.unlink(path)  # noqa: PTH108 - a bytes path, as the compiled runner takes it
        raise


def _fsync_dir(path: bytes) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: The same calls from Python (``os`` looked up at each call, as tests replace its functions).
_PYTHON: dict[int, Callable[..., object]] = {
    _FSYNC: lambda fd: os.fsync(fd),
    _FDATASYNC: lambda fd: os.fdatasync(fd),
    _RENAME: lambda source, target: os.rename(source, target),  # noqa: PTH104 - bytes paths
    _FSYNC_DIR: _fsync_dir,
    _PWRITE: lambda fd, data, offset: _write_all(fd, data, offset),
    _WRITE_FILE: _write_file,
    _FTRUNCATE: lambda fd, length: os.ftruncate(fd, length),
    _FCHMOD: lambda fd, mode: os.fchmod(fd, mode),
}


def _run_python(calls: Sequence[tuple[Any, ...]]) -> tuple[int, int]:
    for done, (code, *args) in enumerate(calls):
        try:
            _PYTHON[code](*args)
        except OSError as exc:
            return done, exc.errno or 5
    return len(calls), 0


def _outcome(ops: Sequence[Op], done: int, errno: int) -> tuple[int, OSError | None]:
    if errno:
        return done, OSError(errno, os.strerror(errno), ops[done].name)
    return done, None


def attempt(ops: Sequence[Op], *, native: bool = True) -> tuple[int, OSError | None]:
    """Make ``ops`` in order until one fails: how many were made, and its error naming its file."""
    calls = [op.args for op in ops]
    done, errno = NATIVE.run(calls) if native and NATIVE else _run_python(calls)
    return _outcome(ops, done, errno)


def attempt_parallel(
    groups: Sequence[Sequence[Op]], *, threads: int = 8, native: bool = True
) -> list[tuple[int, OSError | None]]:
    """:func:`attempt` on each group, the groups at once on up to ``threads`` threads.

    A journaling filesystem commits syncs that are pending together in one
    commit, so syncing many small files at once costs about one commit.
    """
    calls = [[op.args for op in group] for group in groups]
    if native and NATIVE:
        results = NATIVE.run_parallel(calls, threads)
    elif len(calls) < 2 or threads < 2:
        results = [_run_python(group) for group in calls]
    else:
        results = list(_POOL.executor().map(_run_python, calls))
    return [_outcome(group, *result) for group, result in zip(groups, results, strict=True)]


def run(ops: Sequence[Op], *, native: bool = True) -> None:
    """Make ``ops`` in order; the first that fails raises :class:`OSError` naming its file.

    The ops before it are done; those after it are not made.
    """
    _done, error = attempt(ops, native=native)
    if error is not None:
        raise error
