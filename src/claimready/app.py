"""The application context: settings plus the stores built from them, created on demand."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from claimready.blobs.base import BlobStore
from claimready.blobs.factory import open_blob_store
from claimready.db.engine import make_engine, session_factory
from claimready.db.migrate import require_current
from claimready.ledger.checkpoint import make_origin
from claimready.ledger.keys import KeyRing
from claimready.ledger.log import Ledger
from claimready.ledger.storage import FileStorage
from claimready.settings import Settings


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

    def ledger_storage(self, tenant_slug: str) -> FileStorage:
        """Where the tenant's published ledger objects (tiles, bundles, checkpoints) live."""
        return FileStorage(self.settings.ledger_dir / tenant_slug)

    def open_ledger(self, tenant_slug: str) -> Ledger:
        """Open (creating on first use) the tenant's ledger; close it when done."""
        return Ledger.open(
            directory=self.settings.ledger_dir / tenant_slug,
            origin=self.origin(tenant_slug),
            keyring=self.keyring,
        )

    def close(self) -> None:
        """Release database connections."""
        if "engine" in self.__dict__:
            self.engine.dispose()
