"""Parallel re-hashing names exactly the blobs whose bytes changed."""

from __future__ import annotations

from pathlib import Path

import pytest

from claimready.blobs.local import LocalBlobStore
from claimready.blobs.verify import rehash_blobs
from claimready.errors import VerificationError
from tests.blobs.blob_support import MakeStore, Tamper


@pytest.mark.parametrize("workers", [1, 2])
def test_rehash_covers_every_blob(make_store: MakeStore, workers: int) -> None:
    store = make_store(default_retention_days=0)
    sizes = [1000 + 7919 * i for i in range(12)]
    for i, size in enumerate(sizes):
        store.put_bytes(bytes([i]) * size)
    report = rehash_blobs(store, workers=workers)
    assert (report.blobs, report.bytes) == (12, sum(sizes))


@pytest.mark.parametrize("workers", [1, 2])
def test_rehash_names_the_tampered_blob(
    make_store: MakeStore, tamper: Tamper, workers: int
) -> None:
    store = make_store(default_retention_days=0)
    digests = sorted(store.put_bytes(bytes([i]) * (3000 + i)).sha256 for i in range(10))
    tamper(store, digests[6])
    with pytest.raises(VerificationError) as caught:
        rehash_blobs(store, workers=workers)
    assert caught.value.subject == f"blob {digests[6]}"
    tamper(store, digests[2])
    with pytest.raises(VerificationError) as caught:
        rehash_blobs(store, workers=workers)
    assert caught.value.subject == f"blob {digests[2]}"
    assert "1 more" in caught.value.problem
    assert rehash_blobs(store, digests=digests[:2], workers=workers).blobs == 2


def test_rehash_reports_a_missing_local_blob(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs", default_retention_days=0)
    digest = store.put_bytes(b"evidence").sha256
    path = store.path_for(digest)
    path.chmod(0o644)
    path.unlink()
    with pytest.raises(VerificationError, match="missing") as caught:
        rehash_blobs(store, digests=[digest], workers=2)
    assert caught.value.subject == f"blob {digest}"
