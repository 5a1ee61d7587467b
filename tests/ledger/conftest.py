"""Ledger fixtures: a real S3-protocol server (moto) on loopback.

The S3 tests talk HTTP to a moto server bound to 127.0.0.1 through boto3 with
an endpoint URL and dummy credentials; nothing reaches the internet.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator

import pytest
from moto.server import ThreadedMotoServer
from mypy_boto3_s3.client import S3Client

from claimready.blobs.s3 import make_s3_client

DUMMY_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
}

MakeBucket = Callable[..., str]


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


@pytest.fixture
def make_bucket(s3_client: S3Client) -> MakeBucket:
    """Creates a fresh bucket (optionally with Object Lock) and returns its name."""

    def make(*, object_lock: bool = False) -> str:
        name = f"claimready-ledger-{uuid.uuid4().hex[:16]}"
        s3_client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=object_lock)
        return name

    return make
