"""RFC 6962 reference vectors, Hypothesis properties and interop for the Merkle core."""

from __future__ import annotations

import types
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sigstore._internal import merkle as sigstore_merkle

from claimready.errors import VerificationError
from claimready.ledger import merkle

# The 8-leaf tree of the Certificate Transparency / trillian reference tests.
LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
)]  # fmt: skip
ROOTS = [bytes.fromhex(h) for h in (
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
)]  # fmt: skip


def h(text: str) -> bytes:
    return bytes.fromhex(text)


# (0-based leaf index, tree size, proof)
INCLUSION = [
    (0, 8, [h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")]),
    (5, 8, [h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")]),
    (2, 3, [h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")]),
    (1, 5, [h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b")]),
    (0, 1, []),
]  # fmt: skip

CONSISTENCY = [
    (1, 1, []),
    (1, 8, [h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")]),
    (6, 8, [h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")]),
    (2, 5, [h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b")]),
    (6, 7, [h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")]),
]  # fmt: skip


def store_of(leaves: list[bytes]) -> merkle.LevelStore:
    store = merkle.LevelStore()
    store.extend([merkle.leaf_hash(leaf) for leaf in leaves])
    return store


def test_empty_root_is_sha256_of_nothing() -> None:
    assert merkle.EMPTY_ROOT.hex() == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    assert merkle.root_hash(0, merkle.LevelStore()) == merkle.EMPTY_ROOT


@pytest.mark.parametrize("size", range(1, 9))
def test_reference_roots(size: int) -> None:
    store = store_of(LEAVES)
    assert store.root(size) == ROOTS[size - 1]
    assert merkle.tree_hash([merkle.leaf_hash(x) for x in LEAVES[:size]]) == ROOTS[size - 1]


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION)
def test_reference_inclusion(index: int, size: int, proof: list[bytes]) -> None:
    store = store_of(LEAVES)
    assert merkle.inclusion_proof(index, size, store) == proof
    leaf = merkle.leaf_hash(LEAVES[index])
    merkle.verify_inclusion(index=index, size=size, leaf=leaf, proof=proof, root=ROOTS[size - 1])


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY)
def test_reference_consistency(old: int, new: int, proof: list[bytes]) -> None:
    store = store_of(LEAVES)
    assert merkle.consistency_proof(old, new, store) == proof
    merkle.verify_consistency(
        old_size=old, new_size=new, proof=proof, old_root=ROOTS[old - 1], new_root=ROOTS[new - 1]
    )


def _inclusion_probes(index: int, size: int, proof: list[bytes], root: bytes) -> list[Any]:
    some = h("abacaba000000000000000000000000000000000000000000060061e00123456")
    probes: list[Any] = [
        (index + 1, size, proof, root), (index ^ 2, size, proof, root),
        (index, size * 2, proof, root), (index, size // 2, proof, root),
        (index, size, proof, merkle.EMPTY_ROOT), (index, size, proof, some),
        (index, size, [*proof, root], root), (index, size, [root, *proof], root),
    ]  # fmt: skip
    if index:
        probes.append((index - 1, size, proof, root))
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = bytes([bad[i][0] ^ 8]) + bad[i][1:]
        probes.append((index, size, bad, root))
    if proof:
        probes.append((index, size, proof[:-1], root))
    return probes


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION[:4])
def test_corrupted_inclusion_proofs_are_rejected(index: int, size: int, proof: list[bytes]) -> None:
    leaf = merkle.leaf_hash(LEAVES[index])
    for probe_index, probe_size, probe_proof, probe_root in _inclusion_probes(
        index, size, proof, ROOTS[size - 1]
    ):
        with pytest.raises(VerificationError):
            merkle.verify_inclusion(
                index=probe_index, size=probe_size, leaf=leaf, proof=probe_proof, root=probe_root
            )


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY[1:])
def test_corrupted_consistency_proofs_are_rejected(old: int, new: int, proof: list[bytes]) -> None:
    r1, r2 = ROOTS[old - 1], ROOTS[new - 1]
    probes = [
        (old - 1, new, proof, r1, r2), (old + 1, new, proof, r1, r2),
        (old ^ 2, new, proof, r1, r2), (old, new * 2, proof, r1, r2),
        (old, new // 2, proof, r1, r2), (old, new, proof, r2, r1),
        (old, new, [], r1, r2), (old, new, [*proof, r1], r1, r2),
        (old, new, [r2, *proof], r1, r2), (old, new, proof[:-1], r1, r2),
    ]  # fmt: skip
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = bytes([bad[i][0] ^ 16]) + bad[i][1:]
        probes.append((old, new, bad, r1, r2))
    for p_old, p_new, p_proof, p_r1, p_r2 in probes:
        if p_old == 0 and not p_proof:
            continue  # from the empty tree any proofless claim is consistent
        with pytest.raises(VerificationError):
            merkle.verify_consistency(
                old_size=p_old, new_size=p_new, proof=p_proof, old_root=p_r1, new_root=p_r2
            )


def _reference_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) straight from the RFC's recursive definition."""
    n = len(leaves)
    if n == 1:
        return []
    k = 1 << ((n - 1).bit_length() - 1)
    if m < k:
        return [*_reference_path(m, leaves[:k]), merkle.tree_hash(leaves[k:])]
    return [*_reference_path(m - k, leaves[k:]), merkle.tree_hash(leaves[:k])]


def _reference_subproof(m: int, leaves: list[bytes], complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [merkle.tree_hash(leaves)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return [*_reference_subproof(m, leaves[:k], complete), merkle.tree_hash(leaves[k:])]
    return [*_reference_subproof(m - k, leaves[k:], False), merkle.tree_hash(leaves[:k])]


@st.composite
def tree_and_index(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(st.integers(min_value=1, max_value=300))
    return size, draw(st.integers(min_value=0, max_value=size - 1))


@given(tree_and_index())
def test_inclusion_matches_rfc_definition_and_verifies(case: tuple[int, int]) -> None:
    size, index = case
    hashes = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
    store = merkle.LevelStore()
    store.extend(hashes)
    proof = merkle.inclusion_proof(index, size, store)
    assert proof == _reference_path(index, hashes)
    root = merkle.tree_hash(hashes)
    merkle.verify_inclusion(index=index, size=size, leaf=hashes[index], proof=proof, root=root)
    other = hashes[(index + 1) % size]
    if other != hashes[index]:
        with pytest.raises(VerificationError):
            merkle.verify_inclusion(index=index, size=size, leaf=other, proof=proof, root=root)


@given(st.integers(min_value=1, max_value=300), st.data())
def test_consistency_matches_rfc_definition_and_verifies(new: int, data: st.DataObject) -> None:
    old = data.draw(st.integers(min_value=1, max_value=new))
    hashes = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(new)]
    store = merkle.LevelStore()
    store.extend(hashes)
    proof = merkle.consistency_proof(old, new, store)
    assert proof == ([] if old == new else _reference_subproof(old, hashes, True))
    old_root, new_root = merkle.tree_hash(hashes[:old]), merkle.tree_hash(hashes)
    merkle.verify_consistency(
        old_size=old, new_size=new, proof=proof, old_root=old_root, new_root=new_root
    )
    if old < new:
        with pytest.raises(VerificationError):
            merkle.verify_consistency(
                old_size=old, new_size=new, proof=proof, old_root=new_root, new_root=old_root
            )


@given(tree_and_index())
def test_sigstore_accepts_our_inclusion_proofs(case: tuple[int, int]) -> None:
    """An independent RFC 6962 verifier (sigstore-python) accepts our proofs."""
    size, index = case
    entries = [f"entry-{i}".encode() for i in range(size)]
    store = store_of(entries)
    proof = types.SimpleNamespace(
        log_index=index,
        tree_size=size,
        hashes=merkle.inclusion_proof(index, size, store),
        root_hash=store.root(),
    )
    entry = types.SimpleNamespace(
        _inner=types.SimpleNamespace(inclusion_proof=proof, canonicalized_body=entries[index])
    )
    sigstore_merkle.verify_merkle_inclusion(cast(Any, entry))
    proof.root_hash = merkle.EMPTY_ROOT
    with pytest.raises(Exception, match="invalid root hash"):
        sigstore_merkle.verify_merkle_inclusion(cast(Any, entry))


@given(st.lists(st.integers(min_value=0, max_value=40), max_size=12))
def test_level_store_extend_in_batches_equals_one_by_one(batches: list[int]) -> None:
    hashes = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(sum(batches))]
    batched, single = merkle.LevelStore(), merkle.LevelStore()
    position = 0
    for count in batches:
        batched.extend(hashes[position : position + count])
        position += count
    for leaf in hashes:
        single.append(leaf)
    assert batched.size == single.size == len(hashes)
    assert batched.root() == single.root() == merkle.tree_hash(hashes)
    for level in range(len(hashes).bit_length()):
        for index in range(len(hashes) >> level):
            assert batched.subtree(level, index) == single.subtree(level, index)
