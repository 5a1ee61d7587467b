"""``claimready sources``, ``claimready collect`` and ``claimready facts``."""

from __future__ import annotations

import signal
import threading
from dataclasses import asdict
from datetime import datetime
from typing import Annotated

import httpx
import typer
from rich.table import Table

from claimready.app import App
from claimready.assets import service as assets
from claimready.cli.options import JsonOption, TenantOption
from claimready.cli.output import emit_json, stdout, warn
from claimready.connectors import catalog
from claimready.db.engine import transaction
from claimready.facts.query import list_facts
from claimready.facts.store import fact_paths
from claimready.sources.collect import CycleReport, run_cycle, run_loop
from claimready.sources.status import record_silence, statuses
from claimready.tenants import service as tenants
from claimready.timeutil import format_utc, parse_duration, utcnow

cli = typer.Typer(
    help="Sources: status, silence, and live collection.", invoke_without_command=True
)
HTTP_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


def register(root: typer.Typer) -> None:
    """Add the commands to the root command."""
    root.add_typer(cli, name="sources")
    root.command("collect")(collect)
    root.command("facts")(facts)
    root.command("connectors")(connectors)


@cli.callback()
def sources(ctx: typer.Context, tenant: TenantOption, json_output: JsonOption = False) -> None:
    """List the tenant's sources: kind, evidence count, last evidence, and silence."""
    if ctx.invoked_subcommand is not None:
        ctx.meta["tenant"] = tenant
        return
    app: App = ctx.obj
    rows = statuses(app=app, tenant_slug=tenant, now=utcnow())
    if json_output:
        emit_json([r.as_dict() for r in rows])
        return
    table = Table(title=f"sources of {tenant}")
    for column in ("source", "kind", "evidence", "last evidence", "expected", "status"):
        table.add_column(column)
    for r in rows:
        last = format_utc(r.last_evidence_at) if r.last_evidence_at else "never"
        state = "[bold red]silent[/]" if r.silent else ("ok" if r.expect_every else "-")
        table.add_row(r.name, r.kind, str(r.evidence), last, r.expect_every or "-", state)
    stdout().print(table)
    if not rows:
        stdout().print(
            "no sources yet: ingest a file, or declare them in "
            f"{app.settings.effective_sources_file}"
        )


@cli.command("check")
def check(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """Record a source.silent fact (as ledgered evidence) for every declared source gone quiet."""
    app: App = ctx.obj
    tenant = ctx.meta["tenant"]
    recorded = record_silence(app=app, tenant_slug=tenant, now=utcnow())
    if json_output:
        emit_json([r.as_dict() for r in recorded])
        return
    for r in recorded:
        since = format_utc(r.last_evidence_at) if r.last_evidence_at else "never reported"
        stdout().print(f"recorded: {r.name} is silent (last evidence {since})", markup=False)
    if not recorded:
        stdout().print("no silent sources to record", markup=False)


def _print_cycle(report: CycleReport) -> None:
    for result in report.collected:
        stdout().print(
            f"collected {result.tenant}: evidence {result.evidence_id} from {result.connector} "
            f"({result.record_count} records, {result.fact_count} facts)",
            markup=False,
        )
    for name in report.silent:
        warn(f"{name} is silent; recorded as a source.silent fact")
    for failure in report.failures:
        warn(f"collection failed: {failure}")


def collect(
    ctx: typer.Context,
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="Only this tenant")] = None,
    source: Annotated[str | None, typer.Option(help="Only this source (by name)")] = None,
    loop: Annotated[bool, typer.Option(help="Keep running on schedule until interrupted")] = False,
    every: Annotated[str, typer.Option(help="With --loop: how often to check schedules")] = "60s",
    cycles: Annotated[int | None, typer.Option(help="With --loop: stop after this many")] = None,
    json_output: JsonOption = False,
) -> None:
    """Collect from the live sources declared in the sources file, then check for silence.

    Without --loop, collects every declared live source once, due or not.
    """
    app: App = ctx.obj
    with httpx.Client(timeout=HTTP_TIMEOUT, follow_redirects=False) as http:
        if not loop:
            report = run_cycle(app=app, http=http, tenant=tenant, source=source, force=True)
            _emit_cycle(report, json_output=json_output)
            if report.failures:
                raise typer.Exit(1)
            return
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        run_loop(
            app=app,
            http=http,
            every=parse_duration(every).total_seconds(),
            cycles=cycles,
            stop=stop,
            on_cycle=lambda r: _emit_cycle(r, json_output=json_output),
            tenant=tenant,
        )


def _emit_cycle(report: CycleReport, *, json_output: bool) -> None:
    if json_output:
        emit_json(
            {
                "collected": [
                    {"tenant": r.tenant, "evidence_id": r.evidence_id, "sha256": r.sha256}
                    for r in report.collected
                ],
                "silent": report.silent,
                "failures": report.failures,
            }
        )
    else:
        _print_cycle(report)


def facts(
    ctx: typer.Context,
    tenant: TenantOption,
    asset: Annotated[int | None, typer.Option(help="Asset id")] = None,
    signal_name: Annotated[
        str | None, typer.Option("--signal", help="Signal name or prefix, e.g. edr or edr.healthy")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1_000_000)] = 100,
    json_output: JsonOption = False,
) -> None:
    """Show derived facts, newest first, with the evidence and ledger entry each came from."""
    app: App = ctx.obj
    with transaction(app.sessions) as session:
        record = tenants.get_by_slug_or_raise(session=session, slug=tenant)
        files = fact_paths(session=session, tenant_id=record.id, facts_dir=app.settings.facts_dir)
        names = {a.id: a.display_name for a in assets.get_all(session=session, tenant_id=record.id)}
    rows = list_facts(
        files=files, tenant_id=record.id, asset_id=asset, signal=signal_name, limit=limit
    )
    if json_output:
        emit_json([asdict(r) | {"asset": names.get(r.asset_id)} for r in rows])
        return
    table = Table(title=f"facts of {tenant}")
    for column in ("asset", "signal", "value", "observed", "evidence", "ledger"):
        table.add_column(column)
    for r in rows:
        value = format_utc(r.value) if isinstance(r.value, datetime) else str(r.value)
        ledger = "-" if r.ledger_index is None else str(r.ledger_index)
        asset_name = f"{names.get(r.asset_id, '?')} (#{r.asset_id})"
        table.add_row(
            asset_name, r.signal, value, format_utc(r.observed_at), str(r.evidence_id), ledger
        )
    stdout().print(table)


def connectors(
    markdown_output: Annotated[
        bool, typer.Option("--markdown", help="Print the Markdown tables used in the docs")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """List the connectors: what each reads, the signals it emits, and its blind spots."""
    if markdown_output:
        stdout().print(catalog.markdown(), markup=False, end="", soft_wrap=True)
        return
    entries = catalog.catalog()
    if json_output:
        emit_json(entries)
        return
    table = Table(title="connectors")
    for column in ("kind", "tool", "reads", "signals", "live"):
        table.add_column(column)
    for e in entries:
        table.add_row(
            e["kind"],
            e["title"],
            "\n".join(e["formats"]),
            "\n".join(s["name"] for s in e["signals"]),
            "yes" if e["live"] else "-",
        )
    stdout().print(table)
