"""``init``, ``upgrade``, ``ingest`` and ``report``."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from claimready.app import App
from claimready.cli.options import JsonOption, TenantOption, parse_moment
from claimready.cli.output import emit_json, progress, stdout, warn
from claimready.cli.render import print_report
from claimready.db.engine import transaction
from claimready.db.migrate import head_revision, upgrade
from claimready.evidence.service import IngestItem, IngestResult, ingest_files
from claimready.reports.service import build_report
from claimready.tenants import service as tenants
from claimready.timeutil import format_utc


def register(cli: typer.Typer) -> None:
    """Add these commands to the root command."""
    cli.command("init")(init)
    cli.command("upgrade")(upgrade_command)
    cli.command("ingest")(ingest)
    cli.command("report")(report)


def init(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """Create the data directory and the database schema (safe to run again)."""
    app: App = ctx.obj
    settings = app.settings
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    before, after = upgrade(app.engine)
    app.keyring.signer()  # generated on first init, kept 0600
    summary = {
        "data_dir": str(settings.data_dir),
        "database": app.engine.url.render_as_string(hide_password=True),
        "schema_before": before,
        "schema": after,
        "blob_store": settings.effective_blob_store,
        "ledger": str(settings.ledger_dir),
        "vkey": app.keyring.current_vkey(),
    }
    if json_output:
        emit_json(summary)
        return
    state = "already up to date" if before == after else f"migrated to {after}"
    console = stdout()
    console.print(f"data directory  {summary['data_dir']}", markup=False, soft_wrap=True)
    console.print(f"database        {summary['database']} ({state})", markup=False, soft_wrap=True)
    console.print(f"evidence blobs  {summary['blob_store']}", markup=False, soft_wrap=True)
    console.print(f"ledger          {summary['ledger']}", markup=False, soft_wrap=True)
    console.print(f"verifier key    {summary['vkey']}", markup=False, soft_wrap=True)
    console.print("next: claimready tenant add SLUG", markup=False)


def upgrade_command(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """Apply database migrations shipped with this version."""
    app: App = ctx.obj
    before, after = upgrade(app.engine)
    if json_output:
        emit_json({"schema_before": before, "schema": after, "head": head_revision()})
    else:
        stdout().print(f"schema {before or 'empty'} -> {after}", markup=False)


def ingest(
    ctx: typer.Context,
    paths: Annotated[
        list[Path], typer.Argument(metavar="FILE...", help="Evidence files exported from a tool.")
    ],
    tenant: TenantOption,
    source: Annotated[
        str | None,
        typer.Option(help="Source kind, e.g. defender [default: detected from the file]"),
    ] = None,
    source_name: Annotated[
        str | None, typer.Option(help="Name of this tool instance [default: the kind]")
    ] = None,
    observed_at: Annotated[
        str | None,
        typer.Option(help="The time the export describes, for older exports (ISO 8601 with zone)"),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Store evidence files in the tenant's ledger and derive facts from them.

    Each file is one batch: it is ingested whole or not at all.
    """
    app: App = ctx.obj
    moment = parse_moment(observed_at, option="--observed-at")
    items = [IngestItem(path, source, source_name, moment) for path in paths]
    with progress(enabled=not json_output and len(paths) > 1) as bar:
        task = bar.add_task("ingesting", total=len(paths))
        results = ingest_files(
            app=app, tenant_slug=tenant, items=items, on_result=lambda _r: bar.advance(task)
        )
    if json_output:
        emit_json([asdict(r) for r in results])
        return
    for result in results:
        _print_ingest(result)


def _print_ingest(result: IngestResult) -> None:
    console = stdout()
    how = "detected" if result.detected else "given"
    if result.duplicate:
        console.print(
            f"already stored: evidence {result.evidence_id} (sha256 {result.sha256[:16]}…)",
            markup=False,
        )
        return
    console.print(
        f"stored evidence {result.evidence_id}  sha256 {result.sha256}  "
        f"({result.size} bytes, source {result.connector}, {how}), ledger entry "
        f"{result.ledger_index}",
        markup=False,
        soft_wrap=True,
    )
    console.print(
        f"  {result.record_count} records -> {result.asset_count} assets, "
        f"{result.fact_count} facts; describes {format_utc(result.observed_to)} "
        f"(from {result.observed_origin})",
        markup=False,
        soft_wrap=True,
    )
    for note in result.notes:
        warn(note)
    for warning in result.warnings:
        warn(warning)


def report(ctx: typer.Context, tenant: TenantOption, json_output: JsonOption = False) -> None:
    """Print each control's latest result with the assets and evidence it rests on."""
    app: App = ctx.obj
    with transaction(app.sessions) as session:
        record = tenants.get_by_slug_or_raise(session=session, slug=tenant)
        data = build_report(app=app, session=session, tenant=record)
    if json_output:
        emit_json(data)
        return
    if not data["controls"]:
        stdout().print(f"no evaluations yet; run: claimready evaluate --tenant {tenant}")
        return
    print_report(data)
