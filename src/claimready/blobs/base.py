"""The blob store contract: raw evidence kept by the SHA-256 of its bytes.

A blob is named by the lowercase hex SHA-256 of its content, so storing the
same bytes twice is a no-op and a reader can always check what it got.
Retention and legal hold decide when a blob may be deleted; the rules that
govern them (retention is only ever extended, nothing is deleted while
retained or held) live here, once, so every backend enforces them the same
way even where the backend itself would allow more.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Generator, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from os import PathLike
from typing import BinaryIO, Protocol

from claimready.errors import ConflictError, InputError, VerificationError
from claimready.timeutil import ensure_utc, format_utc, utcnow

__all__ = [
    "CHUNK_SIZE",
    "BlobRef",
    "BlobStat",
    "BlobStore",
    "Readable",
    "check_sha256",
    "hash_stream",
    "is_sha256",
    "retention_instant",
]

#: Bytes read at a time when hashing or copying; bounds memory use.
CHUNK_SIZE = 1024 * 1024

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class Readable(Protocol):
    """Anything with a binary ``read(size)``: files, sockets, HTTP bodies."""

    def read(self, size: int = -1, /) -> bytes:
        """Read at most ``size`` bytes (all when negative)."""
        ...


@dataclass(frozen=True, slots=True)
class BlobRef:
    """What a put returns: the blob's name and its length in bytes."""

    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class BlobStat:
    """A stored blob's size, storage time, retention and legal hold.

    ``stored_at`` is when the backend says the bytes were written (file
    modification time, S3 ``LastModified``); it is informational and never a
    substitute for the ledger's stored time.
    """

    sha256: str
    size: int
    stored_at: datetime | None
    retain_until: datetime | None
    legal_hold: bool


def check_sha256(value: str) -> str:
    """Return ``value`` as a lowercase SHA-256 hex digest, or raise :class:`InputError`."""
    digest = value.strip().lower()
    if not _SHA256_HEX.fullmatch(digest):
        raise InputError(
            f"{value!r} is not a SHA-256 digest (64 hexadecimal characters)", field="sha256"
        )
    return digest


def is_sha256(name: str) -> bool:
    """Whether ``name`` is exactly a lowercase SHA-256 hex digest (as blob names are)."""
    return _SHA256_HEX.fullmatch(name) is not None


def hash_stream(stream: Readable) -> BlobRef:
    """Hash ``stream`` to its end in fixed-size chunks, never holding it whole."""
    hasher = hashlib.sha256()
    size = 0
    while chunk := stream.read(CHUNK_SIZE):
        hasher.update(chunk)
        size += len(chunk)
    return BlobRef(sha256=hasher.hexdigest(), size=size)


def retention_instant(until: datetime) -> datetime:
    """``until`` in UTC, rounded *up* to a whole second.

    Object stores keep retention dates to the second; rounding up means a
    stored date is never earlier than the one asked for.
    """
    utc = ensure_utc(until)
    if utc.microsecond:
        utc = utc.replace(microsecond=0) + timedelta(seconds=1)
    return utc


def default_retain_until(days: int) -> datetime | None:
    """The retention date for a blob stored now, or ``None`` when ``days`` is 0."""
    if days <= 0:
        return None
    return retention_instant(utcnow() + timedelta(days=days))


def check_retention_days(days: int) -> int:
    """Validate a default retention period in whole days (0 means none)."""
    if isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= 36500:
        raise InputError(
            f"default retention must be a whole number of days from 0 to 36500, not {days!r}",
            field="default_retention_days",
        )
    return days


class BlobStore(ABC):
    """A content-addressed store of evidence blobs with retention and legal hold.

    Every method taking a ``sha256`` raises :class:`~claimready.errors.InputError`
    for a malformed digest and :class:`~claimready.errors.NotFoundError` when no
    such blob is stored (``exists`` excepted).
    """

    @abstractmethod
    def put_file(self, path: str | PathLike[str]) -> BlobRef:
        """Store the file at ``path``, streaming it; return its name and size."""

    @abstractmethod
    def put_bytes(self, data: bytes) -> BlobRef:
        """Store ``data``; return its name and size."""

    def put_files(self, paths: Sequence[str | PathLike[str]]) -> list[BlobRef]:
        """Store several files; return their refs in the order given.

        Every blob is durable when this returns, as after :meth:`put_file`.
        Backends override it to make a batch durable with fewer round trips
        or syncs; this default stores the files one by one.
        """
        return [self.put_file(path) for path in paths]

    def put_batches(
        self, batches: Iterable[Sequence[str | PathLike[str]]], *, ahead: int = 2
    ) -> Generator[list[BlobRef], None, None]:
        """:meth:`put_files` on each batch, up to ``ahead`` batches stored while the caller works.

        Yields each batch's refs in order, once its blobs are durable, having
        started storing the batches after it: a caller entering batch *k* in
        the ledger overlaps the reading, hashing and syncing of the next ones.
        A batch that fails raises in its turn; batches after it may already
        be stored (storing them again is a no-op). Closing the iterator early
        waits for the batches being stored and starts no more.
        """
        source = iter(batches)
        pending: deque[Future[list[BlobRef]]] = deque()
        with ThreadPoolExecutor(max(ahead, 1), thread_name_prefix="blob-batch") as pool:
            try:
                for batch in itertools.islice(source, max(ahead, 1)):
                    pending.append(pool.submit(self.put_files, batch))
                while pending:
                    refs = pending.popleft().result()
                    for batch in itertools.islice(source, 1):
                        pending.append(pool.submit(self.put_files, batch))
                    yield refs
            finally:
                for future in pending:
                    future.cancel()

    @abstractmethod
    def open(self, sha256: str) -> BinaryIO:
        """A binary stream over the blob's bytes; the caller closes it."""

    @abstractmethod
    def exists(self, sha256: str) -> bool:
        """Whether a blob with this name is stored."""

    @abstractmethod
    def stat(self, sha256: str) -> BlobStat:
        """Size, storage time, retention and legal hold of a stored blob."""

    @abstractmethod
    def iter_hashes(self) -> Iterator[str]:
        """The names of all stored blobs, in ascending order."""

    @abstractmethod
    def set_legal_hold(self, sha256: str, *, on: bool) -> None:
        """Place (``on=True``) or release a legal hold on a blob."""

    @abstractmethod
    def _store_retention(self, sha256: str, until: datetime) -> None:
        """Record a retention date already checked to extend the current one."""

    @abstractmethod
    def _remove(self, sha256: str) -> None:
        """Remove a blob already checked to be neither retained nor held."""

    def _guard(self, sha256: str) -> AbstractContextManager[object]:
        """Serialize read-check-write sequences on one blob's metadata.

        Backends whose metadata can change between the check and the write
        (a shared filesystem) override this with a real lock.
        """
        return nullcontext()

    def get_bytes(self, sha256: str) -> bytes:
        """The blob's bytes, checked against its name (for small blobs)."""
        digest = check_sha256(sha256)
        with self.open(digest) as stream:
            data = stream.read()
        found = hashlib.sha256(data).hexdigest()
        if found != digest:
            raise VerificationError(
                f"content read back hashes to {found}", subject=f"blob {digest}"
            )
        return data

    def rehash(self, sha256: str) -> None:
        """Stream the blob and check that it still hashes to its name.

        Raises :class:`~claimready.errors.VerificationError` naming the blob when
        it does not.
        """
        digest = check_sha256(sha256)
        with self.open(digest) as stream:
            found = hash_stream(stream)
        if found.sha256 != digest:
            raise VerificationError(
                f"stored content ({found.size} bytes) hashes to {found.sha256}",
                subject=f"blob {digest}",
            )

    def retention(self, sha256: str) -> datetime | None:
        """The date until which the blob is retained, or ``None`` if it never was."""
        return self.stat(sha256).retain_until

    def legal_hold(self, sha256: str) -> bool:
        """Whether the blob is under legal hold."""
        return self.stat(sha256).legal_hold

    def set_retention(self, sha256: str, *, until: datetime) -> None:
        """Retain the blob until ``until`` (rounded up to a second).

        Retention may be extended, never shortened: an earlier date than the
        current one raises :class:`~claimready.errors.ConflictError`, whatever
        the backend would allow. Setting the current date again is a no-op.
        """
        digest = check_sha256(sha256)
        wanted = retention_instant(until)
        if wanted <= utcnow():
            raise InputError(
                f"retention date {format_utc(wanted)} is not in the future", field="until"
            )
        with self._guard(digest):
            current = self.stat(digest).retain_until
            if current is not None and wanted < current:
                raise ConflictError(
                    f"blob {digest} is retained until {format_utc(current)}; "
                    f"retention can be extended but not shortened to {format_utc(wanted)}"
                )
            if current != wanted:
                self._store_retention(digest, wanted)

    def delete(self, sha256: str) -> None:
        """Delete the blob; refused while it is retained or under legal hold.

        Raises :class:`~claimready.errors.ConflictError` naming the hold or the
        retention date that prevents it.
        """
        digest = check_sha256(sha256)
        with self._guard(digest):
            info = self.stat(digest)
            if info.legal_hold:
                raise ConflictError(
                    f"blob {digest} is under legal hold; release the hold before deleting it"
                )
            if info.retain_until is not None and info.retain_until > utcnow():
                raise ConflictError(
                    f"blob {digest} is retained until {format_utc(info.retain_until)} "
                    "and cannot be deleted before then"
                )
            self._remove(digest)
