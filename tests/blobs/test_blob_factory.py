"""Opening a store from its configured location."""

from __future__ import annotations

from pathlib import Path

import pytest
from mypy_boto3_s3.client import S3Client

from claimready.blobs import open_blob_store
from claimready.blobs.local import LocalBlobStore
from claimready.blobs.s3 import S3BlobStore
from claimready.errors import ConfigError
from tests.blobs.blob_support import new_bucket_name


def test_plain_path_opens_a_local_store(tmp_path: Path) -> None:
    store = open_blob_store(str(tmp_path / "blobs"), default_retention_days=1)
    assert isinstance(store, LocalBlobStore)
    assert store.root == tmp_path / "blobs"


def test_file_url_opens_a_local_store(tmp_path: Path) -> None:
    target = tmp_path / "with space"
    store = open_blob_store(f"file://{target}".replace(" ", "%20"), default_retention_days=1)
    assert isinstance(store, LocalBlobStore)
    assert store.root == target
    ref = store.put_bytes(b"x")
    assert store.path_for(ref.sha256).is_file()


def test_s3_url_opens_an_object_locked_store(aws_endpoint: str) -> None:
    bucket = new_bucket_name()
    store = open_blob_store(
        f"s3://{bucket}/claimready/evidence",
        default_retention_days=1,
        endpoint_url=aws_endpoint,
        region="us-east-1",
        create_bucket=True,
    )
    assert isinstance(store, S3BlobStore)
    ref = store.put_bytes(b"through the factory")
    assert store.key_for(ref.sha256) == f"claimready/evidence/sha256/{ref.sha256}"
    assert store.retention(ref.sha256) is not None


def test_s3_url_uses_a_given_client(s3_client: S3Client) -> None:
    bucket = new_bucket_name()
    store = open_blob_store(
        f"s3://{bucket}", default_retention_days=1, create_bucket=True, s3_client=s3_client
    )
    assert isinstance(store, S3BlobStore)
    assert store.key_for("a" * 64) == "sha256/" + "a" * 64


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://host/blobs", "unknown scheme 'ftp'"),
        ("gs://bucket/blobs", "unknown scheme 'gs'"),
        ("s3:///prefix-only", "needs a bucket"),
        ("file://fileserver/share/blobs", "local path"),
        ("", "empty"),
    ],
)
def test_bad_locations_raise_config_errors(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        open_blob_store(url, default_retention_days=1)
