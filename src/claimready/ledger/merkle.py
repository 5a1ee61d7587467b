"""RFC 9162 (RFC 6962) Merkle tree hashing, inclusion and consistency proofs.

Pure functions. Proof generation reads stored hashes of complete subtrees
through a :class:`HashReader` (tiles on storage, or :class:`LevelStore` in
memory) and never touches leaves. Verification functions return ``None`` and
raise :class:`~claimready.errors.VerificationError`.

Node addressing: ``(level, index)`` names the complete subtree over leaves
``[index * 2**level, (index + 1) * 2**level)``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol

from claimready.errors import VerificationError
from claimready.native import optional_module

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "LEAF_HASH_PREFIX",
    "NODE_HASH_PREFIX",
    "HashReader",
    "LevelStore",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "leaf_hashes",
    "node_hash",
    "node_hashes",
    "range_hash",
    "root_hash",
    "tree_hash",
    "verify_consistency",
    "verify_inclusion",
]

LEAF_HASH_PREFIX = 0
NODE_HASH_PREFIX = 1
HASH_SIZE = 32

_LEAF = bytes([LEAF_HASH_PREFIX])
_NODE = bytes([NODE_HASH_PREFIX])
_sha256 = hashlib.sha256

EMPTY_ROOT = _sha256(b"").digest()
"""MTH({}) = SHA-256() (RFC 9162 §2.1.1)."""


def leaf_hash(entry: bytes) -> bytes:
    """MTH({d(0)}) = SHA-256(0x00 || d(0))."""
    return _sha256(_LEAF + entry).digest()


#: ``claimready.ledger._treehash``, or None where it was not built (it needs a C
#: compiler and OpenSSL's headers): the same hashes then come from :mod:`hashlib`.
NATIVE = optional_module("claimready.ledger._treehash")


def leaf_hashes(entries: Sequence[bytes]) -> bytes:
    """The leaf hashes of ``entries``, concatenated (32 bytes each)."""
    if NATIVE is not None:
        hashes: bytes = NATIVE.leaf_hashes(entries)
        return hashes
    sha256, prefix = _sha256, _LEAF
    return b"".join([sha256(prefix + entry).digest() for entry in entries])


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right)."""
    return _sha256(_NODE + left + right).digest()


def node_hashes(hashes: bytes) -> bytes:
    """:func:`node_hash` of each pair of concatenated hashes, concatenated (the level above)."""
    if len(hashes) % (2 * HASH_SIZE):
        raise ValueError(f"{len(hashes)} bytes are not pairs of hashes")
    if NATIVE is not None:
        above: bytes = NATIVE.node_hashes(hashes)
        return above
    sha256, prefix, pair = _sha256, _NODE, 2 * HASH_SIZE
    return b"".join(
        [sha256(prefix + hashes[i : i + pair]).digest() for i in range(0, len(hashes), pair)]
    )


class HashReader(Protocol):
    """Source of stored hashes of complete subtrees."""

    def subtree(self, level: int, index: int) -> bytes:
        """Hash of the complete subtree ``(level, index)``."""
        ...


def tree_hash(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH over a list of leaf hashes, computed directly (reference, O(n) memory)."""
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT
    level = list(leaf_hashes)
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def range_hash(start: int, end: int, reader: HashReader) -> bytes:
    """MTH(D[start:end]) for a range whose start is aligned to the subtree it spans.

    The range is cut into the largest aligned complete subtrees, left to right,
    which are then folded from the right as RFC 9162 §2.1.1 does.
    """
    if end <= start:
        raise ValueError(f"empty range [{start}, {end})")
    parts: list[bytes] = []
    pos = start
    while pos < end:
        level = (end - pos).bit_length() - 1
        if pos:
            level = min(level, (pos & -pos).bit_length() - 1)
        parts.append(reader.subtree(level, pos >> level))
        pos += 1 << level
    acc = parts[-1]
    for part in reversed(parts[:-1]):
        acc = _sha256(_NODE + part + acc).digest()
    return acc


def root_hash(size: int, reader: HashReader) -> bytes:
    """MTH(D[0:size]) from stored subtree hashes."""
    return EMPTY_ROOT if size == 0 else range_hash(0, size, reader)


def inclusion_proof(index: int, size: int, reader: HashReader) -> list[bytes]:
    """PATH(index, D[size]) (RFC 9162 §2.1.3.1), leaf sibling first."""
    if not 0 <= index < size:
        raise ValueError(f"index {index} is outside a tree of size {size}")
    # 1. Below the level where the paths to `index` and `size - 1` meet, every
    #    sibling is complete, except possibly the highest one, on the right border.
    inner = (index ^ (size - 1)).bit_length()
    read = reader.subtree
    proof = [read(level, (index >> level) ^ 1) for level in range(inner - 1)]
    if inner:
        start = ((index >> (inner - 1)) ^ 1) << (inner - 1)
        if start + (1 << (inner - 1)) <= size:
            proof.append(read(inner - 1, start >> (inner - 1)))
        else:
            proof.append(range_hash(start, size, reader))
    # 2. Above it, the path runs along the right border: only left siblings.
    level, i = inner, index >> inner
    while i:
        if i & 1:
            proof.append(read(level, i - 1))
        level += 1
        i >>= 1
    return proof


def consistency_proof(old_size: int, new_size: int, reader: HashReader) -> list[bytes]:
    """PROOF(old_size, D[new_size]) (RFC 9162 §2.1.4.1)."""
    if not 0 <= old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to {new_size}")
    if old_size in (0, new_size):
        return []
    # SUBPROOF(m, D[start:start+n], b), unrolled; hashes are collected
    # root-side first and reversed at the end.
    tail: list[bytes] = []
    m, start, n, complete = old_size, 0, new_size, True
    while m != n:
        k = 1 << ((n - 1).bit_length() - 1)
        if m <= k:
            tail.append(range_hash(start + k, start + n, reader))
            n = k
        else:
            tail.append(reader.subtree(k.bit_length() - 1, start // k))
            m, start, n, complete = m - k, start + k, n - k, False
    if not complete:
        # SUBPROOF(m, D[m], false) = {MTH(D[m])}; D[m] here is a complete subtree.
        tail.append(reader.subtree(m.bit_length() - 1, start // m))
    tail.reverse()
    return tail


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise VerificationError(f"{what} is {len(value)} bytes, expected {HASH_SIZE}")


def verify_inclusion(
    *, index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Verify an inclusion proof (RFC 9162 §2.1.3.2) for the leaf hash ``leaf``."""
    if not 0 <= index < size:
        raise VerificationError(f"index {index} is outside a tree of size {size}")
    _check_hash(leaf, "leaf hash")
    _check_hash(root, "root hash")
    # 1. Set fn to leaf_index and sn to tree_size - 1.
    fn, sn = index, size - 1
    # 2. Set r to hash.
    r = leaf
    # 3. For each value p in the inclusion_path array:
    for p in proof:
        # a. If sn is 0, then stop the iteration and fail the proof verification.
        if sn == 0 or len(p) != HASH_SIZE:
            raise VerificationError("inclusion proof is longer than the path to the root")
        # b. If LSB(fn) is set, or if fn is equal to sn, then:
        if fn & 1 or fn == sn:
            r = _sha256(_NODE + p + r).digest()
            # 2. If LSB(fn) is not set, right-shift fn and sn until either
            #    LSB(fn) is set or fn is 0.
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        # Otherwise: set r to HASH(0x01 || r || p).
        else:
            r = _sha256(_NODE + r + p).digest()
        # c. Finally, right-shift both fn and sn one time.
        fn >>= 1
        sn >>= 1
    # 4. Compare sn to 0. Compare r against the root hash.
    if sn != 0:
        raise VerificationError("inclusion proof is shorter than the path to the root")
    if r != root:
        raise VerificationError(f"inclusion proof leads to root {r.hex()}, expected {root.hex()}")


def _fold_consistency(old_size: int, new_size: int, path: list[bytes]) -> tuple[bytes, bytes, int]:
    """Steps 3-6 of RFC 9162 §2.1.4.2: the two roots a consistency path leads to."""
    # 3. Set fn to first - 1 and sn to second - 1.
    fn, sn = old_size - 1, new_size - 1
    # 4. If LSB(fn) is set, then right-shift both fn and sn equally until LSB(fn) is not set.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5. Set both fr and sr to the first value in the consistency_path array.
    fr = sr = path[0]
    # 6. For each subsequent value c in the consistency_path array:
    for c in path[1:]:
        # a. If sn is 0, then stop the iteration and fail the proof verification.
        if sn == 0:
            raise VerificationError("consistency proof is longer than expected")
        # b. If LSB(fn) is set, or if fn is equal to sn, then:
        if fn & 1 or fn == sn:
            fr = _sha256(_NODE + c + fr).digest()
            sr = _sha256(_NODE + c + sr).digest()
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        # Otherwise: set sr to HASH(0x01 || sr || c).
        else:
            sr = _sha256(_NODE + sr + c).digest()
        # c. Finally, right-shift both fn and sn one time.
        fn >>= 1
        sn >>= 1
    return fr, sr, sn


def verify_consistency(
    *, old_size: int, new_size: int, proof: Sequence[bytes], old_root: bytes, new_root: bytes
) -> None:
    """Verify a consistency proof (RFC 9162 §2.1.4.2) between two tree heads."""
    if not 0 <= old_size <= new_size:
        raise VerificationError(f"size {new_size} is older than size {old_size}")
    if old_size == new_size or old_size == 0:
        if proof:
            raise VerificationError("a consistency proof for these sizes must be empty")
        if old_size == new_size and old_root != new_root:
            raise VerificationError(f"two different roots for size {old_size}")
        return
    # 1. If consistency_path is an empty array, stop and fail the verification.
    if not proof or any(len(p) != HASH_SIZE for p in proof):
        raise VerificationError("consistency proof is empty or malformed")
    path = list(proof)
    # 2. If first is an exact power of 2, then prepend first_hash to the path.
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fr, sr, sn = _fold_consistency(old_size, new_size, path)
    # 7. Verify fr == first_hash, sr == second_hash and sn == 0.
    if sn != 0:
        raise VerificationError("consistency proof is shorter than expected")
    if fr != old_root:
        raise VerificationError(f"consistency proof does not lead to the size {old_size} root")
    if sr != new_root:
        raise VerificationError(f"consistency proof does not lead to the size {new_size} root")


class LevelStore:
    """In-memory store of every complete subtree hash, one byte array per level.

    Appending a leaf costs one hash per completed parent (one on average);
    ``subtree`` is a slice. Memory is about 64 bytes per leaf.
    """

    def __init__(self) -> None:
        self._levels: list[bytearray] = [bytearray()]
        self.size = 0

    def append(self, leaf: bytes) -> None:
        """Append one leaf hash and every subtree it completes."""
        levels = self._levels
        levels[0] += leaf
        n, level, node = self.size, 0, leaf
        while n & 1:
            below = levels[level]
            node = _sha256(_NODE + below[-64:-32] + node).digest()
            level += 1
            n >>= 1
            if level == len(levels):
                levels.append(bytearray())
            levels[level] += node
        self.size += 1

    def extend(self, leaves: Sequence[bytes]) -> None:
        """Append several leaf hashes, hashing each level's new parents in one pass."""
        if any(len(leaf) != HASH_SIZE for leaf in leaves):
            raise ValueError(f"leaf hashes must be {HASH_SIZE} bytes")
        levels, sha256, node = self._levels, _sha256, _NODE
        current = list(leaves)
        levels[0] += b"".join(current)
        level = 0
        while True:
            below = levels[level]
            if level + 1 == len(levels):
                levels.append(bytearray())
            above = levels[level + 1]
            first, stop = len(above) // HASH_SIZE, len(below) // (2 * HASH_SIZE)
            if first == stop:
                break
            # New parents pair hashes from index 2 * first; at most one of
            # those was stored before this call (a left sibling left waiting).
            known = len(below) // HASH_SIZE - len(current)
            if 2 * first < known:
                current.insert(0, bytes(below[2 * first * HASH_SIZE : known * HASH_SIZE]))
            paired = 2 * (stop - first)
            current = [
                sha256(node + left + right).digest()
                for left, right in zip(current[0:paired:2], current[1:paired:2], strict=True)
            ]
            above += b"".join(current)
            level += 1
        self.size += len(leaves)

    def subtree(self, level: int, index: int) -> bytes:
        """Hash of the complete subtree ``(level, index)``."""
        start = index * HASH_SIZE
        value = bytes(self._levels[level][start : start + HASH_SIZE])
        if len(value) != HASH_SIZE:
            raise IndexError(f"subtree ({level}, {index}) is not complete")
        return value

    def root(self, size: int | None = None) -> bytes:
        """MTH of the first ``size`` leaves (all of them by default)."""
        return root_hash(self.size if size is None else size, self)
