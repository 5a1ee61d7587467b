"""Verify a tenant's evidence end to end: ledger structure, blobs, and the database's records.

The ledger proves entries were not changed; re-hashing proves blobs still
match the hashes the ledger holds; the cross-check proves every evidence
record the database cites has its ledger entry, naming the same blob.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select

from claimready.app import App
from claimready.blobs.verify import rehash_blobs
from claimready.db.engine import transaction
from claimready.errors import VerificationError
from claimready.evidence.models import Evidence
from claimready.ledger.log import CHECKPOINT_PATH
from claimready.ledger.records import EVIDENCE_COLLECTED, decode_record
from claimready.ledger.storage import Storage
from claimready.ledger.tiles import TILE_WIDTH, decode_bundle, entries_path
from claimready.ledger.verify import verify_log
from claimready.tenants import service as tenants


@dataclass(frozen=True, slots=True)
class TenantVerification:
    """What a successful verification of one tenant covered."""

    tenant: str
    entries: int
    checkpoints: int
    tiles: int
    blobs: int
    evidence: int
    root: str
    timestamps: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def read_entry(storage: Storage, *, index: int, size: int) -> bytes:
    """Entry ``index`` of a log of ``size`` entries, from its entry bundle."""
    tile = index // TILE_WIDTH
    width = min(TILE_WIDTH, size - tile * TILE_WIDTH)
    path = entries_path(tile, width)
    data = storage.read(path)
    if data is None:
        raise VerificationError("entry bundle is missing", subject=path)
    entries = decode_bundle(data, path=path)
    position = index - tile * TILE_WIDTH
    if position >= len(entries):
        raise VerificationError(f"has no entry {index}", subject=path)
    return entries[position]


def verify_tenant(*, app: App, tenant_slug: str, rehash: bool = True) -> TenantVerification:
    """Verify the tenant's ledger, re-hash its blobs, and cross-check its evidence records."""
    storage = app.ledger_storage(tenant_slug)
    with transaction(app.sessions) as session:
        tenant = tenants.get_by_slug_or_raise(session=session, slug=tenant_slug)
        rows = session.execute(
            select(Evidence.id, Evidence.sha256, Evidence.ledger_index).where(
                Evidence.tenant_id == tenant.id
            )
        ).all()
    if storage.read(CHECKPOINT_PATH) is None:
        if rows:
            raise VerificationError(
                f"{len(rows)} evidence records but no ledger", subject=f"tenant {tenant_slug}"
            )
        return TenantVerification(tenant_slug, 0, 0, 0, 0, 0, "")
    certificates = app.timestamp_certificates
    report = verify_log(
        storage=storage,
        origin=app.origin(tenant_slug),
        verifiers=app.keyring.verifiers(),
        timestamp_roots=[c for c in certificates if c.issuer == c.subject],
        timestamp_intermediates=[c for c in certificates if c.issuer != c.subject],
        require_timestamps=bool(app.settings.tsa_url),
    )
    for evidence_id, sha256, index in rows:
        subject = f"evidence {evidence_id}"
        if index is None or index >= report.size:
            raise VerificationError("is not covered by the ledger's checkpoint", subject=subject)
        record = decode_record(read_entry(storage, index=index, size=report.size))
        if record.get("type") != EVIDENCE_COLLECTED or record["blob"]["sha256"] != sha256:
            raise VerificationError(
                f"ledger entry {index} does not record blob {sha256}", subject=subject
            )
    # Blobs of the records the database cites (each now proven to be in the ledger),
    # re-hashed in parallel across processes.
    digests = sorted({sha256 for _, sha256, _ in rows})
    blobs = rehash_blobs(app.blobs, digests=digests).blobs if rehash else 0
    return TenantVerification(
        tenant=tenant_slug,
        entries=report.size,
        checkpoints=report.checkpoints,
        tiles=report.tiles,
        blobs=blobs,
        evidence=len(rows),
        root=report.root.hex(),
        timestamps=report.timestamps,
    )
