"""The write path, receipts, recovery and full verification."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claimready.errors import StorageError, VerificationError
from claimready.ledger import merkle
from claimready.ledger.keys import KeyRing
from claimready.ledger.log import Ledger
from claimready.ledger.proof import parse_receipt, verify_receipt
from claimready.ledger.sequencer import SequenceFile
from claimready.ledger.storage import FileStorage
from claimready.ledger.verify import verify_log

ORIGIN = "test.example/claimready/acme"


def entry(i: int) -> bytes:
    return f'{{"type":"test","i":{i}}}'.encode() * (1 + i % 3)


def open_ledger(root: Path) -> Ledger:
    return Ledger.open(
        directory=root / "log", origin=ORIGIN, keyring=KeyRing(root / "keys", name=ORIGIN)
    )


def verify(root: Path) -> None:
    ring = KeyRing(root / "keys", name=ORIGIN)
    verify_log(storage=FileStorage(root / "log"), origin=ORIGIN, verifiers=ring.verifiers())


@pytest.fixture(scope="module")
def built() -> Iterator[Path]:
    """A log of 700 entries integrated in uneven batches, with a key rotation."""
    root = Path(tempfile.mkdtemp(prefix="ledger-"))
    with open_ledger(root) as ledger:
        for start, stop in ((0, 1), (1, 100), (100, 256), (256, 600)):
            ledger.append_many([entry(i) for i in range(start, stop)])
            ledger.integrate()
        ledger.keyring.rotate()
        ledger.append_many([entry(i) for i in range(600, 700)])
        ledger.integrate()
    yield root
    shutil.rmtree(root)


def test_append_integrate_read(built: Path) -> None:
    with open_ledger(built) as ledger:
        checkpoint, _note = ledger.latest()
        assert checkpoint.size == 700
        assert [ledger.entry(i) for i in (0, 255, 256, 699)] == [
            entry(i) for i in (0, 255, 256, 699)
        ]
        store = merkle.LevelStore()
        store.extend([merkle.leaf_hash(entry(i)) for i in range(700)])
        assert checkpoint.root == store.root()
        for index, size in ((0, 1), (5, 100), (300, 600), (699, 700)):
            assert ledger.inclusion_proof(index, size) == merkle.inclusion_proof(index, size, store)
        assert ledger.consistency_proof(100, 700) == merkle.consistency_proof(100, 700, store)
    verify(built)


def test_receipt_round_trip(built: Path) -> None:
    ring = KeyRing(built / "keys", name=ORIGIN)
    with open_ledger(built) as ledger:
        receipt = ledger.receipt(42)
        old = ledger.receipt(42, size=100, include_entry=False)
    assert receipt.startswith(b"c2sp.org/tlog-proof@v1\nextra ")
    verified = verify_receipt(receipt, None, ring.vkeys(), origin=ORIGIN)
    assert (verified.index, verified.entry, verified.checkpoint.size) == (42, entry(42), 700)
    verify_receipt(old, entry(42), ring.vkeys())
    assert parse_receipt(old).extra is None
    with pytest.raises(VerificationError):
        verify_receipt(old, entry(43), ring.vkeys())
    with pytest.raises(VerificationError):
        verify_receipt(old, None, ring.vkeys())


def _published(root: Path) -> list[Path]:
    log = root / "log"
    return sorted(p for p in log.rglob("*") if p.is_file() and (
        p.name == "checkpoint" or "tile" in p.parts or "checkpoints" in p.parts
    ))  # fmt: skip


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_any_flipped_byte_in_the_log_is_detected(built: Path, data: st.DataObject) -> None:
    files = _published(built)
    target = data.draw(st.sampled_from(files)).relative_to(built)
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "copy"
        shutil.copytree(built, copy)
        path = copy / target
        raw = bytearray(path.read_bytes())
        offset = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
        raw[offset] ^= data.draw(st.integers(min_value=1, max_value=255))
        path.write_bytes(bytes(raw))
        with pytest.raises(VerificationError):
            verify(copy)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_any_flipped_byte_in_a_receipt_is_detected(built: Path, data: st.DataObject) -> None:
    ring = KeyRing(built / "keys", name=ORIGIN)
    with open_ledger(built) as ledger:
        index = data.draw(st.integers(min_value=0, max_value=699))
        receipt = bytearray(ledger.receipt(index))
    offset = data.draw(st.integers(min_value=0, max_value=len(receipt) - 1))
    receipt[offset] ^= data.draw(st.integers(min_value=1, max_value=255))
    with pytest.raises(VerificationError):
        verify_receipt(bytes(receipt), entry(index), ring.vkeys(), origin=ORIGIN)


def test_verify_names_the_tampered_entry(built: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(built, copy)
    bundle = copy / "log" / "tile" / "entries" / "001"
    raw = bytearray(bundle.read_bytes())
    raw[-1] ^= 1
    bundle.write_bytes(bytes(raw))
    with pytest.raises(VerificationError) as caught:
        verify(copy)
    assert caught.value.subject == "entry 511"


def test_recovery_integrates_and_cuts_a_torn_tail(tmp_path: Path) -> None:
    ledger = open_ledger(tmp_path)
    assert ledger.append_many([entry(i) for i in range(10)]) == list(range(10))
    ledger.close()  # sequenced, never integrated
    sequence = SequenceFile(tmp_path / "log" / "sequence")
    sequence.open()
    tail = sequence.end
    sequence.close()
    with (tmp_path / "log" / "sequence").open("r+b") as handle:
        handle.seek(tail)
        handle.write(b"\xa5\x00\x01\x00\xde\xad")  # a crash mid-record
    with open_ledger(tmp_path) as reopened:
        assert reopened.size == 10
        assert reopened.append(entry(10)) == 10
        assert reopened.wait_for(10).size == 11
        assert reopened.entry(10) == entry(10)
    verify(tmp_path)


def test_background_integrator_and_wait_for(tmp_path: Path) -> None:
    ledger = Ledger.open(
        directory=tmp_path / "log",
        origin=ORIGIN,
        keyring=KeyRing(tmp_path / "keys", name=ORIGIN),
        batch_size=16,
        batch_interval=0.01,
    )
    ledger.start_integrator()
    indexes = [ledger.append(entry(i)) for i in range(50)]
    checkpoint = ledger.wait_for(indexes[-1], timeout=30)
    assert checkpoint.size >= 50
    ledger.close()
    verify(tmp_path)


def test_two_handles_on_one_log_share_the_sequence(tmp_path: Path) -> None:
    first, second = open_ledger(tmp_path), open_ledger(tmp_path)
    assert first.append(entry(0)) == 0
    assert second.append(entry(1)) == 1
    first.integrate()
    assert second.integrate().size == 2
    second.append(entry(2))
    assert first.integrate().size == 3
    first.close()
    second.close()
    verify(tmp_path)


def _tiny(i: int) -> bytes:
    return i.to_bytes(4, "big")


def test_uneven_batches_across_tile_levels_match_the_reference(tmp_path: Path) -> None:
    """Batches that fill several tiles at once, and a tree past one level-2 hash (65,536)."""
    reference = merkle.LevelStore()
    ledger = open_ledger(tmp_path)
    size = 0
    for count in (1, 255, 1, 300, 256 * 255 - 557, 3, 256 * 3 + 5, 1):
        if count == 3:  # reopen: the right edge is read back from the tiles
            ledger.close()
            ledger = open_ledger(tmp_path)
        entries = [_tiny(i) for i in range(size, size + count)]
        ledger.append_many(entries)
        checkpoint = ledger.integrate()
        reference.extend([merkle.leaf_hash(e) for e in entries])
        size += count
        assert (checkpoint.size, checkpoint.root) == (size, reference.root())
    assert size > 65536
    for index in (0, 255, 256, 65535, 65536, size - 1):
        assert ledger.inclusion_proof(index, size) == merkle.inclusion_proof(index, size, reference)
        assert ledger.entry(index) == _tiny(index)
    ledger.close()
    verify(tmp_path)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(min_value=1, max_value=700), min_size=1, max_size=5))
def test_any_batching_gives_the_reference_root(batches: list[int]) -> None:
    with (
        tempfile.TemporaryDirectory(prefix="ledger-") as folder,
        open_ledger(Path(folder)) as ledger,
    ):
        reference, size = merkle.LevelStore(), 0
        for count in batches:
            entries = [_tiny(i) for i in range(size, size + count)]
            ledger.append_many(entries)
            reference.extend([merkle.leaf_hash(e) for e in entries])
            size += count
            assert ledger.integrate().root == reference.root()


class _FailingOnce(FileStorage):
    """Fails the first ``write_many`` after :attr:`armed` is set, having written half of it."""

    armed = False

    def write_many(
        self, objects: Sequence[tuple[str, bytes]], *, then: Sequence[tuple[str, bytes]] = ()
    ) -> None:
        if self.armed:
            self.armed = False
            super().write_many(objects[: len(objects) // 2])
            raise StorageError("disk full")
        super().write_many(objects, then=then)


def test_a_failed_publish_is_integrated_again_in_full(tmp_path: Path) -> None:
    """The right edge is read back after a failure: no tile the failed batch held is skipped."""
    storage = _FailingOnce(tmp_path / "log")
    ring = KeyRing(tmp_path / "keys", name=ORIGIN)
    with Ledger.open(
        directory=tmp_path / "log", origin=ORIGIN, keyring=ring, storage=storage
    ) as ledger:
        ledger.append_many([_tiny(i) for i in range(100)])
        ledger.integrate()
        ledger.append_many([_tiny(i) for i in range(100, 700)])
        storage.armed = True
        with pytest.raises(StorageError, match="disk full"):
            ledger.integrate()
        assert ledger.size == 100
        assert ledger.latest()[1] == ledger.checkpoint_note(100)  # still whole for receipts
        ledger.append_many([_tiny(700)])
        assert ledger.integrate().size == 701
    verify(tmp_path)


def test_entries_another_handle_appended_between_ours_are_integrated(tmp_path: Path) -> None:
    """A handle integrates its own appends from memory, and the others' from the file."""
    first, second = open_ledger(tmp_path), open_ledger(tmp_path)
    reference, expected = merkle.LevelStore(), []

    def append(ledger: Ledger, entries: list[bytes]) -> None:
        ledger.append_many(entries)
        reference.extend([merkle.leaf_hash(e) for e in entries])
        expected.extend(entries)

    for number in range(4):
        ours, theirs = [_tiny(1000 * number + i) for i in range(300)], [_tiny(100_000 + number)]
        if number == 2:
            append(second, theirs)  # before ours, then after
        append(first, ours)
        if number % 2:
            append(second, theirs)
        assert first.integrate().root == reference.root()
    assert [first.entry(i) for i in range(len(expected))] == expected
    first.close()
    second.close()
    verify(tmp_path)


def test_the_sequencing_file_starts_afresh_once_large_and_integrated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past its size limit, a fully integrated sequencing file is replaced by an empty one
    that continues the indexes; a handle that appended nothing notices on its next look."""
    monkeypatch.setattr("claimready.ledger.log._ROTATE_BYTES", 4096)
    with open_ledger(tmp_path) as ledger, open_ledger(tmp_path) as reader:
        ledger.append_many([entry(i) for i in range(10)])
        ledger.integrate()
        assert ledger._seq.base == 0  # still small
        ledger.append_many([entry(i) for i in range(10, 200)])
        ledger.integrate()
        assert ledger._seq.base == 200 and ledger._seq.count == 0
        assert ledger.append(entry(200)) == 200
        reader.integrate()
        assert reader.latest()[0].size == 201
        assert [reader.entry(i) for i in (0, 199, 200)] == [entry(0), entry(199), entry(200)]
    verify(tmp_path)
