"""Blobs in S3-compatible object storage with Object Lock (write once, read many).

Objects live at ``<prefix>/sha256/<hex>`` in a versioned bucket with Object
Lock enabled. Each upload carries a SHA-256 checksum the server verifies, and
COMPLIANCE-mode retention from the store's default period, which nobody (not
even the account root) can shorten or remove before it expires. Retention is
extended with ``PutObjectRetention``; legal holds are placed and released with
``PutObjectLegalHold``.

The boto3 client is always passed in; :func:`make_s3_client` builds one from
explicit settings. Nothing here talks to the network at import time.
"""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Final, NoReturn, cast

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from claimready.blobs.base import (
    CHUNK_SIZE,
    BlobRef,
    BlobStat,
    BlobStore,
    Readable,
    check_retention_days,
    check_sha256,
    default_retain_until,
    hash_stream,
    is_sha256,
)
from claimready.errors import (
    ConfigError,
    ConflictError,
    InputError,
    NotFoundError,
    StorageError,
    VerificationError,
)
from claimready.timeutil import ensure_utc

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_s3.literals import BucketLocationConstraintType
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef, HeadObjectOutputTypeDef

__all__ = ["BATCH_THREADS", "DEFAULT_PART_SIZE", "S3BlobStore", "make_s3_client", "open_s3_store"]

#: Objects larger than this are uploaded in parts of this size.
DEFAULT_PART_SIZE = 8 * 1024 * 1024
#: Concurrent uploads in :meth:`S3BlobStore.put_files`.
BATCH_THREADS = 8
#: S3's smallest allowed part (all but the last).
MIN_PART_SIZE = 5 * 1024 * 1024
LOCK_MODE: Final = "COMPLIANCE"
LAYOUT_DIR = "sha256"
_MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchVersion"})


def make_s3_client(
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    session_token: str | None = None,
    path_style: bool | None = None,
) -> S3Client:
    """Build an S3 client from explicit settings.

    Credentials left as ``None`` come from boto3's usual chain (environment,
    shared files, instance role). Path-style addressing is used by default
    when an ``endpoint_url`` is given, as most S3-compatible servers expect.
    """
    session = boto3.session.Session(
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        aws_session_token=session_token,
        region_name=region,
    )
    use_path = endpoint_url is not None if path_style is None else path_style
    config = Config(
        signature_version="s3v4",
        s3={"addressing_style": "path" if use_path else "auto"},
        retries={"mode": "standard", "max_attempts": 5},
    )
    return session.client("s3", endpoint_url=endpoint_url, config=config)


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def _bucket_has_object_lock(client: S3Client, *, bucket: str, create: bool) -> bool:
    """Whether ``bucket`` has Object Lock; create it (with Object Lock) if asked and missing."""
    try:
        config = client.get_object_lock_configuration(Bucket=bucket)
    except ClientError as exc:
        code = _error_code(exc)
        if code == "ObjectLockConfigurationNotFoundError":
            return False
        if code == "NoSuchBucket" and create:
            _create_locked_bucket(client, bucket=bucket)
            return True
        if code == "NoSuchBucket":
            raise ConfigError(
                f"bucket {bucket!r} does not exist; create it with Object Lock enabled "
                "or ask for it to be created"
            ) from exc
        raise StorageError(
            f"s3://{bucket}: cannot read the Object Lock configuration: {exc}"
        ) from exc
    except BotoCoreError as exc:
        raise StorageError(f"s3://{bucket}: cannot reach the object store: {exc}") from exc
    lock = config.get("ObjectLockConfiguration", {})
    return lock.get("ObjectLockEnabled") == "Enabled"


def _create_locked_bucket(client: S3Client, *, bucket: str) -> None:
    """Create a versioned bucket with Object Lock enabled."""
    region = client.meta.region_name
    try:
        if region and region != "us-east-1":
            client.create_bucket(
                Bucket=bucket,
                ObjectLockEnabledForBucket=True,
                CreateBucketConfiguration={
                    "LocationConstraint": cast("BucketLocationConstraintType", region)
                },
            )
        else:
            client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    except (ClientError, BotoCoreError) as exc:
        raise StorageError(f"s3://{bucket}: cannot create the bucket: {exc}") from exc


def open_s3_store(
    *,
    client: S3Client,
    bucket: str,
    prefix: str = "",
    default_retention_days: int,
    create_bucket: bool = False,
    require_object_lock: bool | None = None,
    part_size: int = DEFAULT_PART_SIZE,
) -> S3BlobStore:
    """Check (or create) the bucket and return a store on it.

    Object Lock is required whenever ``default_retention_days`` is positive
    (or ``require_object_lock`` is true): a bucket without it is refused with
    :class:`~claimready.errors.ConfigError`, since retention there would be a
    promise nobody enforces. A missing bucket is created, with Object Lock, only
    when ``create_bucket`` is true.
    """
    days = check_retention_days(default_retention_days)
    required = days > 0 if require_object_lock is None else require_object_lock
    locked = _bucket_has_object_lock(client, bucket=bucket, create=create_bucket)
    if required and not locked:
        raise ConfigError(
            f"bucket {bucket!r} does not have Object Lock enabled; evidence retention "
            "needs a versioned bucket with Object Lock (create one with "
            "ObjectLockEnabledForBucket, or enable Object Lock on this bucket)"
        )
    return S3BlobStore(
        client=client,
        bucket=bucket,
        prefix=prefix,
        default_retention_days=days,
        object_lock=locked,
        part_size=part_size,
    )


class _BodyReader(io.RawIOBase):
    """Adapts an HTTP response body to a raw stream, so it can be buffered."""

    def __init__(self, body: Readable) -> None:
        super().__init__()
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        view = memoryview(buffer).cast("B")
        data = self._body.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        if callable(close):
            close()
        super().close()


@dataclass(frozen=True, slots=True)
class _Upload:
    """What was uploaded, and the checksum the server should report for it."""

    ref: BlobRef
    checksum: str


class S3BlobStore(BlobStore):
    """A content-addressed blob store in one S3 bucket under a key prefix.

    Use :func:`open_s3_store` to check the bucket first; the constructor itself
    makes no request.
    """

    def __init__(
        self,
        *,
        client: S3Client,
        bucket: str,
        prefix: str = "",
        default_retention_days: int,
        object_lock: bool = True,
        part_size: int = DEFAULT_PART_SIZE,
    ) -> None:
        """A store on ``bucket`` whose objects are named ``<prefix>/sha256/<hex>``."""
        if part_size < MIN_PART_SIZE:
            raise InputError(
                f"part size {part_size} is below the S3 minimum of {MIN_PART_SIZE} bytes",
                field="part_size",
            )
        self._client = client
        self._bucket = bucket
        self._base = "/".join(p for p in (prefix.strip("/"), LAYOUT_DIR) if p)
        self._default_days = check_retention_days(default_retention_days)
        self._object_lock = object_lock
        self._part_size = part_size

    def __repr__(self) -> str:
        return f"S3BlobStore('s3://{self._bucket}/{self._base}')"

    @property
    def bucket(self) -> str:
        """The bucket holding the blobs."""
        return self._bucket

    def key_for(self, sha256: str) -> str:
        """The object key of the blob named ``sha256``."""
        return f"{self._base}/{check_sha256(sha256)}"

    # -- errors -----------------------------------------------------------------

    def _fail(self, exc: Exception, *, action: str, key: str) -> NoReturn:
        where = f"s3://{self._bucket}/{key}"
        if isinstance(exc, ClientError) and _error_code(exc) in _MISSING_CODES:
            raise NotFoundError(f"blob {key.rsplit('/', 1)[-1]} is not stored at {where}") from exc
        raise StorageError(f"{where}: cannot {action}: {exc}") from exc

    @contextmanager
    def _errors(self, action: str, key: str) -> Iterator[None]:
        try:
            yield
        except (ClientError, BotoCoreError) as exc:
            self._fail(exc, action=action, key=key)

    # -- writing ----------------------------------------------------------------

    def put_file(self, path: str | PathLike[str]) -> BlobRef:
        """Store the file at ``path``: hash it, then upload it in parts if it is large."""
        source = Path(path)
        try:
            stream = source.open("rb")
        except OSError as exc:
            raise InputError(f"cannot read: {exc.strerror or exc}", file=source) from exc
        with stream:
            return self._put_stream(stream, name=str(source))

    def put_bytes(self, data: bytes) -> BlobRef:
        """Store ``data``; return its name and size."""
        return self._put_stream(io.BytesIO(data), name="data")

    def put_files(self, paths: Sequence[str | PathLike[str]]) -> list[BlobRef]:
        """Store several files, up to :data:`BATCH_THREADS` uploads at a time.

        Each upload is complete and verified (as in :meth:`put_file`) when its
        request returns, so every blob is stored when this returns. If one
        fails, the others may already be stored; storing them again is a no-op.
        """
        if len(paths) <= 1:
            return [self.put_file(path) for path in paths]
        with ThreadPoolExecutor(min(BATCH_THREADS, len(paths))) as pool:
            return list(pool.map(self.put_file, paths))

    def _put_stream(self, stream: BinaryIO, *, name: str) -> BlobRef:
        ref = hash_stream(stream)
        if self.exists(ref.sha256):
            return ref
        stream.seek(0)
        key = self.key_for(ref.sha256)
        until = default_retain_until(self._default_days) if self._object_lock else None
        lock = (
            {}
            if until is None
            else {"ObjectLockMode": LOCK_MODE, "ObjectLockRetainUntilDate": until}
        )
        with self._errors("upload", key):
            if ref.size <= self._part_size:
                upload = self._put_single(stream, ref=ref, key=key, lock=lock)
            else:
                upload = self._put_multipart(stream, ref=ref, key=key, lock=lock)
        if upload.ref != ref:
            raise StorageError(f"{name} changed while it was being stored; store it again")
        self._verify_upload(upload, key=key, retain_until=until)
        return ref

    def _put_single(
        self, stream: BinaryIO, *, ref: BlobRef, key: str, lock: dict[str, Any]
    ) -> _Upload:
        data = stream.read(self._part_size + 1)
        digest = hashlib.sha256(data).digest()
        sent = BlobRef(sha256=digest.hex(), size=len(data))
        if sent != ref:
            return _Upload(ref=sent, checksum="")
        self._client.put_object(
            Bucket=self._bucket,
            Key=key,
            Body=data,
            ChecksumAlgorithm="SHA256",
            ChecksumSHA256=_b64(digest),
            **lock,
        )
        return _Upload(ref=ref, checksum=_b64(digest))

    def _put_multipart(
        self, stream: BinaryIO, *, ref: BlobRef, key: str, lock: dict[str, Any]
    ) -> _Upload:
        created = self._client.create_multipart_upload(
            Bucket=self._bucket, Key=key, ChecksumAlgorithm="SHA256", **lock
        )
        upload_id = created["UploadId"]
        try:
            sent, parts, composite = self._upload_parts(stream, key=key, upload_id=upload_id)
            if sent == ref:
                self._client.complete_multipart_upload(
                    Bucket=self._bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                )
        except BaseException:
            self._abort(key, upload_id=upload_id)
            raise
        if sent != ref:
            self._abort(key, upload_id=upload_id)
            return _Upload(ref=sent, checksum="")
        return _Upload(ref=ref, checksum=f"{composite}-{len(parts)}")

    def _abort(self, key: str, *, upload_id: str) -> None:
        """Abandon a multipart upload so its parts are not billed or left behind."""
        with suppress(ClientError, BotoCoreError):
            self._client.abort_multipart_upload(Bucket=self._bucket, Key=key, UploadId=upload_id)

    def _upload_parts(
        self, stream: BinaryIO, *, key: str, upload_id: str
    ) -> tuple[BlobRef, list[CompletedPartTypeDef], str]:
        """Upload ``stream`` part by part; return what was sent and the composite checksum."""
        whole = hashlib.sha256()
        of_parts = hashlib.sha256()
        parts: list[CompletedPartTypeDef] = []
        size = 0
        while chunk := stream.read(self._part_size):
            digest = hashlib.sha256(chunk).digest()
            whole.update(chunk)
            of_parts.update(digest)
            size += len(chunk)
            number = len(parts) + 1
            answer = self._client.upload_part(
                Bucket=self._bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                Body=chunk,
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=_b64(digest),
            )
            parts.append(
                {"PartNumber": number, "ETag": answer["ETag"], "ChecksumSHA256": _b64(digest)}
            )
        sent = BlobRef(sha256=whole.hexdigest(), size=size)
        return sent, parts, _b64(of_parts.digest())

    def _verify_upload(self, upload: _Upload, *, key: str, retain_until: datetime | None) -> None:
        """Check what the server stored: size, SHA-256 checksum, and retention.

        A server that ignored the retention headers (some do for multipart
        uploads) gets the retention applied explicitly.
        """
        head = self._head(key, checksum=True)
        if head["ContentLength"] != upload.ref.size:
            raise StorageError(
                f"s3://{self._bucket}/{key}: stored {head['ContentLength']} bytes, "
                f"sent {upload.ref.size}"
            )
        reported = head.get("ChecksumSHA256")
        if reported is not None and reported.split("-")[0] != upload.checksum.split("-")[0]:
            raise VerificationError(
                f"the server reports SHA-256 checksum {reported} for s3://{self._bucket}/{key}, "
                f"but {upload.checksum} was sent",
                subject=f"blob {upload.ref.sha256}",
            )
        stored = head.get("ObjectLockRetainUntilDate")
        if retain_until is not None and (stored is None or ensure_utc(stored) < retain_until):
            self._put_retention(key, until=retain_until, version_id=head.get("VersionId"))

    # -- reading ----------------------------------------------------------------

    def _head(self, key: str, *, checksum: bool = False) -> HeadObjectOutputTypeDef:
        with self._errors("read", key):
            if checksum:
                return self._client.head_object(
                    Bucket=self._bucket, Key=key, ChecksumMode="ENABLED"
                )
            return self._client.head_object(Bucket=self._bucket, Key=key)

    def open(self, sha256: str) -> BinaryIO:
        """A buffered binary stream over the object's current version."""
        key = self.key_for(sha256)
        with self._errors("read", key):
            body = self._client.get_object(Bucket=self._bucket, Key=key)["Body"]
        return io.BufferedReader(_BodyReader(body), buffer_size=CHUNK_SIZE)

    def exists(self, sha256: str) -> bool:
        """Whether the object exists (its current version is not a delete marker)."""
        try:
            self._head(self.key_for(sha256))
        except NotFoundError:
            return False
        return True

    def stat(self, sha256: str) -> BlobStat:
        """Size, ``LastModified``, retention date and legal hold from one HEAD request.

        Reading retention and hold this way needs the ``s3:GetObjectRetention``
        and ``s3:GetObjectLegalHold`` permissions.
        """
        digest = check_sha256(sha256)
        head = self._head(self.key_for(digest))
        until = head.get("ObjectLockRetainUntilDate")
        return BlobStat(
            sha256=digest,
            size=head["ContentLength"],
            stored_at=ensure_utc(head["LastModified"]) if "LastModified" in head else None,
            retain_until=None if until is None else ensure_utc(until),
            legal_hold=head.get("ObjectLockLegalHoldStatus") == "ON",
        )

    def iter_hashes(self) -> Iterator[str]:
        """Blob names in ascending order, listed page by page."""
        paginator = self._client.get_paginator("list_objects_v2")
        start = len(self._base) + 1
        with self._errors("list", f"{self._base}/"):
            for page in paginator.paginate(Bucket=self._bucket, Prefix=f"{self._base}/"):
                for item in page.get("Contents", []):
                    name = item["Key"][start:]
                    if is_sha256(name):
                        yield name

    # -- retention, hold, delete ------------------------------------------------

    def _require_object_lock(self, what: str) -> None:
        if not self._object_lock:
            raise ConfigError(
                f"bucket {self._bucket!r} does not have Object Lock enabled; cannot {what}"
            )

    def _put_retention(self, key: str, *, until: datetime, version_id: str | None) -> None:
        with self._errors("set retention on", key):
            if version_id:
                self._client.put_object_retention(
                    Bucket=self._bucket,
                    Key=key,
                    VersionId=version_id,
                    Retention={"Mode": LOCK_MODE, "RetainUntilDate": until},
                )
            else:
                self._client.put_object_retention(
                    Bucket=self._bucket,
                    Key=key,
                    Retention={"Mode": LOCK_MODE, "RetainUntilDate": until},
                )

    def _store_retention(self, sha256: str, until: datetime) -> None:
        self._require_object_lock("set a retention date")
        self._put_retention(self.key_for(sha256), until=until, version_id=None)

    def set_legal_hold(self, sha256: str, *, on: bool) -> None:
        """Place or release a legal hold on the object's current version."""
        self._require_object_lock("place or release a legal hold")
        key = self.key_for(sha256)
        self._head(key)
        with self._errors("set the legal hold on", key):
            self._client.put_object_legal_hold(
                Bucket=self._bucket, Key=key, LegalHold={"Status": "ON" if on else "OFF"}
            )

    def _remove(self, sha256: str) -> None:
        """Delete every version of the object; the server refuses locked versions."""
        key = self.key_for(sha256)
        paginator = self._client.get_paginator("list_object_versions")
        try:
            for page in paginator.paginate(Bucket=self._bucket, Prefix=key):
                entries = [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
                for entry in entries:
                    if entry.get("Key") == key and "VersionId" in entry:
                        self._client.delete_object(
                            Bucket=self._bucket, Key=key, VersionId=entry["VersionId"]
                        )
        except ClientError as exc:
            if _error_code(exc) == "AccessDenied":
                raise ConflictError(
                    f"s3://{self._bucket}/{key}: the object store refused to delete a version "
                    "(it is still locked or access is denied)"
                ) from exc
            self._fail(exc, action="delete", key=key)
        except BotoCoreError as exc:
            self._fail(exc, action="delete", key=key)
