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


def _hash_range(path: str, offset: int, size: int, buffer: bytearray) -> tuple[str, int]:
    """SHA-256 of ``size`` bytes of ``path`` from ``offset`` (to the end when ``size`` < 0)."""
    hasher = hashlib.sha256()
    view = memoryview(buffer)
    done = 0
    with open(path, "rb", buffering=0) as stream:  # noqa: PTH123 - raw, unbuffered reads
        if offset:
            stream.seek(offset)
        while size < 0 or done < size:
            want = len(view) if size < 0 else min(len(view), size - done)
            count = stream.readinto(view[:want])
            if not count:
                break
            hasher.update(view[:count])
            done += count
    return hasher.hexdigest(), done


_Location = tuple[str, str, int, int]
"""A blob to re-hash: digest, file, offset, size (-1: the whole file)."""
_Task = Sequence[_Location]


def _rehash_files(task: _Task) -> tuple[int, list[_Failure]]:
    """Worker: re-hash ``(digest, path, offset, size)``; return bytes read and the failures."""
    buffer = bytearray(_CHUNK)
    total = 0
    failures: list[_Failure] = []
    for digest, path, offset, size in task:
        try:
            found, read = _hash_range(path, offset, size, buffer)
        except FileNotFoundError:
            failures.append(_Failure(digest, f"is missing ({path})"))
            continue
        except OSError as exc:
            failures.append(_Failure(digest, f"cannot be read ({path}): {exc.strerror or exc}"))
            continue
        total += read
        if found != digest:
            where = path if size < 0 else f"{path} at byte {offset}"
            failures.append(
                _Failure(digest, f"stored content ({read} bytes, {where}) hashes to {found}")
            )
    return total, failures


def _locations(store: LocalBlobStore, digests: Iterable[str] | None) -> Iterator[_Location]:
    """Where each blob is: packed blobs pack by pack in file order, then loose files."""
    packs = store.packs()
    if digests is None:
        for pack in packs:
            for raw, offset, size in sorted(pack.live(), key=lambda entry: entry[1]):
                yield raw.hex(), os.fspath(pack.path), offset, size
        for name in store.iter_loose():
            yield name, os.fspath(store.path_for(name)), 0, -1
        return
    by_pack: dict[str, list[_Location]] = {}
    for digest in digests:
        path = store.path_for(digest)
        found = None if path.is_file() else store.locate(digest)
        if found is None:
            yield digest, os.fspath(path), 0, -1
        else:
            pack, offset, size = found
            by_pack.setdefault(pack.name, []).append((digest, os.fspath(pack.path), offset, size))
    for name in sorted(by_pack):
        yield from sorted(by_pack[name], key=lambda location: location[2])


def _local_tasks(store: LocalBlobStore, digests: Iterable[str] | None) -> Iterator[list[_Location]]:
    """Group blobs into tasks of about 64 MiB (or 512 blobs)."""
    task: list[_Location] = []
    weight = 0
    for location in _locations(store, digests):
        size = location[3]
        if size < 0:
            with suppress(OSError):  # a missing blob is reported by the worker
                size = os.stat(location[1]).st_size  # noqa: PTH116 - hot loop over many files
        weight += max(size, 0)
        task.append(location)
        if weight >= _TASK_BYTES or len(task) >= _TASK_FILES:
            yield task
            task, weight = [], 0
    if task:
        yield task


def _rehash_local(
    store: LocalBlobStore, digests: Iterable[str] | None, workers: int
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


def _rehash_task(task: _Task) -> tuple[int, int, list[_Failure]]:
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
    wanted = None if digests is None else [check_sha256(d) for d in digests]
    count = workers if workers is not None else _default_workers()
    if isinstance(store, LocalBlobStore):
        blobs, total, failures = _rehash_local(store, wanted, count)
    else:
        everything = store.iter_hashes() if wanted is None else wanted
        blobs, total, failures = _rehash_store(store, everything, count)
    if failures:
        failures.sort(key=lambda f: f.sha256)
        first = failures[0]
        more = f" ({len(failures) - 1} more blobs fail)" if len(failures) > 1 else ""
        raise VerificationError(first.problem + more, subject=f"blob {first.sha256}")
    return RehashReport(blobs=blobs, bytes=total)
