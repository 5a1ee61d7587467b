"""Ingest: store raw evidence, normalize it, and record assets and facts in one unit of work."""

from __future__ import annotations

import getpass
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from claimready import __version__
from claimready.app import App
from claimready.assets.service import IdentityIndex
from claimready.blobs.base import BlobRef
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
from claimready.evidence.normalization import KEEP_FACTS, Normalization, Summary, normalize_file
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


@dataclass(frozen=True, slots=True)
class IngestItem:
    """One file for :func:`ingest_files`, with the options :func:`ingest_file` takes."""

    path: Path
    source_kind: str | None = None
    source_name: str | None = None
    observed_at: datetime | None = None
    collector: str | None = None


#: Most files :func:`ingest_files` normalizes ahead and stores in one ``put_files``.
INGEST_GROUP_FILES = 256
#: A group also ends once the facts its files keep in memory pass this many, so
#: memory stays near what one large file's ingest takes (``KEEP_FACTS``).
_GROUP_KEPT_FACTS = KEEP_FACTS // 8


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
    item = IngestItem(path, source_kind, source_name, observed_at, collector)
    prepared = _prepare(item, size=size)
    blob = app.blobs.put_file(path)
    result = _commit(
        app=app,
        request=_request(tenant_slug=tenant_slug, prepared=prepared, blob=blob),
        prepared=prepared,
    )
    _compact_crowded_days(app=app, tenant_slug=tenant_slug)
    return result


def ingest_files(
    *,
    app: App,
    tenant_slug: str,
    items: Sequence[IngestItem],
    on_result: Callable[[IngestResult], None] | None = None,
) -> list[IngestResult]:
    """Ingest files in order, each exactly as :func:`ingest_file` does, storing blobs together.

    Files are normalized ahead in groups (up to :data:`INGEST_GROUP_FILES`,
    fewer once the facts they keep in memory add up); a group's
    blobs are stored with one ``put_files`` call (one pack and two fsyncs on
    a local store), the group's new files are entered in the ledger with one
    append and covered by one signed checkpoint, then each file is recorded
    in its own transaction. A file that fails stops the call: every file
    before it is ingested, it and the files after it are not (though their
    blobs may be stored, which a retry reuses, and the ledger keeps the
    custody entries of the group's files, naming blobs no evidence cites),
    and its error is raised. ``on_result`` is called with each result as it
    is recorded.
    """
    with transaction(app.sessions) as session:
        tenants.get_by_slug_or_raise(session=session, slug=tenant_slug)
    results: list[IngestResult] = []
    group: list[_Prepared] = []
    for item in items:
        try:
            prepared = _prepare(item, size=_check_readable(item.path))
        except Exception:
            _ingest_group(app=app, slug=tenant_slug, group=group, on=on_result)
            raise
        group.append(prepared)
        if len(group) == INGEST_GROUP_FILES or _kept_facts(group) > _GROUP_KEPT_FACTS:
            results += _ingest_group(app=app, slug=tenant_slug, group=group, on=on_result)
            group = []
    results += _ingest_group(app=app, slug=tenant_slug, group=group, on=on_result)
    return results


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A file normalized in full, ready to be stored and recorded."""

    item: IngestItem
    connector: Connector
    detected: bool
    collected_at: datetime
    normalization: Normalization


def _prepare(item: IngestItem, *, size: int) -> _Prepared:
    connector, detected = choose_connector(path=item.path, source_kind=item.source_kind)
    collected_at = utcnow()
    normalization = normalize_file(
        connector=connector,
        evidence=EvidenceFile(path=item.path, display_name=str(item.path), size=size),
        observed_at=item.observed_at,
        collected_at=collected_at,
    )
    return _Prepared(item, connector, detected, collected_at, normalization)


def _kept_facts(group: Sequence[_Prepared]) -> int:
    return sum(p.normalization.summary.fact_count for p in group if p.normalization.kept)


def _ingest_group(
    *,
    app: App,
    slug: str,
    group: Sequence[_Prepared],
    on: Callable[[IngestResult], None] | None,
) -> list[IngestResult]:
    """Store the group's blobs in one call, then record each file in turn.

    A lone file is stored as by :func:`ingest_file`: on a local store a pack
    of one blob would save nothing and give every reader one more index to load.
    """
    if not group:
        return []
    paths = [prepared.item.path for prepared in group]
    blobs = app.blobs.put_files(paths) if len(paths) > 1 else [app.blobs.put_file(paths[0])]
    requests = [
        _request(tenant_slug=slug, prepared=prepared, blob=blob)
        for prepared, blob in zip(group, blobs, strict=True)
    ]
    entered = _enter_group(app=app, slug=slug, group=group, requests=requests)
    indexes = _Indexes()
    results: list[IngestResult] = []
    for position, (prepared, request) in enumerate(zip(group, requests, strict=True)):
        results.append(
            _commit(
                app=app,
                request=request,
                prepared=prepared,
                entered=entered.get(position),
                indexes=indexes,
            )
        )
        if on is not None:
            on(results[-1])
    _compact_crowded_days(app=app, tenant_slug=slug)
    return results


def _request(*, tenant_slug: str, prepared: _Prepared, blob: BlobRef) -> _Request:
    item = prepared.item
    return _Request(
        tenant_slug=tenant_slug,
        path=item.path,
        connector=prepared.connector,
        detected=prepared.detected,
        source_name=item.source_name,
        observed_at=item.observed_at,
        collected_at=prepared.collected_at,
        collector=item.collector or default_collector(),
        sha256=blob.sha256,
        size=blob.size,
    )


def _commit(
    *,
    app: App,
    request: _Request,
    prepared: _Prepared,
    entered: _Entered | None = None,
    indexes: _Indexes | None = None,
) -> IngestResult:
    """One transaction: the evidence, its assets and fact files, and its ledger entry.

    ``entered`` is the ledger entry already appended for the file (see
    :func:`_enter_group`); without it the entry is appended here. ``indexes``
    keeps the tenant's identity index from one file of a group to the next.
    """
    written: list[str] = []
    try:
        with transaction(app.sessions) as session:
            return _record(
                session=session,
                app=app,
                request=request,
                normalization=prepared.normalization,
                written=written,
                entered=entered,
                indexes=indexes or _Indexes(),
            )
    except BaseException:
        fact_store.remove_files(facts_dir=app.settings.facts_dir, files=written)
        if indexes is not None:
            indexes.forget()  # it may hold what the failed transaction wrote
        raise


class _Indexes:
    """The tenant's identity index, loaded once and caught up in each later transaction."""

    def __init__(self) -> None:
        self._index: IdentityIndex | None = None

    def get(self, *, session: Session, tenant_id: int) -> IdentityIndex:
        """The index, read in full the first time and caught up after that."""
        if self._index is None or self._index.tenant_id != tenant_id:
            self._index = IdentityIndex.load(session=session, tenant_id=tenant_id)
        else:
            self._index.catch_up(session)
        return self._index

    def forget(self) -> None:
        """Read the index in full next time."""
        self._index = None


#: A file's ledger entry: its index and when a checkpoint first covered it.
_Entered = tuple[int, datetime]


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
    entered: _Entered | None,
    indexes: _Indexes,
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
    if entered is None:
        records = [_custody_record(request, summary)]
        (entered,) = _enter_in_ledger(app=app, tenant_slug=request.tenant_slug, records=records)
    evidence.ledger_index, evidence.stored_at = entered
    assets = _store_facts(
        session=session,
        app=app,
        index=indexes.get(session=session, tenant_id=tenant.id),
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
    index: IdentityIndex,
    evidence: Evidence,
    normalization: Normalization,
    written: list[str],
) -> int:
    """Reconcile assets and write facts batch by batch; return how many assets were seen.

    The files written are added to ``written`` so the caller can remove them
    should the transaction not commit.
    """
    tenant_id = index.tenant_id
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
        months = fact_store.months_to_merge(
            session=session,
            tenant_id=tenant.id,
            before=utcnow().date() - fact_store.MONTHS_SETTLE,
        )
    for day in days:
        fact_store.compact(
            sessions=app.sessions, tenant_id=tenant.id, facts_dir=app.settings.facts_dir, day=day
        )
    for month in months:
        fact_store.compact_month(
            sessions=app.sessions,
            tenant_id=tenant.id,
            facts_dir=app.settings.facts_dir,
            month=month,
        )
    fact_store.refresh_snapshots(
        sessions=app.sessions, tenant_id=tenant.id, facts_dir=app.settings.facts_dir
    )


def _enter_group(
    *, app: App, slug: str, group: Sequence[_Prepared], requests: Sequence[_Request]
) -> dict[int, _Entered]:
    """Enter the group's files not stored yet in the ledger: one append, one checkpoint.

    Returns the entry of each such file by its position in the group (the
    first of files with the same content). A file found stored, here or
    by its transaction, gets no entry.
    """
    with transaction(app.sessions) as session:
        tenant = tenants.get_by_slug_or_raise(session=session, slug=slug)
        digests = {request.sha256 for request in requests}
        stored = set(
            session.scalars(
                select(Evidence.sha256).where(
                    Evidence.tenant_id == tenant.id, Evidence.sha256.in_(digests)
                )
            )
        )
    first: dict[str, int] = {}
    for position, request in enumerate(requests):
        if request.sha256 not in stored:
            first.setdefault(request.sha256, position)
    positions = sorted(first.values())
    if not positions:
        return {}
    records = [_custody_record(requests[p], group[p].normalization.summary) for p in positions]
    entries = _enter_in_ledger(app=app, tenant_slug=slug, records=records)
    return dict(zip(positions, entries, strict=True))


def _custody_record(request: _Request, summary: Summary) -> bytes:
    """The ``evidence.collected`` entry of a file, as its evidence row will describe it."""
    _origin, described = _observed(
        summary, given=request.observed_at, collected_at=request.collected_at
    )
    record = evidence_collected(
        actor=request.collector,
        tenant=request.tenant_slug,
        blob_sha256=request.sha256,
        size=request.size,
        media_type=summary.media_type,
        source_kind=request.connector.kind,
        source_name=request.source_name or request.connector.kind,
        tool=request.connector.title,
        tool_version=f"claimready connector {request.connector.kind} {request.connector.version}",
        collector=request.collector,
        observed_from=summary.observed_from or described,
        observed_to=described,
        collected_at=request.collected_at,
    )
    return encode_record(record)


def _enter_in_ledger(*, app: App, tenant_slug: str, records: Sequence[bytes]) -> list[_Entered]:
    """Append the custody records (one sync) and wait for a signed checkpoint covering them.

    Each gets its index and the stored time, when that checkpoint was
    published. Should a database transaction then fail, its entry stays in
    the ledger (it is append-only): it records a collection whose evidence
    blob exists but which nothing cites; storing the file again enters it again.
    """
    with app.open_ledger(tenant_slug) as ledger:
        indexes = ledger.append_many(records)
        ledger.wait_for(indexes[-1])
    stored_at = utcnow()
    return [(index, stored_at) for index in indexes]


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
