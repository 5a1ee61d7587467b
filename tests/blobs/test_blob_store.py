"""One behavioural suite, run against every blob store backend."""

from __future__ import annotations

import hashlib
import os
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claimready.blobs.base import BlobRef, BlobStore, retention_instant
from claimready.errors import (
    ConflictError,
    InputError,
    NotFoundError,
    VerificationError,
)
from claimready.timeutil import utcnow
from tests.blobs.blob_support import MakeStore, Tamper

LARGE_SIZE = 20 * 1024 * 1024
MISSING = "0" * 64


def write_random_file(path: Path, *, size: int) -> str:
    """Write ``size`` random bytes to ``path`` in chunks; return their SHA-256."""
    hasher = hashlib.sha256()
    with path.open("wb") as out:
        remaining = size
        while remaining:
            chunk = os.urandom(min(remaining, 1024 * 1024))
            hasher.update(chunk)
            out.write(chunk)
            remaining -= len(chunk)
    return hasher.hexdigest()


def test_put_bytes_names_blob_by_sha256(make_store: MakeStore) -> None:
    store = make_store()
    data = b"edr export 2024-05-01"
    ref = store.put_bytes(data)
    assert ref == BlobRef(sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    assert store.exists(ref.sha256)
    assert store.get_bytes(ref.sha256) == data


def test_put_is_idempotent(make_store: MakeStore, tmp_path: Path) -> None:
    store = make_store()
    first = store.put_bytes(b"same evidence")
    before = store.stat(first.sha256)
    source = tmp_path / "same.json"
    source.write_bytes(b"same evidence")
    assert store.put_bytes(b"same evidence") == first
    assert store.put_file(source) == first
    assert list(store.iter_hashes()) == [first.sha256]
    assert store.stat(first.sha256) == before


def test_empty_blob(make_store: MakeStore) -> None:
    store = make_store()
    ref = store.put_bytes(b"")
    assert ref.size == 0
    assert store.get_bytes(ref.sha256) == b""
    store.rehash(ref.sha256)


def test_put_file_streams_a_large_file(make_store: MakeStore, tmp_path: Path) -> None:
    store = make_store()
    source = tmp_path / "large.bin"
    expected = write_random_file(source, size=LARGE_SIZE)
    ref = store.put_file(source)
    assert ref == BlobRef(sha256=expected, size=LARGE_SIZE)
    assert store.stat(expected).size == LARGE_SIZE
    store.rehash(expected)
    with store.open(expected) as stream:
        hasher = hashlib.sha256()
        while chunk := stream.read(65536):
            hasher.update(chunk)
    assert hasher.hexdigest() == expected


def test_put_file_names_an_unreadable_source(make_store: MakeStore, tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(InputError, match=r"nope\.json"):
        make_store().put_file(missing)


def test_iter_hashes_lists_every_blob_in_order(make_store: MakeStore) -> None:
    store = make_store()
    refs = [store.put_bytes(f"evidence {n}".encode()) for n in range(5)]
    assert list(store.iter_hashes()) == sorted(ref.sha256 for ref in refs)


def test_missing_blob_raises_not_found(make_store: MakeStore) -> None:
    store = make_store()
    assert not store.exists(MISSING)
    for call in (
        store.open,
        store.get_bytes,
        store.stat,
        store.rehash,
        store.retention,
        store.legal_hold,
        store.delete,
    ):
        with pytest.raises(NotFoundError, match=MISSING):
            call(MISSING)
    with pytest.raises(NotFoundError, match=MISSING):
        store.set_legal_hold(MISSING, on=True)
    with pytest.raises(NotFoundError, match=MISSING):
        store.set_retention(MISSING, until=utcnow() + timedelta(days=3))


@pytest.mark.parametrize("name", ["", "abc", "g" * 64, "0" * 63, "../" + "0" * 61])
def test_malformed_names_are_rejected(make_store: MakeStore, name: str) -> None:
    with pytest.raises(InputError, match="sha256"):
        make_store().exists(name)


def test_uppercase_names_are_accepted(make_store: MakeStore) -> None:
    store = make_store()
    ref = store.put_bytes(b"case")
    assert store.get_bytes(ref.sha256.upper()) == b"case"


def test_new_blob_is_retained_for_the_default_period(make_store: MakeStore) -> None:
    store = make_store(default_retention_days=30)
    earliest = retention_instant(utcnow() + timedelta(days=30))
    ref = store.put_bytes(b"retained")
    latest = retention_instant(utcnow() + timedelta(days=30))
    until = store.retention(ref.sha256)
    assert until is not None
    assert earliest - timedelta(seconds=1) <= until <= latest
    assert until.utcoffset() == timedelta(0)
    assert not store.legal_hold(ref.sha256)


def test_no_default_retention(make_store: MakeStore) -> None:
    store = make_store(default_retention_days=0)
    ref = store.put_bytes(b"not retained")
    assert store.retention(ref.sha256) is None


def test_retention_can_be_extended(make_store: MakeStore) -> None:
    store = make_store()
    ref = store.put_bytes(b"extend me")
    current = store.retention(ref.sha256)
    assert current is not None
    later = current + timedelta(days=365, microseconds=1)
    store.set_retention(ref.sha256, until=later)
    assert store.retention(ref.sha256) == retention_instant(later)
    store.set_retention(ref.sha256, until=later)
    assert store.retention(ref.sha256) == retention_instant(later)


def test_retention_can_be_set_where_there_was_none(make_store: MakeStore) -> None:
    store = make_store(default_retention_days=0)
    ref = store.put_bytes(b"retain later")
    until = (utcnow() + timedelta(days=7)).replace(microsecond=0)
    store.set_retention(ref.sha256, until=until)
    assert store.retention(ref.sha256) == until


def test_retention_cannot_be_shortened(make_store: MakeStore) -> None:
    store = make_store(default_retention_days=10)
    ref = store.put_bytes(b"keep me")
    current = store.retention(ref.sha256)
    assert current is not None
    with pytest.raises(ConflictError, match="extended but not shortened"):
        store.set_retention(ref.sha256, until=current - timedelta(days=1))
    assert store.retention(ref.sha256) == current


def test_retention_in_the_past_is_rejected(make_store: MakeStore) -> None:
    store = make_store(default_retention_days=0)
    ref = store.put_bytes(b"past")
    with pytest.raises(InputError, match="not in the future"):
        store.set_retention(ref.sha256, until=utcnow() - timedelta(days=1))


def test_naive_retention_date_is_rejected(make_store: MakeStore) -> None:
    store = make_store()
    ref = store.put_bytes(b"naive")
    naive = (utcnow() + timedelta(days=400)).replace(tzinfo=None)
    with pytest.raises(ValueError, match="naive"):
        store.set_retention(ref.sha256, until=naive)


def test_delete_is_refused_under_retention(make_store: MakeStore) -> None:
    store = make_store(default_retention_days=1)
    ref = store.put_bytes(b"retained evidence")
    with pytest.raises(ConflictError, match="retained until"):
        store.delete(ref.sha256)
    assert store.get_bytes(ref.sha256) == b"retained evidence"


def test_legal_hold_on_and_off(make_store: MakeStore) -> None:
    store = make_store(default_retention_days=0)
    ref = store.put_bytes(b"held evidence")
    store.set_legal_hold(ref.sha256, on=True)
    assert store.legal_hold(ref.sha256)
    with pytest.raises(ConflictError, match="legal hold"):
        store.delete(ref.sha256)
    assert store.exists(ref.sha256)
    store.set_legal_hold(ref.sha256, on=False)
    assert not store.legal_hold(ref.sha256)
    store.delete(ref.sha256)
    assert not store.exists(ref.sha256)


def test_legal_hold_blocks_delete_alongside_retention(make_store: MakeStore) -> None:
    store = make_store(default_retention_days=1)
    ref = store.put_bytes(b"held and retained")
    store.set_legal_hold(ref.sha256, on=True)
    with pytest.raises(ConflictError, match="legal hold"):
        store.delete(ref.sha256)
    store.set_legal_hold(ref.sha256, on=False)
    with pytest.raises(ConflictError, match="retained until"):
        store.delete(ref.sha256)


def test_delete_removes_an_unretained_blob(make_store: MakeStore) -> None:
    store = make_store(default_retention_days=0)
    keep = store.put_bytes(b"keep")
    gone = store.put_bytes(b"gone")
    store.delete(gone.sha256)
    assert not store.exists(gone.sha256)
    assert list(store.iter_hashes()) == [keep.sha256]
    with pytest.raises(NotFoundError):
        store.open(gone.sha256)
    assert store.put_bytes(b"gone") == gone
    assert store.get_bytes(gone.sha256) == b"gone"


def test_rehash_passes_for_intact_content(make_store: MakeStore) -> None:
    store = make_store()
    ref = store.put_bytes(b"intact" * 1000)
    store.rehash(ref.sha256)


def test_rehash_detects_modified_content(make_store: MakeStore, tamper: Tamper) -> None:
    store = make_store()
    ref = store.put_bytes(b"original scanner report " * 100)
    tamper(store, ref.sha256)
    with pytest.raises(VerificationError, match=ref.sha256) as caught:
        store.rehash(ref.sha256)
    assert caught.value.subject == f"blob {ref.sha256}"
    with pytest.raises(VerificationError, match=ref.sha256):
        store.get_bytes(ref.sha256)


def test_stat_describes_the_blob(make_store: MakeStore) -> None:
    store = make_store()
    before = utcnow().replace(microsecond=0) - timedelta(seconds=1)
    ref = store.put_bytes(b"stat me")
    info = store.stat(ref.sha256)
    assert info.sha256 == ref.sha256
    assert info.size == ref.size
    assert info.stored_at is not None
    assert info.stored_at >= before
    assert info.legal_hold is False


@pytest.fixture
def shared_store(make_store: MakeStore) -> BlobStore:
    """One store for all of a property test's examples (puts are idempotent)."""
    return make_store()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.binary(max_size=4096))
def test_put_then_get_round_trips(shared_store: BlobStore, data: bytes) -> None:
    ref = shared_store.put_bytes(data)
    assert ref.sha256 == hashlib.sha256(data).hexdigest()
    assert ref.size == len(data)
    assert shared_store.get_bytes(ref.sha256) == data
    assert shared_store.exists(ref.sha256)


def write_sources(directory: Path, bodies: list[bytes]) -> list[Path]:
    """One file per body, in order."""
    directory.mkdir(exist_ok=True)
    paths = []
    for number, body in enumerate(bodies):
        path = directory / f"evidence-{number:03d}.json"
        path.write_bytes(body)
        paths.append(path)
    return paths


def test_put_files_stores_a_batch_in_order(make_store: MakeStore, tmp_path: Path) -> None:
    store = make_store()
    bodies = [f'{{"export":{n}}}'.encode() for n in range(20)] + [b'{"export":3}']
    refs = store.put_files(write_sources(tmp_path / "batch", bodies))
    assert refs == [
        BlobRef(sha256=hashlib.sha256(body).hexdigest(), size=len(body)) for body in bodies
    ]
    assert refs[3] == refs[-1]
    assert list(store.iter_hashes()) == sorted({ref.sha256 for ref in refs})
    for ref, body in zip(refs, bodies, strict=True):
        assert store.get_bytes(ref.sha256) == body
        assert store.retention(ref.sha256) is not None


def test_put_files_of_stored_blobs_changes_nothing(make_store: MakeStore, tmp_path: Path) -> None:
    store = make_store()
    first = store.put_bytes(b"already stored")
    before = store.stat(first.sha256)
    refs = store.put_files(write_sources(tmp_path / "again", [b"already stored", b"new"]))
    assert refs[0] == first
    assert store.stat(first.sha256) == before
    assert store.exists(refs[1].sha256)


def test_put_files_of_nothing(make_store: MakeStore) -> None:
    store = make_store()
    assert store.put_files([]) == []
    assert list(store.iter_hashes()) == []


def test_put_files_names_an_unreadable_source(make_store: MakeStore, tmp_path: Path) -> None:
    store = make_store()
    paths = [tmp_path / "absent.json"]
    with pytest.raises(InputError, match=r"absent\.json"):
        store.put_files(paths)


def test_put_batches_yields_each_batch_as_put_files_would(
    make_store: MakeStore, tmp_path: Path
) -> None:
    store = make_store()
    batches = [
        write_sources(
            tmp_path / f"batch-{k}", [f'{{"batch":{k},"n":{n}}}'.encode() for n in range(k + 1)]
        )
        for k in range(5)
    ]
    batches.append(write_sources(tmp_path / "repeat", [b'{"batch":0,"n":0}']))
    yielded = list(store.put_batches(batches, ahead=2))
    assert yielded == [
        [BlobRef(hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_size) for p in batch]
        for batch in batches
    ]
    assert yielded[-1] == yielded[0]
    for refs in yielded:
        for ref in refs:
            assert store.exists(ref.sha256)


def test_put_batches_raises_in_the_failing_batchs_turn(
    make_store: MakeStore, tmp_path: Path
) -> None:
    store = make_store()
    good = write_sources(tmp_path / "good", [b"first batch"])
    bad = [tmp_path / "missing.json"]
    later = write_sources(tmp_path / "later", [b"after the failure"])
    batches = iter(store.put_batches([good, bad, later], ahead=1))
    assert next(batches) == [BlobRef(hashlib.sha256(b"first batch").hexdigest(), 11)]
    with pytest.raises(InputError, match=r"missing\.json"):
        next(batches)


def test_put_batches_closed_early_starts_no_more(make_store: MakeStore, tmp_path: Path) -> None:
    store = make_store()
    sources = [write_sources(tmp_path / f"b{k}", [f"batch {k}".encode()]) for k in range(6)]
    batches = store.put_batches(sources, ahead=2)
    first = next(batches)
    batches.close()
    stored = set(store.iter_hashes())
    assert first[0].sha256 in stored
    # the batch yielded and at most the two stored ahead of it
    assert len(stored) <= 3
