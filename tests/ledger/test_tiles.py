"""C2SP tlog-tiles paths and entry bundles."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from claimready.errors import InputError, VerificationError
from claimready.ledger import merkle, tiles


@pytest.mark.parametrize(
    ("index", "encoded"),
    [(0, "000"), (7, "007"), (999, "999"), (1000, "x001/000"), (1234067, "x001/x234/067")],
)
def test_index_encoding_examples(index: int, encoded: str) -> None:
    assert tiles.encode_index(index) == encoded


def test_paths() -> None:
    assert tiles.tile_path(0, 1234067) == "tile/0/x001/x234/067"
    assert tiles.tile_path(1, 0, 17) == "tile/1/000.p/17"
    assert tiles.entries_path(5) == "tile/entries/005"
    assert tiles.entries_path(5, 112) == "tile/entries/005.p/112"
    with pytest.raises(ValueError, match="width"):
        tiles.tile_path(0, 0, 0)


def test_spec_example_tree_of_70000() -> None:
    """273 full level 0 tiles, one partial of 112; one full level 1 tile, one of 17; one of 1."""
    size = 70000
    assert [tiles.tile_width(0, n, size) for n in (272, 273, 274)] == [256, 112, 0]
    assert [tiles.tile_width(1, n, size) for n in (0, 1, 2)] == [256, 17, 0]
    assert [tiles.tile_width(2, n, size) for n in (0, 1)] == [1, 0]
    assert tiles.tile_width(1, 0, 256) == 1


@given(st.lists(st.binary(max_size=300), max_size=20))
def test_bundle_round_trip(entries: list[bytes]) -> None:
    data = tiles.encode_bundle(entries)
    assert tiles.decode_bundle(data) == entries


def test_bundle_rejects_truncation_and_oversize() -> None:
    data = tiles.encode_bundle([b"abc", b"defg"])
    assert data[:2] == b"\x00\x03"
    with pytest.raises(VerificationError, match="past the end"):
        tiles.decode_bundle(data[:-1], path="tile/entries/000.p/2")
    with pytest.raises(InputError):
        tiles.encode_bundle([b"x" * (tiles.MAX_ENTRY_SIZE + 1)])


@given(st.lists(st.binary(max_size=300), max_size=40), st.integers(min_value=0, max_value=3))
def test_bundle_leaf_hashes_match_the_reference(entries: list[bytes], cut: int) -> None:
    data = tiles.encode_bundle(entries)
    assert tiles.bundle_leaf_hashes(data) == [merkle.leaf_hash(e) for e in entries]
    if data and cut:
        truncated = data[: max(0, len(data) - cut)]
        try:
            expected: list[bytes] | None = tiles.decode_bundle(truncated)
        except VerificationError:
            expected = None
        if expected is None:
            with pytest.raises(ValueError):
                tiles.bundle_leaf_hashes(truncated)
        else:
            assert tiles.bundle_leaf_hashes(truncated) == [merkle.leaf_hash(e) for e in expected]


@given(st.integers(min_value=0, max_value=8))
def test_subtree_root_is_the_tree_hash(height: int) -> None:
    hashes = [merkle.leaf_hash(bytes([i % 256, i // 256])) for i in range(1 << height)]
    assert tiles.subtree_root(hashes) == merkle.tree_hash(hashes)
    with pytest.raises(ValueError):
        tiles.subtree_root(hashes * 3)
