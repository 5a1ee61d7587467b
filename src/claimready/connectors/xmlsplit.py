"""Reading one large XML file with two processes: where to split it, and the second process.

A streaming expat reader spends most of its time in Python callbacks, one per
element, so one process reads a large report at most as fast as one core
allows. A reader can instead hand the part after some element start to a
second process and read up to it itself. Everything here is a guess from the
bytes that the reader must confirm (it meets that element start at that byte
offset, with the state the second process assumed); a guess it cannot
confirm only costs the second process's work.

- :func:`plain_head`, :func:`find_start` and :func:`count_starts` look at the
  bytes to choose a split;
- :class:`SecondProcess` runs a reading function in a forked process that
  writes its results, pickled, to a temporary file, and hands them back only
  when it ended well.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import re
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import IO, Any

SCAN_BYTES = 1 << 20
_CUT = 64  # bytes looked at again with the next chunk: longer than any pattern searched for
_DECLARATION = re.compile(rb"(?:\xef\xbb\xbf)?<\?xml([^?>]*)\?>")
_ENCODING = re.compile(rb"""encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_PLAIN_ENCODINGS = (b"utf-8", b"us-ascii")


def can_fork() -> bool:
    """True when this process may fork a second reader: two cores, one Python thread."""
    if "fork" not in multiprocessing.get_all_start_methods() or threading.active_count() > 1:
        return False
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) >= 2
    return (os.cpu_count() or 1) >= 2


def plain_head(head: bytes, *, root: str) -> bool:
    """The file is UTF-8 (declared or by default) and has no DOCTYPE before ``root`` starts.

    A second process reads part of the file without its prolog, so the prolog
    must not change how that part reads (an encoding, or a DTD's default
    attribute values and entities).
    """
    start = head.find(b"<" + root.encode())
    if start == -1 or b"<!DOCTYPE" in head[:start] or head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return False
    declaration = _DECLARATION.match(head)
    encoding = _ENCODING.search(declaration.group(1)) if declaration else None
    return encoding is None or encoding.group(1).lower() in _PLAIN_ENCODINGS


def find_start(handle: IO[bytes], at: int, pattern: re.Pattern[bytes]) -> int | None:
    """Offset of the first match of ``pattern`` at or after ``at`` (where ``handle`` is)."""
    carry = b""
    while chunk := handle.read(SCAN_BYTES):
        data = carry + chunk
        found = pattern.search(data)
        if found is not None:
            return at - len(carry) + found.start()
        at += len(chunk)
        carry = data[-_CUT:]
    return None


def count_starts(handle: IO[bytes], until: int, pattern: re.Pattern[bytes]) -> int:
    """How many matches of ``pattern`` begin before byte ``until`` (reading from the start)."""
    handle.seek(0)
    count, base, carry = 0, 0, b""
    while base + len(carry) < until + _CUT and (chunk := handle.read(SCAN_BYTES)):
        data = carry + chunk
        keep = max(0, len(data) - _CUT)  # a match past here may be cut: look again with the next
        count += sum(1 for m in pattern.finditer(data) if m.start() < min(keep, until - base))
        base, carry = base + keep, data[keep:]
    return count + sum(1 for m in pattern.finditer(carry) if base + m.start() < until)


class SecondProcess:
    """``target(*args, out)`` in a forked process, writing pickles to the temporary file ``out``.

    Used as a context manager, which ends the process and removes the file.
    ``running`` is False when ``args`` is None or no process could be had.
    The target signals failure by exiting non-zero (any exception does).
    """

    def __init__(self, target: Callable[..., None], args: tuple[Any, ...] | None) -> None:
        self._out: IO[bytes] | None = None
        self._process: multiprocessing.process.BaseProcess | None = None
        if args is not None:
            try:
                self._start(target, args)
            except OSError:  # no process or temporary file to be had: the reader reads alone
                self.__exit__()

    @property
    def running(self) -> bool:
        """Whether the second process was started."""
        return self._process is not None

    def _start(self, target: Callable[..., None], args: tuple[Any, ...]) -> None:
        self._out = tempfile.TemporaryFile()  # noqa: SIM115 - closed in __exit__
        context = multiprocessing.get_context("fork")
        self._process = context.Process(target=_run, args=(target, args, self._out), daemon=True)
        with warnings.catch_warnings():
            # Python 3.12+ warns when the process has other threads, as it has once
            # pyarrow is loaded (its own native threads). The child runs only the
            # target (expat, pickle, file reads), which waits on no lock those
            # threads could hold, and leaves with os._exit.
            warnings.simplefilter("ignore", DeprecationWarning)
            self._process.start()

    def __enter__(self) -> SecondProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._process is not None and self._process.pid is not None:
            if self._process.is_alive():
                self._process.kill()
            self._process.join()
            self._process.close()
        if self._out is not None:
            self._out.close()
        self._process = self._out = None

    def results(self) -> Iterator[Any] | None:
        """Wait for the process; what it wrote, in order, or None when it failed."""
        if self._process is None or self._out is None:
            return None
        self._process.join()
        if self._process.exitcode != 0:
            return None
        self._out.seek(0)
        return _unpickled(self._out)


def _run(target: Callable[..., None], args: tuple[Any, ...], out: IO[bytes]) -> None:
    try:
        target(*args, out)
        out.flush()  # the process ends with os._exit, which flushes nothing
    except BaseException:  # any failure: the first process reads the rest itself
        raise SystemExit(1) from None


def _unpickled(handle: IO[bytes]) -> Iterator[Any]:
    while True:
        try:
            yield pickle.load(handle)  # noqa: S301 - written by our own child process
        except EOFError:
            return
