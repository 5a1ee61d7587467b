"""``claimready demo``: the whole story on generated data and real samples."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from claimready.app import App
from claimready.cli.options import JsonOption
from claimready.cli.output import emit_json, progress, status_text, stdout
from claimready.cli.render import evaluation_json
from claimready.demo.run import EDR_CONTROL, prepare_dir, run_demo
from claimready.settings import load_settings
from claimready.timeutil import format_utc

STEPS = 4


def register(cli: typer.Typer) -> None:
    """Add the demo command to the root command."""
    cli.command("demo")(demo)


def demo(
    ctx: typer.Context,
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help="Where to build the demo [default: <data-dir>/demo]"),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Build a demo operator with two client organizations, evidence and evaluations.

    Runs on its own embedded SQLite database in its own directory, so it never
    touches real data; a previous demo in that directory is replaced.
    """
    app: App = ctx.obj
    target = (directory or app.settings.data_dir / "demo").expanduser().resolve()
    prepare_dir(target)
    settings = load_settings(
        overrides={
            "data_dir": target,
            "database_url": f"sqlite:///{target / 'claimready.db'}",
            "blob_store": str(target / "blobs"),
        }
    )
    with progress(enabled=not json_output) as bar:
        task = bar.add_task("demo", total=STEPS)

        def step(message: str) -> None:
            bar.update(task, description=message)
            bar.advance(task)

        outcome = run_demo(settings=settings, step=step)
    acme = outcome.evaluations["acme-dental"]
    edr = next(c for c in acme.controls if c.control.id == EDR_CONTROL)
    if json_output:
        emit_json(
            {
                "data_dir": str(outcome.data_dir),
                "first_day": format_utc(outcome.first_day),
                "ingests": len(outcome.ingests),
                "evaluations": {
                    k: evaluation_json(v)["controls"] for k, v in outcome.evaluations.items()
                },
            }
        )
        return
    console = stdout()
    console.print(f"[bold]claimready demo[/] built in {outcome.data_dir}")
    console.print(f"  {len(outcome.ingests)} pieces of evidence ingested", markup=False)
    for label, result in outcome.evaluations.items():
        for item in result.controls:
            share = item.continuity.share
            shown = "-" if share is None else f"{share:.1%}"
            console.print(
                f"  {label}: {item.control.id} {status_text(item.at.status)} "
                f"(continuity {shown}, {len(item.gaps)} gaps)"
            )
    for gap in edr.gaps:
        console.print(
            f"  EDR gap: {gap.status} {format_utc(gap.start)} .. {format_utc(gap.end)}",
            markup=False,
        )
    where = f"claimready --data-dir {outcome.data_dir}"
    console.print("\nwhere to look next:", markup=False)
    for command in (
        f"{where} gaps --tenant acme-dental --window 365d --control {EDR_CONTROL}",
        f"{where} evaluate --tenant acme-dental --window 365d",
        f"{where} controls show {EDR_CONTROL} --tenant acme-dental",
        f"{where} report --tenant acme-dental",
        f"{where} verify",
    ):
        console.print(f"  {command}", markup=False, soft_wrap=True)
