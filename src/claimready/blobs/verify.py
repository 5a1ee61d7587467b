"""Re-hash many stored blobs in parallel and name every one that fails.

For a :class:`~claimready.blobs.local.LocalBlobStore`, worker processes open
the blob files directly by path and stream them through SHA-256 in fixed-size
chunks (memory per worker: one chunk buffer). Other stores are re-hashed
through their own ``rehash`` from a pool of threads (reads there are bound by
network latency, and hashing releases the GIL for large chunks).

This runs after :func:`claimready.ledger.verify.verify_log` has checked the
ledger: the ledger proves which blob digests were recorded, this proves the
stored bytes still hash to them.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass

from claimready.blobs.base import BlobStore, check_sha256
from claimready.blobs.local import LocalBlobStore
from claimready.errors import NotFoundError, StorageError, VerificationError

__all__ = ["RehashReport", "rehash_blobs"]

_CHUNK = 1 << 20
_TASK_BYTES = 64 << 20
_TASK_FILES = 512


@dataclass(frozen=True)
class RehashReport:
    """What a successful re-hash covered."""

    blobs: int
    bytes: int


@dataclass(frozen=True)
class _Failure:
    sha256: str
    problem: str


def _default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - platforms without affinity
        return os.cpu_count() or 1


def _hash_file(path: str, buffer: bytearray) -> tuple[str, int]:
    hasher = hashlib.sha256()
    view = memoryview(buffer)
    size = 0
    with open(path, "rb", buffering=0) as stream:  # noqa: PTH123 - raw, unbuffered reads
        while count := stream.readinto(view):
            hasher.update(view[:count])
            size += count
    return hasher.hexdigest(), size


def _rehash_files(task: Sequence[tuple[str, str]]) -> tuple[int, list[_Failure]]:
    """Worker: re-hash ``(digest, path)`` pairs; return bytes read and the failures."""
    buffer = bytearray(_CHUNK)
    total = 0
    failures: list[_Failure] = []
    for digest, path in task:
        try:
            found, size = _hash_file(path, buffer)
        except FileNotFoundError:
            failures.append(_Failure(digest, f"is missing ({path})"))
            continue
        except OSError as exc:
            failures.append(_Failure(digest, f"cannot be read ({path}): {exc.strerror or exc}"))
            continue
        total += size
        if found != digest:
            failures.append(_Failure(digest, f"stored content ({size} bytes) hashes to {found}"))
    return total, failures


def _local_tasks(store: LocalBlobStore, digests: Iterable[str]) -> Iterator[list[tuple[str, str]]]:
    """Group blobs into tasks of about 64 MiB (or 512 files), using sizes from the directory."""
    task: list[tuple[str, str]] = []
    weight = 0
    for digest in digests:
        path = os.fspath(store.path_for(digest))
        with suppress(OSError):  # a missing blob is reported by the worker
            weight += os.stat(path).st_size  # noqa: PTH116 - hot loop over many files
        task.append((digest, path))
        if weight >= _TASK_BYTES or len(task) >= _TASK_FILES:
            yield task
            task, weight = [], 0
    if task:
        yield task


def _rehash_local(
    store: LocalBlobStore, digests: Iterable[str], workers: int
) -> tuple[int, int, list[_Failure]]:
    tasks = _local_tasks(store, digests)
    blobs = total = 0
    failures: list[_Failure] = []
    if workers <= 1:
        for task in tasks:
            read, failed = _rehash_files(task)
            blobs, total = blobs + len(task), total + read
            failures.extend(failed)
        return blobs, total, failures
    pool = multiprocessing.get_context("fork").Pool(workers)
    try:
        for size, read, failed in pool.imap_unordered(_rehash_task, tasks):
            blobs, total = blobs + size, total + read
            failures.extend(failed)
    finally:
        pool.terminate()
        pool.join()
    return blobs, total, failures


def _rehash_task(task: Sequence[tuple[str, str]]) -> tuple[int, int, list[_Failure]]:
    read, failed = _rehash_files(task)
    return len(task), read, failed


def _rehash_one(store: BlobStore, digest: str) -> tuple[int, _Failure | None]:
    try:
        size = store.stat(digest).size
        store.rehash(digest)
    except NotFoundError:
        return 0, _Failure(digest, "is missing")
    except VerificationError as exc:
        return 0, _Failure(digest, exc.problem)
    except StorageError as exc:
        return 0, _Failure(digest, f"cannot be read: {exc.message}")
    return size, None


def _rehash_store(
    store: BlobStore, digests: Iterable[str], workers: int
) -> tuple[int, int, list[_Failure]]:
    blobs = total = 0
    failures: list[_Failure] = []
    with ThreadPoolExecutor(max(1, workers * 4)) as threads:
        for size, failure in threads.map(lambda d: _rehash_one(store, d), digests):
            blobs += 1
            total += size
            if failure is not None:
                failures.append(failure)
    return blobs, total, failures


def rehash_blobs(
    store: BlobStore, *, digests: Iterable[str] | None = None, workers: int | None = None
) -> RehashReport:
    """Re-hash ``digests`` (every stored blob by default) in parallel.

    Raises :class:`~claimready.errors.VerificationError` whose subject names
    the first failing blob in digest order; the message counts any others.
    Memory stays bounded: blobs are streamed in 1 MiB chunks.
    """
    wanted = store.iter_hashes() if digests is None else (check_sha256(d) for d in digests)
    count = workers if workers is not None else _default_workers()
    if isinstance(store, LocalBlobStore):
        blobs, total, failures = _rehash_local(store, wanted, count)
    else:
        blobs, total, failures = _rehash_store(store, wanted, count)
    if failures:
        failures.sort(key=lambda f: f.sha256)
        first = failures[0]
        more = f" ({len(failures) - 1} more blobs fail)" if len(failures) > 1 else ""
        raise VerificationError(first.problem + more, subject=f"blob {first.sha256}")
    return RehashReport(blobs=blobs, bytes=total)
