"""Open the configured blob store from one location string."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from claimready.blobs.base import BlobStore
from claimready.blobs.local import LocalBlobStore
from claimready.errors import ConfigError

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

__all__ = ["open_blob_store"]

_LOCAL_HOSTS = frozenset({"", "localhost"})


def open_blob_store(
    url: str,
    *,
    default_retention_days: int,
    endpoint_url: str | None = None,
    region: str | None = None,
    create_bucket: bool = False,
    s3_client: S3Client | None = None,
) -> BlobStore:
    """Open the blob store at ``url``.

    ``url`` is a directory path, a ``file:///absolute/path`` URL, or
    ``s3://bucket/optional/prefix``. For S3, ``endpoint_url`` points at an
    S3-compatible server, ``region`` picks the region, and ``s3_client``
    replaces the client that would otherwise be built from both. New blobs are
    retained for ``default_retention_days`` days (0: no default retention).
    Any other scheme raises :class:`~claimready.errors.ConfigError`.
    """
    if "://" not in url:
        return _local(url, days=default_retention_days)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.netloc not in _LOCAL_HOSTS:
            raise ConfigError(f"blob store {url!r}: file URLs must name a local path (file:///...)")
        return _local(unquote(parts.path), days=default_retention_days)
    if scheme == "s3":
        if not parts.netloc:
            raise ConfigError(f"blob store {url!r}: an s3 URL needs a bucket (s3://bucket/prefix)")
        from claimready.blobs.s3 import make_s3_client, open_s3_store

        client = s3_client or make_s3_client(endpoint_url=endpoint_url, region=region)
        return open_s3_store(
            client=client,
            bucket=parts.netloc,
            prefix=unquote(parts.path).strip("/"),
            default_retention_days=default_retention_days,
            create_bucket=create_bucket,
        )
    raise ConfigError(
        f"blob store {url!r}: unknown scheme {parts.scheme!r}; use a directory, "
        "file:///path or s3://bucket/prefix"
    )


def _local(path: str, *, days: int) -> LocalBlobStore:
    if not path:
        raise ConfigError("blob store location is empty; give a directory or an s3:// URL")
    return LocalBlobStore(Path(path), default_retention_days=days)
