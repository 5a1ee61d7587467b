"""The application context: settings plus the stores built from them, created on demand."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from claimready.blobs.base import BlobStore
from claimready.blobs.factory import open_blob_store
from claimready.blobs.s3 import make_s3_client
from claimready.db.engine import make_engine, session_factory
from claimready.db.migrate import require_current
from claimready.errors import ConfigError
from claimready.ledger.checkpoint import make_origin
from claimready.ledger.keys import KeyRing
from claimready.ledger.log import Ledger
from claimready.ledger.s3storage import S3Storage
from claimready.ledger.storage import FileStorage, Storage
from claimready.ledger.timestamp import TimestampAuthority, Timestamper, load_certificates
from claimready.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client


@dataclass
class App:
    """Everything a command needs, built lazily so that ``--help`` touches no store."""

    settings: Settings
    _checked: bool = field(default=False, init=False)

    @cached_property
    def engine(self) -> Engine:
        """The relational store's engine."""
        return make_engine(self.settings.effective_database_url)

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        """Session factory for the relational store (schema checked on first use)."""
        if not self._checked:
            require_current(self.engine)
            self._checked = True
        return session_factory(self.engine)

    @cached_property
    def blobs(self) -> BlobStore:
        """The evidence blob store."""
        return open_blob_store(
            self.settings.effective_blob_store,
            default_retention_days=self.settings.retention_days,
            endpoint_url=self.settings.s3_endpoint_url,
        )

    @cached_property
    def keyring(self) -> KeyRing:
        """The deployment's ledger signing key ring (one key signs every tenant's log)."""
        return KeyRing(self.settings.keys_dir, name=f"{self.settings.deployment}/claimready")

    def origin(self, tenant_slug: str) -> str:
        """The ledger origin of a tenant: ``<deployment>/claimready/<tenant>``."""
        return make_origin(deployment=self.settings.deployment, tenant=tenant_slug)

    def ledger_storage(self, tenant_slug: str) -> Storage:
        """Where the tenant's published ledger objects (tiles, bundles, checkpoints) live.

        The sequencing file and locks always stay in ``<data_dir>/ledger/<tenant>``.
        """
        url = self.settings.ledger_store
        if not url:
            return FileStorage(self.settings.ledger_dir / tenant_slug)
        parts = urlsplit(url)
        if parts.scheme != "s3":
            return FileStorage(Path(url.removeprefix("file://")).expanduser() / tenant_slug)
        if not parts.netloc:
            raise ConfigError(
                f"ledger store {url!r}: an s3 URL needs a bucket (s3://bucket/prefix)"
            )
        return S3Storage(
            client=self.s3_client,
            bucket=parts.netloc,
            tenant=tenant_slug,
            prefix=parts.path.strip("/"),
            latest_bucket=self.settings.ledger_latest_bucket,
        )

    @cached_property
    def s3_client(self) -> S3Client:
        """The S3 client for an S3 ledger store (usual AWS credential chain)."""
        return make_s3_client(endpoint_url=self.settings.s3_endpoint_url)

    @cached_property
    def timestamp_certificates(self) -> tuple[x509.Certificate, ...]:
        """Trust anchors (and intermediates) for RFC 3161 timestamps; empty if none are set."""
        path = self.settings.tsa_roots
        if path is None:
            if self.settings.tsa_url:
                raise ConfigError("tsa_url needs tsa_roots: the PEM certificates it chains to")
            return ()
        try:
            return load_certificates(path.read_bytes())
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read tsa_roots: {exc.strerror}") from exc

    def _timestamper(self) -> Timestamper | None:
        if not self.settings.tsa_url:
            return None
        certificates = self.timestamp_certificates
        authority = TimestampAuthority(
            url=self.settings.tsa_url,
            roots=tuple(c for c in certificates if c.issuer == c.subject),
            intermediates=tuple(c for c in certificates if c.issuer != c.subject),
        )
        return Timestamper(authority=authority, client=self.http)

    @cached_property
    def http(self) -> httpx.Client:
        """The one HTTP client for outbound calls (timestamp authority)."""
        return httpx.Client(timeout=httpx.Timeout(30.0, connect=10.0))

    def open_ledger(self, tenant_slug: str) -> Ledger:
        """Open (creating on first use) the tenant's ledger; close it when done.

        With a timestamp authority configured, every new checkpoint is stamped.
        """
        return Ledger.open(
            directory=self.settings.ledger_dir / tenant_slug,
            origin=self.origin(tenant_slug),
            keyring=self.keyring,
            storage=self.ledger_storage(tenant_slug),
            timestamper=self._timestamper(),
        )

    def close(self) -> None:
        """Release database connections and the HTTP client."""
        if "engine" in self.__dict__:
            self.engine.dispose()
        if "http" in self.__dict__:
            self.http.close()
