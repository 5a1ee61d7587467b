"""Ingest: store raw evidence, normalize it, and record assets and facts in one unit of work."""

from __future__ import annotations

import getpass
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from claimready import __version__
from claimready.app import App
from claimready.assets.service import IdentityIndex
from claimready.connectors.base import Connector, EvidenceFile, Normalized
from claimready.connectors.registry import detect_connector, get_connector
from claimready.db.engine import transaction
from claimready.errors import InputError, NotFoundError
from claimready.evidence.models import (
    OBSERVED_FROM_COLLECTION,
    OBSERVED_FROM_CONTENT,
    OBSERVED_FROM_USER,
    Evidence,
)
from claimready.evidence.normalization import Normalization, Summary, normalize_file
from claimready.facts import store as fact_store
from claimready.facts.store import FactWriter
from claimready.ledger.records import encode_record, evidence_collected
from claimready.sources import service as sources
from claimready.tenants import service as tenants
from claimready.timeutil import utcnow

HEAD_BYTES = 4096


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What one ingest stored, for the CLI and scripts."""

    tenant: str
    connector: str
    detected: bool
    evidence_id: int
    sha256: str
    size: int
    duplicate: bool
    record_count: int
    fact_count: int
    asset_count: int
    observed_to: datetime
    observed_origin: str
    collected_at: datetime
    ledger_index: int | None
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def default_collector() -> str:
    """``user@host`` of whoever runs the import, plus the claimready version."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()} (claimready {__version__})"


def choose_connector(*, path: Path, source_kind: str | None) -> tuple[Connector, bool]:
    """The connector named by ``source_kind``, or the one that recognizes the file."""
    if source_kind:
        return get_connector(source_kind), False
    with path.open("rb") as handle:
        head = handle.read(HEAD_BYTES)
    return detect_connector(name=path.name, head=head), True


def _check_readable(path: Path) -> int:
    try:
        if not path.is_file():
            raise InputError("no such file", file=path)
        with path.open("rb"):
            pass
        return path.stat().st_size
    except PermissionError as exc:
        raise InputError("permission denied", file=path) from exc


def ingest_file(
    *,
    app: App,
    tenant_slug: str,
    path: Path,
    source_kind: str | None = None,
    source_name: str | None = None,
    observed_at: datetime | None = None,
    collector: str | None = None,
) -> IngestResult:
    """Store ``path`` as evidence of the tenant and derive its facts; all or nothing.

    Order: normalize the whole file (nothing is written if any record is bad),
    write the blob (atomic and content-addressed, so a retry reuses it), then
    one database transaction that enters the evidence in the ledger and records
    it, its assets and its fact files. Fact files written for a transaction
    that does not commit are removed again.
    """
    size = _check_readable(path)
    with transaction(app.sessions) as session:
        tenants.get_by_slug_or_raise(session=session, slug=tenant_slug)
    connector, detected = choose_connector(path=path, source_kind=source_kind)
    collected_at = utcnow()
    normalization = normalize_file(
        connector=connector,
        evidence=EvidenceFile(path=path, display_name=str(path), size=size),
        observed_at=observed_at,
        collected_at=collected_at,
    )
    blob = app.blobs.put_file(path)
    request = _Request(
        tenant_slug=tenant_slug,
        path=path,
        connector=connector,
        detected=detected,
        source_name=source_name,
        observed_at=observed_at,
        collected_at=collected_at,
        collector=collector or default_collector(),
        sha256=blob.sha256,
        size=blob.size,
    )
    written: list[str] = []
    try:
        with transaction(app.sessions) as session:
            result = _record(
                session=session,
                app=app,
                request=request,
                normalization=normalization,
                written=written,
            )
    except BaseException:
        fact_store.remove_files(facts_dir=app.settings.facts_dir, files=written)
        raise
    _compact_crowded_days(app=app, tenant_slug=tenant_slug)
    return result


@dataclass(frozen=True, slots=True)
class _Request:
    tenant_slug: str
    path: Path
    connector: Connector
    detected: bool
    source_name: str | None
    observed_at: datetime | None
    collected_at: datetime
    collector: str
    sha256: str
    size: int


def _record(
    *,
    session: Session,
    app: App,
    request: _Request,
    normalization: Normalization,
    written: list[str],
) -> IngestResult:
    tenant = tenants.get_by_slug_or_raise(session=session, slug=request.tenant_slug)
    existing = session.scalars(
        select(Evidence).where(Evidence.tenant_id == tenant.id, Evidence.sha256 == request.sha256)
    ).one_or_none()
    if existing is not None:
        return _result(request, existing, notes=[], assets=0, duplicate=True)
    summary = normalization.summary
    source = sources.get_or_create(
        session=session, tenant_id=tenant.id, kind=request.connector.kind, name=request.source_name
    )
    origin, described = _observed(
        summary, given=request.observed_at, collected_at=request.collected_at
    )
    evidence = Evidence(
        tenant_id=tenant.id,
        source_id=source.id,
        sha256=request.sha256,
        size=request.size,
        media_type=summary.media_type,
        original_name=request.path.name,
        connector=request.connector.kind,
        connector_version=request.connector.version,
        collector=request.collector,
        collected_at=request.collected_at,
        observed_from=summary.observed_from,
        observed_to=described,
        observed_origin=origin,
        record_count=summary.record_count,
        fact_count=summary.fact_count,
        warnings=[
            {"record": w.record, "field": w.field, "message": w.message} for w in summary.warnings
        ],
    )
    session.add(evidence)
    session.flush()
    _enter_in_ledger(app=app, request=request, evidence=evidence, source_name=source.name)
    assets = _store_facts(
        session=session,
        app=app,
        tenant_id=tenant.id,
        evidence=evidence,
        normalization=normalization,
        written=written,
    )
    source.last_evidence_at = request.collected_at
    session.flush()
    return _result(
        request,
        evidence,
        notes=summary.notes,
        assets=assets,
        duplicate=False,
        warning_count=summary.warning_count,
    )


def _store_facts(
    *,
    session: Session,
    app: App,
    tenant_id: int,
    evidence: Evidence,
    normalization: Normalization,
    written: list[str],
) -> int:
    """Reconcile assets and write facts batch by batch; return how many assets were seen.

    The files written are added to ``written`` so the caller can remove them
    should the transaction not commit.
    """
    index = IdentityIndex.load(session=session, tenant_id=tenant_id)
    writer = FactWriter(
        facts_dir=app.settings.facts_dir,
        tenant_id=tenant_id,
        evidence_id=evidence.id,
        ledger_index=evidence.ledger_index,
    )
    seen: set[int] = set()
    try:
        for batch in normalization.batches():
            keys = {o.key: index.reconcile(o) for o in batch.observations}
            real = index.flush(session)
            keys = {k: real.get(a, a) for k, a in keys.items()}
            seen.update(keys.values())
            _add_facts(writer, batch, keys)
        files = writer.close()
    except BaseException:
        writer.abort()
        raise
    written.extend(f.path for f in files)
    fact_store.register(session=session, tenant_id=tenant_id, files=files)
    session.flush()
    return len(seen)


def _add_facts(writer: FactWriter, batch: Normalized, keys: dict[str, int]) -> None:
    try:
        writer.add_facts(batch.facts, keys)
    except KeyError as exc:
        raise InputError(
            f"a fact names asset {exc.args[0]!r}, which the connector did not describe"
        ) from exc


def _compact_crowded_days(*, app: App, tenant_slug: str) -> None:
    with transaction(app.sessions) as session:
        tenant = tenants.get_by_slug_or_raise(session=session, slug=tenant_slug)
        days = fact_store.crowded_days(session=session, tenant_id=tenant.id)
    for day in days:
        fact_store.compact(
            sessions=app.sessions, tenant_id=tenant.id, facts_dir=app.settings.facts_dir, day=day
        )


def _enter_in_ledger(*, app: App, request: _Request, evidence: Evidence, source_name: str) -> None:
    """Append the custody record and wait for a signed checkpoint that covers it.

    The stored time is when that checkpoint was published. Should the database
    transaction then fail, the entry stays in the ledger (it is append-only):
    it records a collection whose evidence blob exists but which nothing cites.
    """
    record = evidence_collected(
        actor=request.collector,
        tenant=request.tenant_slug,
        blob_sha256=evidence.sha256,
        size=evidence.size,
        media_type=evidence.media_type,
        source_kind=request.connector.kind,
        source_name=source_name,
        tool=request.connector.title,
        tool_version=f"claimready connector {request.connector.kind} {request.connector.version}",
        collector=request.collector,
        observed_from=evidence.observed_from or evidence.observed_to,
        observed_to=evidence.observed_to,
        collected_at=evidence.collected_at,
    )
    with app.open_ledger(request.tenant_slug) as ledger:
        index = ledger.append(encode_record(record))
        ledger.wait_for(index)
    evidence.ledger_index = index
    evidence.stored_at = utcnow()


def _observed(
    summary: Summary, *, given: datetime | None, collected_at: datetime
) -> tuple[str, datetime]:
    if given is not None:
        return OBSERVED_FROM_USER, given
    if summary.observed_to is not None:
        return OBSERVED_FROM_CONTENT, summary.observed_to
    return OBSERVED_FROM_COLLECTION, collected_at


def _result(
    request: _Request,
    evidence: Evidence,
    *,
    notes: list[str],
    assets: int,
    duplicate: bool,
    warning_count: int | None = None,
) -> IngestResult:
    shown = [
        f"record {w['record']}: field {w['field']!r}: {w['message']}" for w in evidence.warnings
    ]
    hidden = (warning_count or len(shown)) - len(shown)
    if hidden > 0:
        shown.append(f"... and {hidden} more warnings")
    return IngestResult(
        tenant=request.tenant_slug,
        connector=evidence.connector,
        detected=request.detected,
        evidence_id=evidence.id,
        sha256=evidence.sha256,
        size=evidence.size,
        duplicate=duplicate,
        record_count=evidence.record_count,
        fact_count=evidence.fact_count,
        asset_count=assets,
        observed_to=evidence.observed_to,
        observed_origin=evidence.observed_origin,
        collected_at=evidence.collected_at,
        ledger_index=evidence.ledger_index,
        warnings=shown,
        notes=notes,
    )


def get_evidence_or_raise(*, session: Session, tenant_id: int, evidence_id: int) -> Evidence:
    """The tenant's evidence record ``evidence_id``; NotFoundError for any other id."""
    evidence = session.get(Evidence, evidence_id)
    if evidence is None or evidence.tenant_id != tenant_id:
        raise NotFoundError(f"no evidence {evidence_id} for this tenant")
    return evidence


def list_evidence(*, session: Session, tenant_id: int) -> Sequence[Evidence]:
    """Every evidence record of the tenant, oldest first."""
    query = select(Evidence).where(Evidence.tenant_id == tenant_id).order_by(Evidence.id)
    return session.scalars(query).all()
