"""Scheduled live collection: fetch from each declared source when due, then check silence.

Runs in-process (``claimready collect --loop``); each tenant's sources are
independent, so several collector processes may each take a share of tenants.
A failing source is reported and retried next cycle; it never stops the others.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePath

import httpx
import pluggy

from claimready.app import App
from claimready.connectors.registry import get_connector
from claimready.errors import ClaimreadyError, UsageError
from claimready.evidence.service import IngestItem, IngestResult, ingest_files
from claimready.sources.config import SourceConfig, load_sources
from claimready.sources.status import record_silence, statuses
from claimready.timeutil import utcnow


@dataclass
class CycleReport:
    """What one collection cycle did."""

    collected: list[IngestResult] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    silent: list[str] = field(default_factory=list)


def collect_source(
    *,
    app: App,
    tenant_slug: str,
    source: SourceConfig,
    http: httpx.Client,
    manager: pluggy.PluginManager | None = None,
) -> list[IngestResult]:
    """Collect once from one declared source and ingest what it returned."""
    if source.collect is None:
        raise UsageError(f"source {source.name!r} of {tenant_slug!r} declares no collect section")
    connector = get_connector(source.kind, manager)
    where = f"{app.settings.effective_sources_file}: tenants.{tenant_slug}.{source.name}"
    secrets = source.collect.secret_values(where=where)
    items = connector.collect(settings=source.collect.settings, secrets=secrets, http=http)
    collector = f"claimready live collector ({connector.kind})"
    with tempfile.TemporaryDirectory(prefix="claimready-collect-") as folder:
        files = []
        for number, item in enumerate(items):
            # A folder per item, so items of the same name keep their own file.
            path = Path(folder) / str(number) / PurePath(item.name).name
            path.parent.mkdir()
            path.write_bytes(item.data)
            files.append(IngestItem(path, connector.kind, source.name, None, collector))
        return ingest_files(app=app, tenant_slug=tenant_slug, items=files)


def _due(app: App, tenant_slug: str, source: SourceConfig, now: datetime) -> bool:
    if source.collect is None:
        return False
    for status in statuses(app=app, tenant_slug=tenant_slug, now=now):
        if status.name == source.name and status.last_evidence_at is not None:
            return now - status.last_evidence_at >= source.collect.interval
    return True


def run_cycle(
    *,
    app: App,
    http: httpx.Client,
    tenant: str | None = None,
    source: str | None = None,
    force: bool = False,
    now: Callable[[], datetime] = utcnow,
    manager: pluggy.PluginManager | None = None,
) -> CycleReport:
    """Collect every due source (or every source with ``force``), then record silences."""
    declared = load_sources(app.settings.effective_sources_file)
    slugs = [tenant] if tenant else sorted(declared.tenants)
    report = CycleReport()
    for slug in slugs:
        for item in declared.for_tenant(slug):
            if item.collect is None or (source and item.name != source):
                continue
            if not force and not _due(app, slug, item, now()):
                continue
            try:
                report.collected.extend(
                    collect_source(
                        app=app, tenant_slug=slug, source=item, http=http, manager=manager
                    )
                )
            except (ClaimreadyError, httpx.HTTPError) as exc:
                report.failures.append(f"{slug}/{item.name}: {exc}")
        report.silent.extend(
            f"{slug}/{s.name}" for s in record_silence(app=app, tenant_slug=slug, now=now())
        )
    return report


def run_loop(
    *,
    app: App,
    http: httpx.Client,
    every: float,
    cycles: int | None,
    stop: threading.Event,
    on_cycle: Callable[[CycleReport], None],
    tenant: str | None = None,
) -> int:
    """Run a cycle every ``every`` seconds until stopped or ``cycles`` ran; return how many."""
    done = 0
    while not stop.is_set() and (cycles is None or done < cycles):
        on_cycle(run_cycle(app=app, http=http, tenant=tenant))
        done += 1
        if cycles is not None and done >= cycles:
            break
        stop.wait(every)
    return done
