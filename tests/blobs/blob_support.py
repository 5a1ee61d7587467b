"""Types shared by the blob store tests."""

from __future__ import annotations

import uuid
from typing import Protocol

from claimready.blobs.base import BlobStore


class MakeStore(Protocol):
    """Builds a fresh, empty store of the backend under test."""

    def __call__(self, *, default_retention_days: int = 1) -> BlobStore:
        """A new store whose blobs are retained for ``default_retention_days`` days."""
        ...


class Tamper(Protocol):
    """Changes a stored blob's bytes behind the store's back."""

    def __call__(self, store: BlobStore, sha256: str) -> None:
        """Replace the content stored under ``sha256`` with different bytes."""
        ...


def new_bucket_name() -> str:
    """A bucket name no other test uses."""
    return f"claimready-test-{uuid.uuid4().hex[:20]}"
