"""Published ledger objects in S3-compatible object storage.

Objects live at ``<prefix>/<tenant>/<object path>`` (for example
``ledger/v1/acme/tile/0/x001/234``). Every write is one whole-object PUT with
a SHA-256 checksum the server verifies, so a reader sees the old object or
the new one, never a mix.

Object Lock: a bucket with Object Lock gives every object version its default
retention. Tiles, entry bundles and ``checkpoints/<size>`` are written once
(a recovery may put identical bytes again, which only adds an identical
version), so they belong in such a bucket. The latest-checkpoint object
``checkpoint`` is overwritten at every integration; in a locked bucket each
overwrite would be a new version retained for the full period. It therefore
goes to ``latest_bucket``, a bucket without Object Lock, and a locked bucket
without one is refused. ``checkpoint`` is only a convenience pointer:
``checkpoints/<size>`` in the locked bucket stays the record of every tree
head, and :func:`claimready.ledger.verify.verify_log` checks the pointer
against it.

The boto3 client is passed in (build it with
:func:`claimready.blobs.s3.make_s3_client`); boto3 clients are thread-safe,
so verification reads through it from several threads.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from claimready.errors import ConfigError, StorageError
from claimready.ledger.log import CHECKPOINT_PATH

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

__all__ = ["S3Storage", "bucket_has_object_lock"]

_MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
#: PUTs in flight at once in :meth:`S3Storage.write_many`.
_PARALLEL_PUTS = 8


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def bucket_has_object_lock(client: S3Client, bucket: str) -> bool:
    """Whether ``bucket`` has Object Lock enabled (raises StorageError if it cannot tell)."""
    try:
        config = client.get_object_lock_configuration(Bucket=bucket)
    except ClientError as exc:
        if _error_code(exc) == "ObjectLockConfigurationNotFoundError":
            return False
        raise StorageError(
            f"s3://{bucket}: cannot read the Object Lock configuration: {exc}"
        ) from exc
    except BotoCoreError as exc:
        raise StorageError(f"s3://{bucket}: cannot reach the object store: {exc}") from exc
    return config.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"


def _check_segment(value: str, label: str) -> str:
    stripped = value.strip("/")
    if stripped and any(part in ("", ".", "..") for part in stripped.split("/")):
        raise ConfigError(f"ledger {label} {value!r} has an empty, '.' or '..' segment")
    return stripped


class S3Storage:
    """:class:`~claimready.ledger.storage.Storage` on an S3 bucket, one tenant per prefix."""

    def __init__(
        self,
        *,
        client: S3Client,
        bucket: str,
        tenant: str,
        prefix: str = "",
        latest_bucket: str | None = None,
        object_lock: bool | None = None,
    ) -> None:
        """Store a tenant's objects under ``<prefix>/<tenant>/`` in ``bucket``.

        ``latest_bucket`` (without Object Lock) receives the overwritten
        ``checkpoint`` object; it is required when ``bucket`` has Object Lock.
        ``object_lock`` skips asking the server whether it does.
        """
        if not _check_segment(tenant, "tenant"):
            raise ConfigError("ledger tenant is empty")
        self.client = client
        self.bucket = bucket
        self.latest_bucket = latest_bucket or bucket
        self.base = "/".join(p for p in (_check_segment(prefix, "prefix"), tenant.strip("/")) if p)
        locked = bucket_has_object_lock(client, bucket) if object_lock is None else object_lock
        if locked and latest_bucket is None:
            raise ConfigError(
                f"bucket {bucket!r} has Object Lock: every overwrite of the latest "
                "checkpoint would be retained; give a latest_bucket without Object Lock"
            )

    def key_for(self, path: str) -> str:
        """The object key of ``path``."""
        parts = path.split("/")
        if not path or any(part in ("", ".", "..") for part in parts):
            raise StorageError(f"{path}: not a relative object path")
        return f"{self.base}/{path}"

    def _bucket_for(self, path: str) -> str:
        return self.latest_bucket if path == CHECKPOINT_PATH else self.bucket

    def _where(self, path: str) -> str:
        return f"s3://{self._bucket_for(path)}/{self.key_for(path)}"

    def read(self, path: str) -> bytes | None:
        """The object's bytes, or None if it does not exist."""
        key = self.key_for(path)
        try:
            response = self.client.get_object(Bucket=self._bucket_for(path), Key=key)
            with response["Body"] as body:
                return body.read()
        except ClientError as exc:
            if _error_code(exc) in _MISSING_CODES:
                return None
            raise StorageError(f"{self._where(path)}: cannot read: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"{self._where(path)}: cannot read: {exc}") from exc

    def write(self, path: str, data: bytes) -> None:
        """Store ``data`` at ``path`` with one PUT (atomic), checked by its SHA-256."""
        checksum = base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")
        try:
            self.client.put_object(
                Bucket=self._bucket_for(path),
                Key=self.key_for(path),
                Body=data,
                ChecksumSHA256=checksum,
            )
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"{self._where(path)}: cannot write: {exc}") from exc

    def write_many(
        self, objects: Sequence[tuple[str, bytes]], *, then: Sequence[tuple[str, bytes]] = ()
    ) -> None:
        """PUT ``objects`` concurrently; once all have succeeded, PUT each of ``then`` in turn.

        A PUT is durable when it returns, so an object of ``then`` is only
        stored after every object before it. The first failure is raised
        after every PUT of ``objects`` has finished.
        """
        if len(objects) > 1:
            with ThreadPoolExecutor(min(_PARALLEL_PUTS, len(objects))) as puts:
                futures = [puts.submit(self.write, path, data) for path, data in objects]
            for future in futures:
                future.result()
        else:
            for path, data in objects:
                self.write(path, data)
        for path, data in then:
            self.write(path, data)

    def exists(self, path: str) -> bool:
        """Whether an object exists at ``path``."""
        try:
            self.client.head_object(Bucket=self._bucket_for(path), Key=self.key_for(path))
        except ClientError as exc:
            if _error_code(exc) in _MISSING_CODES:
                return False
            raise StorageError(f"{self._where(path)}: cannot check: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"{self._where(path)}: cannot check: {exc}") from exc
        return True

    def list(self, prefix: str) -> list[str]:
        """Paths of every object under the directory ``prefix``, sorted."""
        start = len(self.base) + 1
        found: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.key_for(prefix) + "/"):
                found.extend(item["Key"][start:] for item in page.get("Contents", []))
        except (ClientError, BotoCoreError) as exc:
            where = f"s3://{self.bucket}/{self.key_for(prefix)}"
            raise StorageError(f"{where}: cannot list: {exc}") from exc
        return sorted(found)
