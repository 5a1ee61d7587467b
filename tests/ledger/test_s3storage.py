"""A ledger whose published objects live in S3 (a real S3-protocol server on loopback)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from mypy_boto3_s3.client import S3Client

from claimready.errors import ConfigError, StorageError, VerificationError
from claimready.ledger.keys import KeyRing
from claimready.ledger.log import CHECKPOINT_PATH, Ledger, checkpoint_path
from claimready.ledger.proof import verify_receipt
from claimready.ledger.s3storage import S3Storage
from claimready.ledger.tiles import entries_path, tile_path
from claimready.ledger.verify import verify_log

ORIGIN = "test.example/claimready/acme"
MakeBucket = Callable[..., str]


def entry(i: int) -> bytes:
    return f'{{"type":"test","i":{i}}}'.encode()


def build(root: Path, storage: S3Storage, count: int) -> KeyRing:
    ring = KeyRing(root / "keys", name=ORIGIN)
    with Ledger.open(
        directory=root / "log", origin=ORIGIN, keyring=ring, storage=storage
    ) as ledger:
        for start in range(0, count, 300):
            ledger.append_many([entry(i) for i in range(start, min(count, start + 300))])
            ledger.integrate()
        assert ledger.size == count
        receipt = ledger.receipt(count - 1)
        assert ledger.consistency_proof(1, count)
    verified = verify_receipt(receipt, None, ring.vkeys(), origin=ORIGIN)
    assert verified.entry == entry(count - 1)
    return ring


def test_ledger_on_s3_appends_integrates_proves_and_verifies(
    tmp_path: Path, s3_client: S3Client, make_bucket: MakeBucket
) -> None:
    storage = S3Storage(client=s3_client, bucket=make_bucket(), tenant="acme", prefix="ledger/v1")
    ring = build(tmp_path, storage, 700)
    keys = s3_client.list_objects_v2(Bucket=storage.bucket)["Contents"]
    assert f"ledger/v1/acme/{tile_path(0, 0)}" in {k["Key"] for k in keys}
    report = verify_log(storage=storage, origin=ORIGIN, verifiers=ring.verifiers(), workers=2)
    assert report.size == 700
    assert report.checkpoints == 4


@pytest.mark.parametrize("path", [tile_path(0, 1), entries_path(0), checkpoint_path(600)])
def test_a_flipped_byte_on_s3_is_detected(
    tmp_path: Path, s3_client: S3Client, make_bucket: MakeBucket, path: str
) -> None:
    storage = S3Storage(client=s3_client, bucket=make_bucket(), tenant="acme")
    ring = build(tmp_path, storage, 700)
    data = bytearray(storage.read(path) or b"")
    data[len(data) // 2] ^= 0x01
    s3_client.put_object(Bucket=storage.bucket, Key=storage.key_for(path), Body=bytes(data))
    with pytest.raises(VerificationError):
        verify_log(storage=storage, origin=ORIGIN, verifiers=ring.verifiers())


def test_locked_bucket_keeps_the_latest_pointer_elsewhere(
    tmp_path: Path, s3_client: S3Client, make_bucket: MakeBucket
) -> None:
    locked = make_bucket(object_lock=True)
    with pytest.raises(ConfigError, match="Object Lock"):
        S3Storage(client=s3_client, bucket=locked, tenant="acme")
    latest = make_bucket()
    storage = S3Storage(client=s3_client, bucket=locked, tenant="acme", latest_bucket=latest)
    ring = build(tmp_path, storage, 300)
    pointer = s3_client.get_object(Bucket=latest, Key=storage.key_for(CHECKPOINT_PATH))
    assert pointer["Body"].read() == storage.read(checkpoint_path(300))
    assert storage.list("checkpoints") == [checkpoint_path(0), checkpoint_path(300)]
    in_locked = s3_client.list_objects_v2(Bucket=locked)["Contents"]
    assert storage.key_for(CHECKPOINT_PATH) not in {k["Key"] for k in in_locked}
    verify_log(storage=storage, origin=ORIGIN, verifiers=ring.verifiers())


def test_object_paths_are_checked(s3_client: S3Client, make_bucket: MakeBucket) -> None:
    storage = S3Storage(client=s3_client, bucket=make_bucket(), tenant="acme")
    assert storage.read("tile/0/000") is None
    assert not storage.exists("tile/0/000")
    for bad in ("", "../x", "tile//0", "/tile"):
        with pytest.raises(StorageError):
            storage.read(bad)
    with pytest.raises(ConfigError):
        S3Storage(client=s3_client, bucket=storage.bucket, tenant="a/../b")


def test_then_objects_are_put_only_after_every_object_is_stored(
    s3_client: S3Client, make_bucket: MakeBucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = S3Storage(client=s3_client, bucket=make_bucket(), tenant="acme")
    put = storage.write
    order: list[str] = []

    def recording_write(path: str, data: bytes) -> None:
        if path == tile_path(0, 9):
            raise StorageError(f"{path}: cannot write: injected")
        put(path, data)
        order.append(path)

    monkeypatch.setattr(storage, "write", recording_write)
    objects = [(tile_path(0, index), bytes(32)) for index in range(9)]
    then = [(checkpoint_path(2304), b"kept"), (CHECKPOINT_PATH, b"latest")]
    storage.write_many(objects, then=then)
    assert set(order[:9]) == {path for path, _data in objects}
    assert order[9:] == [checkpoint_path(2304), CHECKPOINT_PATH]
    assert storage.read(CHECKPOINT_PATH) == b"latest"
    order.clear()
    with pytest.raises(StorageError, match="injected"):
        storage.write_many([*objects, (tile_path(0, 9), bytes(32))], then=then)
    assert set(order) == {path for path, _data in objects}
