"""Blob store fixtures: a real S3-protocol server on loopback and per-backend stores.

The S3 tests talk HTTP to a moto server bound to 127.0.0.1, through boto3 with
an endpoint URL, using dummy credentials; nothing reaches the internet.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from moto.server import ThreadedMotoServer
from mypy_boto3_s3.client import S3Client

from claimready.blobs.base import BlobStore
from claimready.blobs.local import LocalBlobStore
from claimready.blobs.s3 import S3BlobStore, make_s3_client, open_s3_store
from tests.blobs.blob_support import MakeStore, Tamper, new_bucket_name

BACKENDS = ("local", "s3")
DUMMY_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
}


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """URL of an S3-protocol server (moto) listening on a free loopback port."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in DUMMY_AWS_ENV.items():
            patch.setenv(name, value)
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            yield f"http://{host}:{port}"
        finally:
            server.stop()


@pytest.fixture(scope="session")
def s3_client(s3_endpoint: str) -> S3Client:
    """A boto3 client for the loopback server, with dummy credentials."""
    return make_s3_client(
        endpoint_url=s3_endpoint,
        region="us-east-1",
        access_key_id=DUMMY_AWS_ENV["AWS_ACCESS_KEY_ID"],
        secret_access_key=DUMMY_AWS_ENV["AWS_SECRET_ACCESS_KEY"],
    )


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
