"""``claimready tenant``: the client organizations."""

from __future__ import annotations

from typing import Annotated

import typer

from claimready.app import App
from claimready.cli.options import JsonOption
from claimready.cli.output import emit_json, stdout
from claimready.db.engine import transaction
from claimready.tenants import service
from claimready.tenants.models import TenantRead

cli = typer.Typer(help="Add and list tenants (client organizations).", no_args_is_help=True)


@cli.command("add")
def add(
    ctx: typer.Context,
    slug: Annotated[str, typer.Argument(help="Short name used in commands, e.g. acme")],
    name: Annotated[str | None, typer.Option(help="Display name [default: the slug]")] = None,
    timezone: Annotated[str, typer.Option(help="IANA zone times are shown in")] = "UTC",
    json_output: JsonOption = False,
) -> None:
    """Add a tenant."""
    app: App = ctx.obj
    with transaction(app.sessions) as session:
        tenant = service.create(session=session, slug=slug, name=name, timezone=timezone)
        read = TenantRead.model_validate(tenant)
    if json_output:
        emit_json(read.model_dump(mode="json"))
    else:
        stdout().print(f"added tenant [bold]{read.slug}[/] ({read.name})")


@cli.command("list")
def list_(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """List tenants."""
    app: App = ctx.obj
    with transaction(app.sessions) as session:
        rows = [TenantRead.model_validate(t) for t in service.get_all(session=session)]
    if json_output:
        emit_json([r.model_dump(mode="json") for r in rows])
        return
    console = stdout()
    if not rows:
        console.print("no tenants yet; add one with: claimready tenant add SLUG")
    for row in rows:
        console.print(f"{row.slug}\t{row.name}\t{row.timezone}", markup=False)
