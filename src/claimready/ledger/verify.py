"""Full verification of one tenant's log, from its published objects alone.

1. Verify the latest checkpoint's signature and origin; its size is N.
2. Read the hash tiles of level 1 and above; rebuild every level above the
   level-0 tiles and compare each stored tile with it.
3. In parallel over ranges of level-0 tiles (streaming: one tile at a time):
   re-hash every entry bundle, compare with the level-0 tile and with the
   level-1 hash above it; verify each kept checkpoint whose size ends in the
   range (signature, origin, root) and its RFC 9162 consistency proof from
   the checkpoint before it; compare leftover partial tiles and bundles.
4. Verify every RFC 3161 timestamp kept beside a checkpoint
   (``checkpoints/<size>.tsr``): its message imprint is the SHA-256 of that
   checkpoint note's bytes, the TSA certificate chains to a given trust
   anchor, and its genTime is not in the future.

Any failure raises VerificationError naming the entry index, object path or
checkpoint size.
"""

from __future__ import annotations

import bisect
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

from cryptography import x509

from claimready.errors import ClaimreadyError, InputError, StorageError, VerificationError
from claimready.ledger import merkle
from claimready.ledger.checkpoint import Checkpoint, open_checkpoint
from claimready.ledger.log import CHECKPOINT_PATH, checkpoint_path
from claimready.ledger.note import Verifier
from claimready.ledger.records import decode_record
from claimready.ledger.storage import FileStorage, Storage
from claimready.ledger.tiles import (
    TILE_HEIGHT,
    TILE_WIDTH,
    TileCache,
    bundle_leaf_hashes,
    decode_bundle,
    entries_path,
    subtree_root,
    tile_path,
    tile_width,
)
from claimready.ledger.timestamp import TIMESTAMP_SUFFIX, timestamp_path, verify_timestamp

__all__ = ["BlobCheck", "VerifyReport", "verify_log"]

BlobCheck = Callable[[dict[str, Any]], None]
"""Called with each decoded record; raises VerificationError if its blob is wrong."""

_RANGE_TILES = TILE_WIDTH
_HASH = merkle.HASH_SIZE


@dataclass(frozen=True)
class VerifyReport:
    """What a successful verification covered."""

    size: int
    root: bytes
    checkpoints: int
    tiles: int
    timestamps: int = 0


@dataclass(frozen=True)
class _Context:
    storage: Storage
    origin: str
    verifiers: tuple[Verifier, ...]
    size: int
    high: tuple[bytes, ...]
    checkpoint_sizes: tuple[int, ...]
    blob_check: BlobCheck | None


class _Reader:
    """Subtrees at level >= 8 from the rebuilt upper levels, below from level-0 tiles."""

    def __init__(self, context: _Context, cache: TileCache) -> None:
        self._high = context.high
        self._cache = cache
        self._size = context.size

    def subtree(self, level: int, index: int) -> bytes:
        if level >= TILE_HEIGHT:
            data = self._high[level - TILE_HEIGHT]
            start = index * _HASH
            if start + _HASH > len(data):
                raise IndexError(f"subtree ({level}, {index}) is not complete")
            return data[start : start + _HASH]
        tile = (index << level) >> TILE_HEIGHT
        levels = self._cache.levels(0, tile, tile_width(0, tile, self._size))
        start = (index - (tile << (TILE_HEIGHT - level))) * _HASH
        return levels[level][start : start + _HASH]


def _read(storage: Storage, path: str) -> bytes:
    data = storage.read(path)
    if data is None:
        raise VerificationError("missing", subject=path)
    return data


def _open_checkpoint(context: _Context, size: int) -> Checkpoint:
    path = checkpoint_path(size)
    try:
        checkpoint = open_checkpoint(
            _read(context.storage, path), verifiers=context.verifiers, origin=context.origin
        )
    except VerificationError as exc:
        raise VerificationError(exc.problem, subject=f"checkpoint {size} ({path})") from exc
    if checkpoint.size != size:
        raise VerificationError(
            f"names size {checkpoint.size}", subject=f"checkpoint {size} ({path})"
        )
    return checkpoint


def _check_prefixes(
    storage: Storage, full_path: str, data: bytes, unit: int | None, *, have: int
) -> None:
    """Every older partial version of an object must be a prefix of what was rebuilt.

    Partial objects wider than the verified tree (left by a crash before the
    checkpoint that needed them) cannot be judged and are skipped.
    """
    for path in storage.list(full_path + ".p"):
        width = int(path.rsplit("/", 1)[1])
        if width >= have:
            continue
        stored = _read(storage, path)
        if unit is not None:
            expected = data[: width * unit]
        else:
            expected = b"".join(len(e).to_bytes(2, "big") + e for e in decode_bundle(data)[:width])
        if stored != expected:
            raise VerificationError("differs from the rebuilt tree", subject=path)


def _mismatch(stored: bytes, rebuilt: bytes, width: int) -> int:
    """Position of the first hash where two tiles differ."""
    return next(
        (
            i
            for i in range(width)
            if stored[i * _HASH : (i + 1) * _HASH] != rebuilt[i * _HASH : (i + 1) * _HASH]
        ),
        width,
    )


def _verify_bundle(context: _Context, tile: int, cache: TileCache | None) -> None:
    """Re-hash one bundle and compare it with its level-0 tile and the level-1 hash above.

    The stored tile is compared with the rebuilt one in a single comparison;
    only on a mismatch is the first differing entry located.
    """
    storage, size = context.storage, context.size
    width = tile_width(0, tile, size)
    bundle_path = entries_path(tile, width)
    bundle = _read(storage, bundle_path)
    try:
        hashes = bundle_leaf_hashes(bundle)
    except ValueError as exc:
        raise VerificationError(str(exc), subject=bundle_path) from exc
    if len(hashes) != width * _HASH:
        raise VerificationError(
            f"holds {len(hashes) // _HASH} entries, expected {width}", subject=bundle_path
        )
    hash_path = tile_path(0, tile, width)
    stored = _read(storage, hash_path)
    if stored != hashes:
        pos = _mismatch(stored, hashes, width)
        raise VerificationError(
            f"does not match hash {pos} of {hash_path} (bundle {bundle_path})",
            subject=f"entry {tile * TILE_WIDTH + pos}",
        )
    if context.blob_check is not None:
        _check_blobs(context.blob_check, decode_bundle(bundle, path=bundle_path), tile * TILE_WIDTH)
    if width == TILE_WIDTH:
        above = context.high[0][tile * _HASH : (tile + 1) * _HASH]
        if subtree_root(hashes) != above:
            raise VerificationError(
                f"root of {hash_path} does not match hash {tile} at tree level 8",
                subject=tile_path(1, tile // TILE_WIDTH, tile_width(1, tile // TILE_WIDTH, size)),
            )
    if cache is not None:
        cache.put(0, tile, hashes)
    _check_prefixes(storage, tile_path(0, tile), hashes, _HASH, have=width)
    _check_prefixes(storage, entries_path(tile), bundle, None, have=width)


def _check_blobs(blob_check: BlobCheck, entries: Sequence[bytes], first: int) -> None:
    for offset, entry in enumerate(entries):
        try:
            blob_check(decode_record(entry))
        except InputError as exc:
            raise VerificationError(exc.message, subject=f"entry {first + offset}") from exc
        except VerificationError as exc:
            raise VerificationError(exc.message, subject=f"entry {first + offset}") from exc


def _verify_checkpoints(context: _Context, tile: int, reader: _Reader) -> int:
    """Checkpoints whose size ends in this tile: signature, root, consistency."""
    sizes = context.checkpoint_sizes
    lo, hi = tile * TILE_WIDTH + 1, (tile + 1) * TILE_WIDTH
    done = 0
    for position in _positions(sizes, lo, hi):
        size = sizes[position]
        checkpoint = _open_checkpoint(context, size)
        root = merkle.root_hash(size, reader)
        if checkpoint.root != root:
            raise VerificationError(
                "root does not match the rebuilt tree", subject=f"checkpoint {size}"
            )
        if position:
            old = sizes[position - 1]
            proof = merkle.consistency_proof(old, size, reader)
            try:
                merkle.verify_consistency(
                    old_size=old,
                    new_size=size,
                    proof=proof,
                    old_root=merkle.root_hash(old, reader),
                    new_root=checkpoint.root,
                )
            except VerificationError as exc:
                raise VerificationError(
                    exc.problem, subject=f"checkpoints {old} -> {size}"
                ) from exc
        done += 1
    return done


def _positions(sizes: Sequence[int], lo: int, hi: int) -> Iterator[int]:
    start = bisect.bisect_left(sizes, lo)
    stop = bisect.bisect_right(sizes, hi)
    return iter(range(start, stop))


_WORKER_CONTEXT: _Context | None = None


def _init_worker(context: _Context) -> None:
    global _WORKER_CONTEXT
    _WORKER_CONTEXT = context


def _has_checkpoint(sizes: Sequence[int], tile: int) -> bool:
    position = bisect.bisect_left(sizes, tile * TILE_WIDTH + 1)
    return position < len(sizes) and sizes[position] <= (tile + 1) * TILE_WIDTH


def _verify_tiles(context: _Context, bounds: tuple[int, int]) -> None:
    """Verify level-0 tiles ``[start, stop)`` and the checkpoints ending in them."""
    cache = TileCache(context.storage, limit=8)
    reader = _Reader(context, cache)
    sizes = context.checkpoint_sizes
    for tile in range(*bounds):
        with_checkpoint = _has_checkpoint(sizes, tile)
        _verify_bundle(context, tile, cache if with_checkpoint else None)
        if with_checkpoint:
            _verify_checkpoints(context, tile, reader)


def _verify_range(bounds: tuple[int, int]) -> tuple[int, str, str | None] | None:
    """Worker: verify level-0 tiles ``[start, stop)``; return an error, not raise it."""
    context = _WORKER_CONTEXT
    if context is None:
        return bounds[0], "verification worker has no context", None
    try:
        _verify_tiles(context, bounds)
    except VerificationError as exc:
        return bounds[0], exc.problem, exc.subject
    except ClaimreadyError as exc:
        return bounds[0], exc.message, None
    return None


def _rebuild_high(context_storage: Storage, size: int) -> list[bytes]:
    """Levels 8, 9, ... of the tree from the level-1 tiles, checking tiles of level 2 and up."""
    count = size >> TILE_HEIGHT
    level8 = b"".join(
        _read(context_storage, tile_path(1, index, tile_width(1, index, size)))[
            : tile_width(1, index, size) * _HASH
        ]
        for index in range((count + TILE_WIDTH - 1) // TILE_WIDTH)
    )
    if len(level8) != count * _HASH:
        raise VerificationError("level 1 tiles are short", subject="tile/1")
    for index in range((count + TILE_WIDTH - 1) // TILE_WIDTH):
        tile = level8[index * TILE_WIDTH * _HASH : (index + 1) * TILE_WIDTH * _HASH]
        _check_prefixes(context_storage, tile_path(1, index), tile, _HASH, have=len(tile) // _HASH)
    high = [level8]
    while len(high[-1]) >= 2 * _HASH:
        below = high[-1]
        high.append(
            b"".join(
                merkle.node_hash(below[i : i + _HASH], below[i + _HASH : i + 2 * _HASH])
                for i in range(0, len(below) - _HASH, 2 * _HASH)
            )
        )
    _check_high_tiles(context_storage, size, high)
    return high


def _check_high_tiles(storage: Storage, size: int, high: list[bytes]) -> None:
    level = 2
    while size >> (TILE_HEIGHT * level):
        rebuilt = high[TILE_HEIGHT * (level - 1)]
        count = size >> (TILE_HEIGHT * level)
        for index in range((count + TILE_WIDTH - 1) // TILE_WIDTH):
            width = tile_width(level, index, size)
            path = tile_path(level, index, width)
            expected = rebuilt[index * TILE_WIDTH * _HASH : (index * TILE_WIDTH + width) * _HASH]
            if _read(storage, path) != expected:
                raise VerificationError("differs from the rebuilt tree", subject=path)
            _check_prefixes(storage, tile_path(level, index), expected, _HASH, have=width)
        level += 1


def _checkpoint_sizes(storage: Storage) -> tuple[list[int], list[int]]:
    """Sizes of the kept checkpoints, and of the timestamps kept beside them."""
    sizes: list[int] = []
    stamped: list[int] = []
    for path in storage.list("checkpoints"):
        name = path.rsplit("/", 1)[1]
        found = sizes
        if name.endswith(TIMESTAMP_SUFFIX):
            name, found = name.removesuffix(TIMESTAMP_SUFFIX), stamped
        if not name.isdigit():
            raise VerificationError("is not named by a tree size", subject=path)
        found.append(int(name))
    return sorted(sizes), sorted(stamped)


@dataclass(frozen=True)
class _Anchors:
    roots: tuple[x509.Certificate, ...]
    intermediates: tuple[x509.Certificate, ...]
    required: bool


def _verify_timestamps(
    storage: Storage, sizes: Sequence[int], stamped: Sequence[int], anchors: _Anchors
) -> int:
    """Step 4: every kept timestamp; with ``required``, one for every checkpoint."""
    have = set(sizes)
    for size in stamped:
        path = timestamp_path(size)
        if size not in have:
            raise VerificationError("has no checkpoint beside it", subject=path)
        if not anchors.roots:
            raise VerificationError(
                "cannot be checked: no timestamp trust anchor was given", subject=path
            )
        verify_timestamp(
            _read(storage, path),
            _read(storage, checkpoint_path(size)),
            roots=anchors.roots,
            intermediates=anchors.intermediates,
            subject=path,
        )
    if anchors.required:
        missing = sorted(have - set(stamped))
        if missing:
            raise VerificationError(
                f"has no timestamp ({len(missing)} checkpoints have none)",
                subject=f"checkpoint {missing[0]}",
            )
    return len(stamped)


def verify_log(
    *,
    storage: Storage,
    origin: str,
    verifiers: Sequence[Verifier],
    blob_check: BlobCheck | None = None,
    workers: int | None = None,
    timestamp_roots: Sequence[x509.Certificate] = (),
    timestamp_intermediates: Sequence[x509.Certificate] = (),
    require_timestamps: bool = False,
) -> VerifyReport:
    """Verify a whole log; return what was covered or raise VerificationError.

    ``blob_check`` is called with every decoded record (in this process, in
    index order), so the caller can re-hash evidence blobs. Timestamps kept
    beside checkpoints are checked against ``timestamp_roots`` (the TSA's
    trust anchors, reached through ``timestamp_intermediates``); a timestamp
    present when no anchor is given fails verification. With
    ``require_timestamps`` every checkpoint up to the latest must have one.
    """
    latest_note = _read(storage, CHECKPOINT_PATH)
    try:
        latest = open_checkpoint(latest_note, verifiers=verifiers, origin=origin)
    except VerificationError as exc:
        raise VerificationError(exc.problem, subject=CHECKPOINT_PATH) from exc
    size = latest.size
    all_sizes, all_stamped = _checkpoint_sizes(storage)
    sizes = [s for s in all_sizes if s <= size]
    stamped = [s for s in all_stamped if s <= size]
    if storage.read(checkpoint_path(size)) != latest_note:
        raise VerificationError(f"differs from {checkpoint_path(size)}", subject=CHECKPOINT_PATH)
    context = _Context(
        storage=storage,
        origin=origin,
        verifiers=tuple(verifiers),
        size=size,
        high=tuple(_rebuild_high(storage, size)),
        checkpoint_sizes=tuple(sizes),
        blob_check=blob_check,
    )
    if sizes and sizes[0] == 0 and _open_checkpoint(context, 0).root != merkle.EMPTY_ROOT:
        raise VerificationError("is not the empty tree", subject="checkpoint 0")
    tiles = (size + TILE_WIDTH - 1) // TILE_WIDTH
    _run_ranges(context, tiles, workers)
    root = merkle.root_hash(size, _Reader(context, TileCache(storage, limit=4)))
    if root != latest.root:
        raise VerificationError("root does not match the rebuilt tree", subject=CHECKPOINT_PATH)
    anchors = _Anchors(
        tuple(timestamp_roots), tuple(timestamp_intermediates), required=require_timestamps
    )
    timestamps = _verify_timestamps(storage, sizes, stamped, anchors)
    return VerifyReport(
        size=size, root=root, checkpoints=len(sizes), tiles=tiles, timestamps=timestamps
    )


def _default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - platforms without affinity
        return os.cpu_count() or 1


def _run_ranges(context: _Context, tiles: int, workers: int | None) -> None:
    """Verify every level-0 tile, in ranges of one level-1 tile (65,536 entries) each.

    Ranges run in worker processes when the objects are local files (hashing
    is CPU-bound), in threads for other storage (reads are latency-bound and
    a storage client is not safe to share across a fork), and in this
    process when ``blob_check`` is given or there is only one range.
    """
    ranges = [(a, min(a + _RANGE_TILES, tiles)) for a in range(0, tiles, _RANGE_TILES)]
    count = min(workers if workers is not None else _default_workers(), len(ranges))
    if context.blob_check is not None or count <= 1:
        for bounds in ranges:
            _verify_tiles(context, bounds)
        return
    if not isinstance(context.storage, FileStorage):
        with ThreadPoolExecutor(count) as threads:
            for _ in threads.map(partial(_verify_tiles, context), ranges):
                pass
        return
    pool = multiprocessing.get_context("fork").Pool(
        count, initializer=_init_worker, initargs=(context,)
    )
    try:
        _raise_first(pool.imap_unordered(_verify_range, ranges))
    finally:
        pool.terminate()
        pool.join()


def _raise_first(results: Iterator[tuple[int, str, str | None] | None]) -> None:
    for result in results:
        if result is not None:
            _start, problem, subject = result
            if subject is None:
                raise StorageError(problem)
            raise VerificationError(problem, subject=subject)
