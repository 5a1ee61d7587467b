"""``evaluate``, ``gaps`` and ``controls list|show|tune|except``."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from claimready.app import App
from claimready.assets import service as asset_service
from claimready.cli.options import JsonOption, TenantOption, parse_moment
from claimready.cli.output import emit_json, status_text, stdout
from claimready.cli.render import evaluation_json, print_evaluation, print_gaps
from claimready.controls import service
from claimready.controls.pack import Control
from claimready.db.engine import transaction
from claimready.errors import UsageError
from claimready.evidence.service import default_collector
from claimready.frameworks.catalog import mapped_items
from claimready.tenants import service as tenants
from claimready.timeutil import format_utc, parse_duration, utcnow

cli = typer.Typer(help="The control pack: list, show, tune and grant exceptions.")

AsOfOption = Annotated[
    str | None,
    typer.Option("--as-of", help="The moment to evaluate (ISO 8601 with zone) [default: now]"),
]
WindowOption = Annotated[
    str, typer.Option("--window", help="How far back to evaluate, e.g. 90d, 12w, 48h")
]
StoredBeforeOption = Annotated[
    str | None,
    typer.Option(
        "--stored-before",
        help="Use only evidence the ledger stored before this moment (ISO 8601 with zone)",
    ),
]
ControlOption = Annotated[
    list[str] | None, typer.Option("--control", "-c", help="Only this control (repeatable)")
]


def register(root: typer.Typer) -> None:
    """Add these commands to the root command."""
    root.command("evaluate")(evaluate)
    root.command("gaps")(gaps)
    root.add_typer(cli, name="controls")


def _request(
    tenant: str,
    as_of: str | None,
    window: str,
    stored_before: str | None,
    controls: list[str] | None,
) -> service.EvaluateRequest:
    try:
        span = parse_duration(window)
    except ValueError as exc:
        raise UsageError(f"--window: {exc}") from exc
    return service.EvaluateRequest(
        tenant_slug=tenant,
        as_of=parse_moment(as_of, option="--as-of") or utcnow(),
        window=span,
        stored_before=parse_moment(stored_before, option="--stored-before"),
        actor=default_collector(),
        control_ids=tuple(controls or ()),
    )


def evaluate(
    ctx: typer.Context,
    tenant: TenantOption,
    as_of: AsOfOption = None,
    window: WindowOption = "90d",
    stored_before: StoredBeforeOption = None,
    control: ControlOption = None,
    json_output: JsonOption = False,
) -> None:
    """Every control's state at a moment and its continuity and gaps over the window before.

    Results are stored and each evaluated day is entered in the tenant's ledger;
    later runs re-evaluate only the steps new evidence affects.
    """
    app: App = ctx.obj
    request = _request(tenant, as_of, window, stored_before, control)
    result = service.evaluate(app=app, request=request)
    if json_output:
        emit_json(evaluation_json(result))
        return
    print_evaluation(result)


def gaps(
    ctx: typer.Context,
    tenant: TenantOption,
    as_of: AsOfOption = None,
    window: WindowOption = "90d",
    stored_before: StoredBeforeOption = None,
    control: ControlOption = None,
    json_output: JsonOption = False,
) -> None:
    """Every interval in the window in which a control was failing or unverified."""
    app: App = ctx.obj
    request = _request(tenant, as_of, window, stored_before, control)
    result = service.evaluate(app=app, request=request)
    data = evaluation_json(result)
    if json_output:
        emit_json(
            {k: data[k] for k in ("tenant", "as_of", "window_start", "stored_before", "gaps")}
        )
        return
    print_gaps(data)


def _control_json(control: Control) -> dict[str, Any]:
    return {"pack": control.pack, **control.spec.model_dump(mode="json")}


@cli.command("list")
def list_controls(
    ctx: typer.Context, tenant: TenantOption, json_output: JsonOption = False
) -> None:
    """The controls evaluated for the tenant, with their thresholds."""
    app: App = ctx.obj
    with transaction(app.sessions) as session:
        record = tenants.get_by_slug_or_raise(session=session, slug=tenant)
        controls = service.get_controls(session=session, tenant_id=record.id)
    if json_output:
        emit_json([_control_json(c) for c in controls.values()])
        return
    table = Table(title=f"controls for {tenant}")
    for name in ("control", "title", "scope", "threshold", "freshness", "severity"):
        table.add_column(name)
    for control in controls.values():
        spec = control.spec
        threshold = spec.threshold.model_dump(exclude_none=True, exclude_defaults=True)
        table.add_row(
            spec.id,
            spec.title,
            ", ".join(spec.scope.kinds),
            json.dumps(threshold),
            " ".join([spec.freshness, *(f"({s} {d})" for s, d in spec.signal_freshness.items())]),
            spec.severity,
        )
    stdout().print(table)


@cli.command("show")
def show_control(
    ctx: typer.Context,
    control_id: Annotated[str, typer.Argument(metavar="CONTROL")],
    tenant: TenantOption,
    at: AsOfOption = None,
    stored_before: StoredBeforeOption = None,
    json_output: JsonOption = False,
) -> None:
    """One control's definition and every in-scope asset's status at a moment."""
    app: App = ctx.obj
    moment = parse_moment(at, option="--as-of") or utcnow()
    with transaction(app.sessions) as session:
        record = tenants.get_by_slug_or_raise(session=session, slug=tenant)
        control = service.get_control_or_raise(
            session=session, tenant_id=record.id, control_id=control_id
        )
        names = {
            a.id: a.display_name
            for a in asset_service.get_all(session=session, tenant_id=record.id)
        }
    assets = service.asset_detail(
        app=app,
        tenant_slug=tenant,
        control_id=control_id,
        at=moment,
        stored_before=parse_moment(stored_before, option="--stored-before"),
    )
    data: dict[str, Any] = {
        "control": _control_json(control),
        "frameworks": mapped_items(control.spec.frameworks),
        "at": format_utc(moment),
        "assets": [
            {
                "asset_id": a.asset_id,
                "asset": names.get(a.asset_id, f"asset {a.asset_id}"),
                "kind": a.kind,
                "status": a.status,
                "values": {k: _plain(v) for k, v in a.values.items()},
                "evidence_ids": list(a.evidence_ids),
                "backfilled": a.backfilled,
            }
            for a in assets
        ],
    }
    if json_output:
        emit_json(data)
        return
    console = stdout()
    console.print(f"[bold]{control.id}[/]  {control.spec.title}")
    console.print(f"  {control.spec.objective}", markup=False, soft_wrap=True)
    console.print(f"  predicate: {control.predicate.source}", markup=False, soft_wrap=True)
    if data["frameworks"]:
        console.print("  frameworks:")
    for item in data["frameworks"]:
        words = item["text"] or item["title"] or "(not in the catalog)"
        line = f"    {item['framework']} {item['id']}: {words}"
        console.print(line, markup=False, soft_wrap=True)
    table = Table(title=f"assets at {data['at']}", title_justify="left")
    for name in ("asset", "kind", "status", "judged on", "evidence"):
        table.add_column(name)
    for asset in data["assets"]:
        values = ", ".join(
            f"{k}={'unknown' if v is None else v}" for k, v in sorted(asset["values"].items())
        )
        table.add_row(
            f"{asset['asset']} (#{asset['asset_id']})",
            asset["kind"],
            status_text(asset["status"]),
            values,
            ", ".join(map(str, asset["evidence_ids"])),
        )
    console.print(table)


def _plain(value: object) -> object:
    return format_utc(value) if isinstance(value, datetime) else value


@cli.command("tune")
def tune_control(
    ctx: typer.Context,
    control_id: Annotated[str, typer.Argument(metavar="CONTROL")],
    tenant: TenantOption,
    threshold: Annotated[
        str | None, typer.Option(help="JSON threshold, e.g. '{\"coverage\": 0.95}'")
    ] = None,
    freshness: Annotated[str | None, typer.Option(help="Freshness window, e.g. 48h")] = None,
    json_output: JsonOption = False,
) -> None:
    """Change a control's threshold or freshness for the tenant (entered in the ledger)."""
    app: App = ctx.obj
    changes: list[tuple[str, Any]] = []
    if threshold is not None:
        try:
            changes.append(("threshold", json.loads(threshold)))
        except json.JSONDecodeError as exc:
            raise UsageError(f"--threshold is not JSON: {exc.msg}") from exc
    if freshness is not None:
        changes.append(("freshness", freshness))
    if not changes:
        raise UsageError("give --threshold and/or --freshness")
    rows = [
        service.tune(
            app=app,
            tenant_slug=tenant,
            control_id=control_id,
            field=name,
            value=value,
            actor=default_collector(),
        )
        for name, value in changes
    ]
    summary = [{"field": r.field, "value": r.value, "ledger_index": r.ledger_index} for r in rows]
    if json_output:
        emit_json(summary)
        return
    for item in summary:
        stdout().print(
            f"{control_id}: {item['field']} = {json.dumps(item['value'])} "
            f"(ledger entry {item['ledger_index']})",
            markup=False,
        )


@cli.command("except")
def except_control(
    ctx: typer.Context,
    control_id: Annotated[str, typer.Argument(metavar="CONTROL")],
    tenant: TenantOption,
    reason: Annotated[str, typer.Option(help="Why the control does not apply")],
    compensating: Annotated[str, typer.Option(help="The compensating control in place")],
    approved_by: Annotated[str, typer.Option(help="The party that approved the exception")],
    expires: Annotated[str, typer.Option(help="When it stops applying (ISO 8601 with zone)")],
    asset: Annotated[int | None, typer.Option(help="One asset id [default: whole scope]")] = None,
    starts: Annotated[str | None, typer.Option(help="When it starts [default: now]")] = None,
    json_output: JsonOption = False,
) -> None:
    """Grant an exception: excepted assets show as excepted, never as passing."""
    app: App = ctx.obj
    expires_at = parse_moment(expires, option="--expires")
    if expires_at is None:
        raise UsageError("--expires is required")
    row = service.add_exception(
        app=app,
        tenant_slug=tenant,
        control_id=control_id,
        asset_id=asset,
        reason=reason,
        compensating_control=compensating,
        approved_by=approved_by,
        starts_at=parse_moment(starts, option="--starts") or utcnow(),
        expires_at=expires_at,
        actor=default_collector(),
    )
    data = {
        "id": row.id,
        "control": row.control_id,
        "asset_id": row.asset_id,
        "starts_at": format_utc(row.starts_at),
        "expires_at": format_utc(row.expires_at),
        "ledger_index": row.ledger_index,
    }
    if json_output:
        emit_json(data)
        return
    stdout().print(
        f"exception {row.id} on {control_id} until {data['expires_at']} "
        f"(ledger entry {row.ledger_index})",
        markup=False,
    )
