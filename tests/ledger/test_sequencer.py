"""The sequencing file: chained records in preallocated space, recovery, upgrade."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest

from claimready.errors import StorageError
from claimready.ledger.sequencer import HEADER_SIZE, PREALLOCATE, SequenceFile, scan


def open_file(path: Path) -> SequenceFile:
    sequence = SequenceFile(path)
    sequence.open()
    return sequence


def entries_of(path: Path) -> list[bytes]:
    sequence = open_file(path)
    try:
        return sequence.read_from(sequence.base, limit=1 << 20)
    finally:
        sequence.close()


def frame(entry: bytes, chain: int) -> tuple[bytes, int]:
    """A version 2 record, built independently of the module under test."""
    head = (0xA5 << 24 | len(entry)).to_bytes(4, "big")
    chain = zlib.crc32(head + entry, chain)
    return head + chain.to_bytes(4, "big") + entry, chain


def header_chain(path: Path) -> int:
    return int.from_bytes(path.read_bytes()[20:24], "big")


def chain_after(path: Path, entries: list[bytes]) -> tuple[int, int]:
    """(offset, chain) after the given leading entries of the file."""
    offset, chain = HEADER_SIZE, header_chain(path)
    for entry in entries:
        record, chain = frame(entry, chain)
        offset += len(record)
    return offset, chain


def write_at(path: Path, offset: int, data: bytes) -> None:
    with path.open("r+b") as handle:
        handle.seek(offset)
        handle.write(data)


def test_appends_read_back_in_order_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "sequence"
    sequence = open_file(path)
    assert sequence.append([b"a", b"", b"c" * 300]) == 0
    assert sequence.append([b"d"]) == 3
    sequence.close()
    assert entries_of(path) == [b"a", b"", b"c" * 300, b"d"]


def test_file_is_preallocated_with_zeros(tmp_path: Path) -> None:
    path = tmp_path / "sequence"
    sequence = open_file(path)
    sequence.append([b"x" * 100])
    size = path.stat().st_size
    assert size >= HEADER_SIZE + PREALLOCATE
    assert path.read_bytes()[sequence.end :] == bytes(size - sequence.end)
    sequence.append([b"y" * (PREALLOCATE + 10)])
    assert path.stat().st_size >= sequence.end + PREALLOCATE
    sequence.close()
    assert entries_of(path) == [b"x" * 100, b"y" * (PREALLOCATE + 10)]


def test_record_chained_over_another_predecessor_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "sequence"
    sequence = open_file(path)
    sequence.append([b"acknowledged"])
    sequence.close()
    offset, chain = chain_after(path, [b"acknowledged"])
    lost, lost_chain = frame(b"lost-" * 4, chain)
    stale, _ = frame(b"stale", lost_chain)
    replacement, _ = frame(b"later-" * 3 + b"xx", chain)
    assert len(replacement) == len(lost)
    data = path.read_bytes()[:offset] + replacement + stale
    found = [entry for _stop, entry, _chain in scan(data, HEADER_SIZE, header_chain(path))]
    assert found == [b"acknowledged", b"later-" * 3 + b"xx"]


def test_stale_record_in_preallocated_space_is_not_resurrected(tmp_path: Path) -> None:
    """A crash persisted a later record of an unacknowledged append but tore the first.

    After recovery a new append of exactly the torn record's length lands
    where the stale record would continue the chain; it must not reappear.
    """
    path = tmp_path / "sequence"
    sequence = open_file(path)
    sequence.append([b"acknowledged"])
    sequence.close()
    offset, chain = chain_after(path, [b"acknowledged"])
    torn, torn_chain = frame(b"unacknowledged-1", chain)
    stale, _ = frame(b"unacknowledged-2", torn_chain)
    write_at(path, offset, torn[:-3] + b"\xff\xff\xff" + stale)

    recovered = open_file(path)
    assert recovered.read_from(0, limit=10) == [b"acknowledged"]
    assert path.read_bytes()[offset : offset + len(torn) + len(stale)] == bytes(
        len(torn) + len(stale)
    )
    assert recovered.append([b"appended-later!!"]) == 1
    recovered.close()
    assert entries_of(path) == [b"acknowledged", b"appended-later!!"]


def test_stale_bytes_behind_an_untorn_tail_are_cleared_on_open(tmp_path: Path) -> None:
    path = tmp_path / "sequence"
    sequence = open_file(path)
    sequence.append([b"acknowledged"])
    sequence.close()
    offset, chain = chain_after(path, [b"acknowledged"])
    first, first_chain = frame(b"page-one" * 600, chain)
    second, _ = frame(b"page-two", first_chain)
    # The first record's page never reached the disk; the second's did.
    write_at(path, offset + len(first), second)
    open_file(path).close()
    assert path.read_bytes()[offset:].count(0) == path.stat().st_size - offset
    assert entries_of(path) == [b"acknowledged"]


def test_another_handle_sees_appends_and_its_own_continue_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "sequence"
    one, two = open_file(path), open_file(path)
    assert one.append([b"1"]) == 0
    assert two.append([b"2", b"3"]) == 1
    assert one.append([b"4"]) == 3
    one.refresh(truncate=True)
    assert one.read_from(0, limit=10) == [b"1", b"2", b"3", b"4"]
    one.close()
    two.close()
    assert entries_of(path) == [b"1", b"2", b"3", b"4"]


def test_restart_keeps_indexes_and_starts_a_new_chain(tmp_path: Path) -> None:
    path = tmp_path / "sequence"
    sequence = open_file(path)
    sequence.append([b"a", b"b"])
    old_chain = header_chain(path)
    sequence.restart(2)
    assert sequence.append([b"c"]) == 2
    assert sequence.read_from(2, limit=10) == [b"c"]
    assert header_chain(path) != old_chain
    sequence.close()


def test_another_handle_follows_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "sequence"
    one, two = open_file(path), open_file(path)
    assert one.append([b"a", b"b"]) == 0
    two.refresh(truncate=True)
    one.restart(2)
    assert two.append([b"c"]) == 2
    one.refresh(truncate=True)
    assert one.read_from(2, limit=10) == [b"c"]
    assert one.append([b"d"]) == 3
    one.close()
    two.close()
    assert entries_of(path) == [b"c", b"d"]


def test_retired_marker_without_a_new_file_is_cleared(tmp_path: Path) -> None:
    """A crash between marking the old file retired and replacing it."""
    path = tmp_path / "sequence"
    sequence = open_file(path)
    sequence.append([b"kept"])
    write_at(path, sequence.end, b"\x5aRETIRED")
    sequence.close()
    assert entries_of(path) == [b"kept"]
    reopened = open_file(path)
    assert reopened.append([b"next"]) == 1
    reopened.close()
    assert entries_of(path) == [b"kept", b"next"]


def v1_file(path: Path, base: int, entries: list[bytes]) -> None:
    out = b"CRSEQv1\n" + base.to_bytes(8, "big")
    for entry in entries:
        head = len(entry).to_bytes(4, "big")
        out += head + zlib.crc32(entry, zlib.crc32(head)).to_bytes(4, "big") + entry
    path.write_bytes(out)


def test_version_1_file_is_upgraded_on_open(tmp_path: Path) -> None:
    path = tmp_path / "sequence"
    v1_file(path, 7, [b"seven", b"eight"])
    with path.open("ab") as handle:
        handle.write(b"\x00\x00\x01\x00\xde\xad")  # a torn version 1 tail
    sequence = open_file(path)
    assert path.read_bytes()[:8] == b"CRSEQv2\n"
    assert sequence.base == 7
    assert sequence.read_from(7, limit=10) == [b"seven", b"eight"]
    assert sequence.append([b"nine"]) == 9
    sequence.close()
    assert entries_of(path) == [b"seven", b"eight", b"nine"]


def test_corrupt_header_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "sequence"
    open_file(path).close()
    write_at(path, 12, b"\x01")
    with pytest.raises(StorageError, match="header is corrupt"):
        open_file(path)
