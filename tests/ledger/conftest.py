"""Ledger fixtures: a real S3-protocol server (moto) on loopback.

The S3 tests talk HTTP to a moto server bound to 127.0.0.1 through boto3 with
an endpoint URL and dummy credentials; nothing reaches the internet.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from mypy_boto3_s3.client import S3Client

MakeBucket = Callable[..., str]


@pytest.fixture
def make_bucket(s3_client: S3Client) -> MakeBucket:
    """Creates a fresh bucket (optionally with Object Lock) and returns its name."""

    def make(*, object_lock: bool = False) -> str:
        name = f"claimready-ledger-{uuid.uuid4().hex[:16]}"
        s3_client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=object_lock)
        return name

    return make
