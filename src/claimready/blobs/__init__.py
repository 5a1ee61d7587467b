"""Content-addressed storage for raw evidence (SHA-256), with retention and legal hold.

:func:`open_blob_store` opens the configured store: a local directory, or
S3-compatible object storage with Object Lock. Both implement
:class:`BlobStore`.
"""

from __future__ import annotations

from claimready.blobs.base import BlobRef, BlobStat, BlobStore
from claimready.blobs.factory import open_blob_store

__all__ = ["BlobRef", "BlobStat", "BlobStore", "open_blob_store"]
