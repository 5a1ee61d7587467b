"""What the S3 store does on the wire: Object Lock, checksums, versions, bucket checks."""

from __future__ import annotations

import base64
import hashlib
import os
from datetime import timedelta
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from mypy_boto3_s3.client import S3Client

from claimready.blobs.s3 import MIN_PART_SIZE, S3BlobStore, open_s3_store
from claimready.errors import ConfigError, ConflictError, InputError, VerificationError
from claimready.timeutil import utcnow
from tests.blobs.blob_support import new_bucket_name


def locked_store(client: S3Client, *, days: int = 1, part_size: int = MIN_PART_SIZE) -> S3BlobStore:
    """A store on a new bucket created with Object Lock."""
    return open_s3_store(
        client=client,
        bucket=new_bucket_name(),
        prefix="tenant-a",
        default_retention_days=days,
        create_bucket=True,
        part_size=part_size,
    )


def test_created_bucket_is_versioned_with_object_lock(s3_client: S3Client) -> None:
    store = locked_store(s3_client)
    lock = s3_client.get_object_lock_configuration(Bucket=store.bucket)
    assert lock["ObjectLockConfiguration"]["ObjectLockEnabled"] == "Enabled"
    assert s3_client.get_bucket_versioning(Bucket=store.bucket)["Status"] == "Enabled"


def test_blob_is_uploaded_with_compliance_retention_and_sha256(s3_client: S3Client) -> None:
    store = locked_store(s3_client, days=7)
    data = b"idp sign-in log export"
    ref = store.put_bytes(data)
    key = store.key_for(ref.sha256)
    assert key == f"tenant-a/sha256/{ref.sha256}"
    head = s3_client.head_object(Bucket=store.bucket, Key=key, ChecksumMode="ENABLED")
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert head["ObjectLockRetainUntilDate"] > utcnow() + timedelta(days=6)
    expected = base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert head["ChecksumSHA256"] == expected


def test_large_file_goes_up_in_parts_and_is_retained(s3_client: S3Client, tmp_path: Path) -> None:
    store = locked_store(s3_client, days=3)
    source = tmp_path / "siem-export.bin"
    source.write_bytes(os.urandom(2 * MIN_PART_SIZE + 1234))
    ref = store.put_file(source)
    head = s3_client.head_object(Bucket=store.bucket, Key=store.key_for(ref.sha256))
    assert head["ETag"].strip('"').endswith("-3")
    assert head["ObjectLockMode"] == "COMPLIANCE"
    retained = store.retention(ref.sha256)
    assert retained is not None
    assert retained > utcnow() + timedelta(days=2)
    assert s3_client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", []) == []
    store.rehash(ref.sha256)


def test_server_refuses_to_delete_a_locked_version(s3_client: S3Client) -> None:
    store = locked_store(s3_client)
    ref = store.put_bytes(b"locked")
    key = store.key_for(ref.sha256)
    version = s3_client.head_object(Bucket=store.bucket, Key=key)["VersionId"]
    with pytest.raises(ClientError, match="AccessDenied"):
        s3_client.delete_object(Bucket=store.bucket, Key=key, VersionId=version)
    assert store.get_bytes(ref.sha256) == b"locked"


def test_server_refuses_to_delete_a_held_version(s3_client: S3Client) -> None:
    store = locked_store(s3_client, days=0)
    ref = store.put_bytes(b"held")
    store.set_legal_hold(ref.sha256, on=True)
    key = store.key_for(ref.sha256)
    version = s3_client.head_object(Bucket=store.bucket, Key=key)["VersionId"]
    with pytest.raises(ClientError, match="AccessDenied"):
        s3_client.delete_object(Bucket=store.bucket, Key=key, VersionId=version)


def test_shortening_is_refused_even_though_the_server_would_allow_it(
    s3_client: S3Client,
) -> None:
    store = locked_store(s3_client, days=5)
    ref = store.put_bytes(b"no shortening")
    current = store.retention(ref.sha256)
    assert current is not None
    with pytest.raises(ConflictError, match=ref.sha256):
        store.set_retention(ref.sha256, until=current - timedelta(days=4))
    assert store.retention(ref.sha256) == current


def test_overwritten_object_is_detected_and_the_locked_original_survives(
    s3_client: S3Client,
) -> None:
    store = locked_store(s3_client)
    ref = store.put_bytes(b"original")
    key = store.key_for(ref.sha256)
    original = s3_client.head_object(Bucket=store.bucket, Key=key)["VersionId"]
    s3_client.put_object(Bucket=store.bucket, Key=key, Body=b"forged")
    with pytest.raises(VerificationError, match=ref.sha256):
        store.rehash(ref.sha256)
    kept = s3_client.get_object(Bucket=store.bucket, Key=key, VersionId=original)
    assert kept["Body"].read() == b"original"
    with pytest.raises(ClientError, match="AccessDenied"):
        s3_client.delete_object(Bucket=store.bucket, Key=key, VersionId=original)


def test_delete_removes_every_version(s3_client: S3Client) -> None:
    store = locked_store(s3_client, days=0)
    ref = store.put_bytes(b"short-lived")
    key = store.key_for(ref.sha256)
    s3_client.put_object(Bucket=store.bucket, Key=key, Body=b"second version")
    store.delete(ref.sha256)
    listing = s3_client.list_object_versions(Bucket=store.bucket, Prefix=key)
    assert listing.get("Versions", []) == []
    assert listing.get("DeleteMarkers", []) == []


def test_bucket_without_object_lock_is_refused_when_retention_is_required(
    s3_client: S3Client,
) -> None:
    bucket = new_bucket_name()
    s3_client.create_bucket(Bucket=bucket)
    with pytest.raises(ConfigError, match=rf"{bucket}.*Object Lock"):
        open_s3_store(client=s3_client, bucket=bucket, default_retention_days=30)
    with pytest.raises(ConfigError, match="Object Lock"):
        open_s3_store(
            client=s3_client, bucket=bucket, default_retention_days=0, require_object_lock=True
        )


def test_bucket_without_object_lock_is_usable_without_retention(s3_client: S3Client) -> None:
    bucket = new_bucket_name()
    s3_client.create_bucket(Bucket=bucket)
    store = open_s3_store(client=s3_client, bucket=bucket, default_retention_days=0)
    ref = store.put_bytes(b"unlocked")
    assert store.get_bytes(ref.sha256) == b"unlocked"
    assert store.retention(ref.sha256) is None
    with pytest.raises(ConfigError, match="Object Lock"):
        store.set_retention(ref.sha256, until=utcnow() + timedelta(days=1))
    with pytest.raises(ConfigError, match="Object Lock"):
        store.set_legal_hold(ref.sha256, on=True)


def test_missing_bucket_is_not_created_unless_asked(s3_client: S3Client) -> None:
    bucket = new_bucket_name()
    with pytest.raises(ConfigError, match=bucket):
        open_s3_store(client=s3_client, bucket=bucket, default_retention_days=1)


def test_part_size_below_the_s3_minimum_is_rejected(s3_client: S3Client) -> None:
    with pytest.raises(InputError, match="part size"):
        S3BlobStore(client=s3_client, bucket="any-bucket", default_retention_days=1, part_size=1024)


def test_prefix_keeps_stores_apart(s3_client: S3Client) -> None:
    bucket = new_bucket_name()
    one = open_s3_store(
        client=s3_client, bucket=bucket, prefix="a", default_retention_days=0, create_bucket=True
    )
    two = open_s3_store(client=s3_client, bucket=bucket, prefix="b/", default_retention_days=0)
    ref = one.put_bytes(b"only in a")
    assert list(one.iter_hashes()) == [ref.sha256]
    assert list(two.iter_hashes()) == []
    assert not two.exists(ref.sha256)
