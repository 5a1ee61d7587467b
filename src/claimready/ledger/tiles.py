"""C2SP tlog-tiles: tile paths, entry bundles and a hash reader over tiles.

Tiles have height 8: a full tile holds 256 hashes. Level 0 tiles hold leaf
hashes; each hash in a level ``L`` tile is the root of a full tile at level
``L - 1``.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol

from claimready.errors import InputError, StorageError, VerificationError
from claimready.ledger import merkle
from claimready.ledger.merkle import HASH_SIZE, LEAF_HASH_PREFIX

__all__ = [
    "MAX_ENTRY_SIZE",
    "TILE_BYTES",
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "TileCache",
    "TileHashReader",
    "bundle_leaf_hashes",
    "decode_bundle",
    "encode_bundle",
    "encode_index",
    "entries_path",
    "expand_tile",
    "subtree_root",
    "tile_path",
    "tile_width",
]

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
TILE_BYTES = TILE_WIDTH * HASH_SIZE
MAX_ENTRY_SIZE = 0xFFFF
"""Entry bundles length-prefix each entry with a big-endian uint16."""

_LEAF = bytes([LEAF_HASH_PREFIX])
_sha256 = hashlib.sha256


class ObjectReader(Protocol):
    """The read side of :class:`claimready.ledger.storage.Storage`."""

    def read(self, path: str) -> bytes | None:
        """Return the object's bytes, or None if it does not exist."""
        ...


def encode_index(index: int) -> str:
    """Encode a tile index as zero-padded 3-digit path elements (``x001/x234/067``)."""
    if index < 0:
        raise ValueError(f"negative tile index {index}")
    groups = [f"{index % 1000:03d}"]
    index //= 1000
    while index:
        groups.append(f"x{index % 1000:03d}")
        index //= 1000
    return "/".join(reversed(groups))


def _suffix(width: int) -> str:
    if not 1 <= width <= TILE_WIDTH:
        raise ValueError(f"tile width {width} is not between 1 and {TILE_WIDTH}")
    return "" if width == TILE_WIDTH else f".p/{width}"


def tile_path(level: int, index: int, width: int = TILE_WIDTH) -> str:
    """Path of a hash tile: ``tile/<L>/<N>[.p/<W>]``."""
    if not 0 <= level <= 63:
        raise ValueError(f"tile level {level} is not between 0 and 63")
    return f"tile/{level}/{encode_index(index)}{_suffix(width)}"


def entries_path(index: int, width: int = TILE_WIDTH) -> str:
    """Path of an entry bundle: ``tile/entries/<N>[.p/<W>]``."""
    return f"tile/entries/{encode_index(index)}{_suffix(width)}"


def tile_width(level: int, index: int, size: int) -> int:
    """Number of hashes tile ``(level, index)`` holds in a tree of ``size`` leaves (0 if none)."""
    count = size >> (TILE_HEIGHT * level)
    return max(0, min(TILE_WIDTH, count - index * TILE_WIDTH))


def encode_bundle(entries: Iterable[bytes]) -> bytes:
    """Concatenate entries, each prefixed with its big-endian uint16 length."""
    out = bytearray()
    for entry in entries:
        if len(entry) > MAX_ENTRY_SIZE:
            raise InputError(f"entry is {len(entry)} bytes; at most {MAX_ENTRY_SIZE} fit a bundle")
        out += len(entry).to_bytes(2, "big")
        out += entry
    return bytes(out)


def iter_bundle(data: bytes) -> Iterator[bytes]:
    """Yield the entries of a bundle; raise ValueError on a truncated entry."""
    pos, end = 0, len(data)
    while pos < end:
        if pos + 2 > end:
            raise ValueError(f"truncated length prefix at byte {pos}")
        length = (data[pos] << 8) | data[pos + 1]
        pos += 2
        if pos + length > end:
            raise ValueError(f"entry at byte {pos - 2} runs past the end of the bundle")
        yield data[pos : pos + length]
        pos += length


def decode_bundle(data: bytes, *, path: str = "entry bundle") -> list[bytes]:
    """Split a bundle into entries; raise VerificationError naming ``path`` if malformed."""
    try:
        return list(iter_bundle(data))
    except ValueError as exc:
        raise VerificationError(str(exc), subject=path) from exc


def bundle_leaf_hashes(data: bytes) -> bytes:
    """RFC 9162 leaf hashes of every entry of a bundle, concatenated, in one pass.

    Equivalent to ``leaf_hashes(list(iter_bundle(data)))`` without
    materialising the entries (this is the inner loop of full verification).
    Raises ValueError on a truncated entry.
    """
    if merkle.NATIVE is not None:
        hashes: bytes = merkle.NATIVE.bundle_leaf_hashes(data)
        return hashes
    sha256, prefix = _sha256, _LEAF
    out: list[bytes] = []
    append = out.append
    pos, end = 0, len(data)
    try:
        while pos < end:
            start = pos + 2
            pos = start + ((data[pos] << 8) | data[pos + 1])
            append(sha256(prefix + data[start:pos]).digest())
    except IndexError:
        raise ValueError(f"truncated length prefix at byte {end - 1}") from None
    if pos > end:
        raise ValueError(f"entry at byte {start - 2} runs past the end of the bundle")
    return b"".join(out)


def subtree_root(hashes: bytes) -> bytes:
    """Root of the complete subtree over a power-of-two number of concatenated hashes."""
    count, rest = divmod(len(hashes), HASH_SIZE)
    if rest or count == 0 or count & (count - 1):
        raise ValueError(f"{len(hashes)} bytes of hashes do not form a complete subtree")
    while len(hashes) > HASH_SIZE:
        hashes = merkle.node_hashes(hashes)
    return hashes


def expand_tile(hashes: bytes) -> list[bytes]:
    """All levels of the subtree a tile spans: ``[level0, level1, ...]``.

    Level ``r`` holds the hashes of the complete subtrees of height ``r`` over
    the tile's hashes (for a partial tile, only the complete ones).
    """
    levels = [hashes]
    current = hashes
    while len(current) >= 2 * HASH_SIZE:
        current = merkle.node_hashes(current[: len(current) // (2 * HASH_SIZE) * 2 * HASH_SIZE])
        levels.append(current)
    return levels


def tile_root(hashes: bytes) -> bytes:
    """Root of a full tile (the hash it contributes to the level above)."""
    if len(hashes) != TILE_BYTES:
        raise ValueError("only a full tile has a root")
    return expand_tile(hashes)[-1]


class TileCache:
    """Expanded tiles (all inner levels hashed) read from a store, kept in an LRU."""

    def __init__(self, store: ObjectReader, *, limit: int = 256) -> None:
        self.store = store
        self._cache: OrderedDict[tuple[int, int, int], list[bytes]] = OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()

    def put(self, level: int, index: int, hashes: bytes) -> list[bytes]:
        """Seed the cache with a tile's hashes (e.g. just written by the log); return its levels."""
        levels = expand_tile(hashes)
        self._remember((level, index, len(hashes) // HASH_SIZE), levels)
        return levels

    def _remember(self, key: tuple[int, int, int], levels: list[bytes]) -> None:
        with self._lock:
            self._cache[key] = levels
            self._cache.move_to_end(key)
            while len(self._cache) > self._limit:
                self._cache.popitem(last=False)

    def levels(self, level: int, index: int, width: int) -> list[bytes]:
        """The expanded tile ``(level, index)`` at ``width`` hashes."""
        key = (level, index, width)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        full = self._cache.get((level, index, TILE_WIDTH))
        if full is not None:
            levels = expand_tile(full[0][: width * HASH_SIZE])
        else:
            levels = expand_tile(self._read(level, index, width))
        self._remember(key, levels)
        return levels

    def _read(self, level: int, index: int, width: int) -> bytes:
        path = tile_path(level, index, width)
        data = self.store.read(path)
        if data is None and width < TILE_WIDTH:
            data = self.store.read(tile_path(level, index))
        if data is None:
            raise StorageError(f"{path}: tile is missing")
        if len(data) < width * HASH_SIZE or len(data) % HASH_SIZE:
            raise VerificationError(f"tile holds {len(data)} bytes", subject=path)
        return data[: width * HASH_SIZE]


class TileHashReader:
    """A :class:`~claimready.ledger.merkle.HashReader` over stored tiles at one tree size."""

    def __init__(self, cache: TileCache, size: int) -> None:
        self._cache = cache
        self.size = size

    def subtree(self, level: int, index: int) -> bytes:
        """Hash of the complete subtree ``(level, index)``."""
        tile_level, sub = divmod(level, TILE_HEIGHT)
        tile_index = (index << sub) >> TILE_HEIGHT
        width = tile_width(tile_level, tile_index, self.size)
        if width == 0:
            raise IndexError(f"subtree ({level}, {index}) is beyond size {self.size}")
        levels = self._cache.levels(tile_level, tile_index, width)
        start = (index - (tile_index << (TILE_HEIGHT - sub))) * HASH_SIZE
        data = levels[sub] if sub < len(levels) else b""
        if start + HASH_SIZE > len(data):
            raise IndexError(f"subtree ({level}, {index}) is not complete at size {self.size}")
        return data[start : start + HASH_SIZE]


def join_hashes(hashes: Sequence[bytes]) -> bytes:
    """Concatenate hashes into tile bytes."""
    return b"".join(hashes)
