"""``claimready demo``: the whole story on generated data and real samples."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from claimready.app import App
from claimready.cli.options import JsonOption
from claimready.cli.output import emit_json, progress, status_text, stdout
from claimready.demo.run import prepare_dir, run_demo
from claimready.settings import load_settings
from claimready.timeutil import format_utc

STEPS = 5


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
    if json_output:
        emit_json(
            {
                "data_dir": str(outcome.data_dir),
                "evaluations": {
                    k: [
                        {
                            "control": r.control_id,
                            "status": r.status,
                            "coverage": r.coverage,
                            "passing": r.passing,
                            "failing": r.failing,
                            "unverified": r.unverified,
                            "in_scope": r.in_scope,
                        }
                        for r in v
                    ]
                    for k, v in outcome.evaluations.items()
                },
            }
        )
        return
    console = stdout()
    console.print(f"[bold]claimready demo[/] built in {outcome.data_dir}")
    for result in outcome.ingests:
        console.print(
            f"  {result.tenant}: evidence {result.evidence_id} from {result.connector}: "
            f"{result.record_count} machines, {result.fact_count} facts, "
            f"{len(result.warnings)} warnings",
            markup=False,
        )
    for label, results in outcome.evaluations.items():
        for r in results:
            coverage = "-" if r.coverage is None else f"{r.coverage:.1%}"
            console.print(
                f"  {label}: {r.control_id} {status_text(r.status)} "
                f"({r.passing}/{r.in_scope} pass, coverage {coverage})"
            )
    where = f"claimready --data-dir {outcome.data_dir}"
    month_ago = format_utc(outcome.month_ago.replace(microsecond=0))
    console.print("\nwhere to look next:", markup=False)
    for command in (
        f"{where} report --tenant acme-dental",
        f"{where} report --tenant globex-lab",
        f"{where} evaluate --tenant acme-dental --as-of {month_ago}",
        f"{where} verify",
    ):
        console.print(f"  {command}", markup=False, soft_wrap=True)
