"""C2SP tlog-tiles paths and entry bundles."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

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


HASHING = [pytest.param(True, id="native"), pytest.param(False, id="python")]


@contextmanager
def hashing(native: bool) -> Iterator[None]:
    """Hash with the compiled module (skipped where it was not built) or with hashlib."""
    if native and merkle.NATIVE is None:
        pytest.skip("claimready.ledger._treehash is not built here")
    saved = merkle.NATIVE
    merkle.NATIVE = saved if native else None
    try:
        yield
    finally:
        merkle.NATIVE = saved


def _outcome(call: Callable[[], bytes]) -> bytes | str:
    try:
        return call()
    except ValueError as exc:
        return str(exc)


@pytest.mark.parametrize("native", HASHING)
@given(st.lists(st.binary(max_size=300), max_size=40), st.integers(min_value=0, max_value=3))
def test_bundle_leaf_hashes_match_the_reference(
    native: bool, entries: list[bytes], cut: int
) -> None:
    data = tiles.encode_bundle(entries)
    with hashing(native):
        assert tiles.bundle_leaf_hashes(data) == b"".join(merkle.leaf_hash(e) for e in entries)
        assert merkle.leaf_hashes(entries) == b"".join(merkle.leaf_hash(e) for e in entries)
        if data and cut:
            truncated = data[: max(0, len(data) - cut)]
            try:
                expected: list[bytes] | None = tiles.decode_bundle(truncated)
            except VerificationError:
                expected = None
            got = _outcome(lambda: tiles.bundle_leaf_hashes(truncated))
    if data and cut:
        if expected is None:
            assert isinstance(got, str)
            with hashing(not native):  # both name the same byte
                assert _outcome(lambda: tiles.bundle_leaf_hashes(truncated)) == got
        else:
            assert got == b"".join(merkle.leaf_hash(e) for e in expected)


@pytest.mark.parametrize("native", HASHING)
@given(st.integers(min_value=0, max_value=8))
def test_subtree_root_is_the_tree_hash(native: bool, height: int) -> None:
    hashes = [merkle.leaf_hash(bytes([i % 256, i // 256])) for i in range(1 << height)]
    with hashing(native):
        assert tiles.subtree_root(b"".join(hashes)) == merkle.tree_hash(hashes)
        with pytest.raises(ValueError):
            tiles.subtree_root(b"".join(hashes * 3))
        levels = tiles.expand_tile(b"".join(hashes[: max(1, len(hashes) - 1)]))
        assert levels[0] == b"".join(hashes[: max(1, len(hashes) - 1)])
        for below, above in itertools.pairwise(levels):
            pairs = len(below) // 64
            assert above == b"".join(
                merkle.node_hash(below[64 * i : 64 * i + 32], below[64 * i + 32 : 64 * i + 64])
                for i in range(pairs)
            )


@pytest.mark.parametrize("native", HASHING)
def test_node_hashes_take_whole_pairs(native: bool) -> None:
    with hashing(native), pytest.raises(ValueError, match="not pairs"):
        merkle.node_hashes(bytes(96))
    with hashing(native):
        assert merkle.node_hashes(b"") == b""


def test_large_inputs_are_hashed_alike() -> None:
    """Past 256 KiB the compiled hashing releases the GIL; the hashes are the same."""
    entries = [bytes([i % 251]) * 1000 for i in range(600)]
    with hashing(True):
        native = merkle.leaf_hashes(entries), tiles.bundle_leaf_hashes(tiles.encode_bundle(entries))
    with hashing(False):
        python = merkle.leaf_hashes(entries), tiles.bundle_leaf_hashes(tiles.encode_bundle(entries))
    assert native == python


def test_the_native_hashing_is_built_where_ci_runs() -> None:
    """CI installs a C compiler and OpenSSL's headers, so the optional extension must be there."""
    if merkle.NATIVE is None and os.environ.get("CI"):
        pytest.fail("claimready.ledger._treehash was not built: install gcc and libssl-dev")
