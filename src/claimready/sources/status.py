"""Source status and silence: is each declared source still reporting?"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from claimready.app import App
from claimready.connectors.builtin.silence import FORMAT
from claimready.db.engine import transaction
from claimready.evidence.models import Evidence
from claimready.evidence.service import ingest_file
from claimready.sources.config import SourceConfig, load_sources
from claimready.sources.models import Source
from claimready.tenants import service as tenants
from claimready.timeutil import format_utc

SILENCE_SOURCE = "claimready-silence"


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """What is known about one source of one tenant."""

    tenant: str
    name: str
    kind: str
    declared: bool
    evidence: int
    last_evidence_at: datetime | None
    expect_every: str | None
    silent: bool

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        data = asdict(self)
        data["last_evidence_at"] = (
            None if self.last_evidence_at is None else format_utc(self.last_evidence_at)
        )
        return data


def _is_silent(last: datetime | None, expected: timedelta | None, now: datetime) -> bool:
    return expected is not None and (last is None or now - last > expected)


def statuses(*, app: App, tenant_slug: str, now: datetime) -> list[SourceStatus]:
    """Every source of the tenant, declared or seen, with its silence status at ``now``."""
    declared = {
        s.name: s for s in load_sources(app.settings.effective_sources_file).for_tenant(tenant_slug)
    }
    with transaction(app.sessions) as session:
        tenant = tenants.get_by_slug_or_raise(session=session, slug=tenant_slug)
        rows = session.execute(
            select(Source.name, Source.kind, Source.last_evidence_at, func.count(Evidence.id))
            .outerjoin(Evidence, Evidence.source_id == Source.id)
            .where(Source.tenant_id == tenant.id)
            .group_by(Source.id)
        ).all()
    seen = {name: (kind, last, count) for name, kind, last, count in rows}
    result = []
    for name in sorted(set(seen) | set(declared)):
        config = declared.get(name)
        kind, last, count = seen.get(name, (config.kind if config else "", None, 0))
        expected = config.expected_interval if config else None
        result.append(
            SourceStatus(
                tenant=tenant_slug,
                name=name,
                kind=kind,
                declared=config is not None,
                evidence=count,
                last_evidence_at=last,
                expect_every=config.expect_every if config else None,
                silent=_is_silent(last, expected, now),
            )
        )
    return result


def record_silence(*, app: App, tenant_slug: str, now: datetime) -> list[SourceStatus]:
    """Ingest a silence record for every declared source that is silent at ``now``.

    A source already recorded silent within its expected interval is not recorded again.
    """
    declared = {
        s.name: s for s in load_sources(app.settings.effective_sources_file).for_tenant(tenant_slug)
    }
    recorded = []
    for status in statuses(app=app, tenant_slug=tenant_slug, now=now):
        config = declared.get(status.name)
        if not status.silent or config is None or _recently_recorded(app, tenant_slug, config, now):
            continue
        _ingest_silence(app=app, tenant_slug=tenant_slug, config=config, status=status, now=now)
        recorded.append(status)
    return recorded


def _record_name(config: SourceConfig, now: datetime) -> str:
    return f"{config.name}-silence-{now.strftime('%Y%m%dT%H%M%SZ')}.json"


def _recently_recorded(app: App, tenant_slug: str, config: SourceConfig, now: datetime) -> bool:
    expected = config.expected_interval or timedelta(0)
    with transaction(app.sessions) as session:
        tenant = tenants.get_by_slug_or_raise(session=session, slug=tenant_slug)
        latest = session.scalar(
            select(func.max(Evidence.observed_to)).where(
                Evidence.tenant_id == tenant.id,
                Evidence.connector == "silence",
                Evidence.original_name.startswith(f"{config.name}-silence-"),
            )
        )
    return latest is not None and now - latest < expected


def _ingest_silence(
    *, app: App, tenant_slug: str, config: SourceConfig, status: SourceStatus, now: datetime
) -> None:
    expected = config.expected_interval or timedelta(0)
    document = {
        "format": FORMAT,
        "tenant": tenant_slug,
        "source": {"name": config.name, "kind": config.kind},
        "expected_every_seconds": int(expected.total_seconds()),
        "last_evidence_at": None
        if status.last_evidence_at is None
        else format_utc(status.last_evidence_at),
        "checked_at": format_utc(now),
    }
    with tempfile.TemporaryDirectory(prefix="claimready-silence-") as folder:
        path = Path(folder) / _record_name(config, now)
        path.write_text(json.dumps(document, sort_keys=True))
        ingest_file(
            app=app,
            tenant_slug=tenant_slug,
            path=path,
            source_kind="silence",
            source_name=SILENCE_SOURCE,
            collector="claimready silence check",
        )
