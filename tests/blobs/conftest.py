"""Blob store fixtures: a real S3-protocol server on loopback and per-backend stores.

The S3 tests talk HTTP to a moto server bound to 127.0.0.1, through boto3 with
an endpoint URL, using dummy credentials; nothing reaches the internet.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from mypy_boto3_s3.client import S3Client

from claimready.blobs.base import BlobStore
from claimready.blobs.local import LocalBlobStore
from claimready.blobs.s3 import S3BlobStore, open_s3_store
from tests.blobs.blob_support import MakeStore, Tamper, new_bucket_name

BACKENDS = ("local", "s3")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The name of the backend under test."""
    return str(request.param)


@pytest.fixture
def make_store(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> MakeStore:
    """A factory of fresh stores of the backend under test (the S3 server starts on demand)."""

    def make(*, default_retention_days: int = 1) -> BlobStore:
        if backend == "local":
            root = tmp_path / f"blobs-{uuid.uuid4().hex[:8]}"
            return LocalBlobStore(root, default_retention_days=default_retention_days)
        client: S3Client = request.getfixturevalue("s3_client")
        return open_s3_store(
            client=client,
            bucket=new_bucket_name(),
            prefix="evidence/v1",
            default_retention_days=default_retention_days,
            create_bucket=True,
        )

    return make


@pytest.fixture
def tamper(request: pytest.FixtureRequest) -> Tamper:
    """Changes a stored blob's bytes the way an attacker with storage access could."""

    def change(store: BlobStore, sha256: str) -> None:
        if isinstance(store, LocalBlobStore):
            path = store.path_for(sha256)
            path.chmod(0o644)
            data = bytearray(path.read_bytes())
            data[len(data) // 2] ^= 0x01
            path.write_bytes(bytes(data))
            return
        assert isinstance(store, S3BlobStore)
        client: S3Client = request.getfixturevalue("s3_client")
        # Object Lock protects the stored version, but a versioned bucket still
        # accepts a newer version under the same key; that is what readers see.
        client.put_object(Bucket=store.bucket, Key=store.key_for(sha256), Body=b"forged evidence")

    return change
