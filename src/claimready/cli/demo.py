"""``claimready demo``: the whole story on generated data and real samples."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from claimready.app import App
from claimready.cli.options import JsonOption
from claimready.cli.output import emit_json, progress, status_text, stdout
from claimready.cli.render import evaluation_json
from claimready.controls.service import WindowEvaluation
from claimready.demo.run import (
    INCIDENTS,
    STEPS,
    TENANT,
    UNFED,
    DemoOutcome,
    expected_gaps,
    prepare_dir,
    run_demo,
)
from claimready.settings import load_settings
from claimready.timeutil import format_utc


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
    found = _incidents_found(outcome)
    if json_output:
        emit_json(_summary_json(outcome, found))
        return
    _print_summary(outcome, found)


def _found_gaps(evaluation: WindowEvaluation) -> set[tuple[str, str, str, str]]:
    return {
        (item.control.id, gap.status, format_utc(gap.start), format_utc(gap.end))
        for item in evaluation.controls
        for gap in item.gaps
    }


def _incidents_found(outcome: DemoOutcome) -> list[tuple[str, bool]]:
    """Each injected incident and whether the evaluation shows exactly its gaps."""
    seen = _found_gaps(outcome.evaluations[TENANT])
    start = outcome.first_day
    result = []
    for incident in INCIDENTS:
        wanted = {
            (
                g.control,
                g.status,
                format_utc(start + timedelta(days=g.first)),
                format_utc(start + timedelta(days=g.end)),
            )
            for g in incident.gaps
        }
        result.append((incident.title, wanted <= seen))
    return result


def _summary_json(outcome: DemoOutcome, found: list[tuple[str, bool]]) -> dict[str, Any]:
    evaluations: dict[str, list[dict[str, Any]]] = {}
    for tenant, result in outcome.evaluations.items():
        controls = evaluation_json(result)["controls"]
        evaluations[tenant] = [{k: v for k, v in c.items() if k != "steps"} for c in controls]
    expected = expected_gaps(outcome.first_day)
    return {
        "data_dir": str(outcome.data_dir),
        "first_day": format_utc(outcome.first_day),
        "ingests": len(outcome.ingests),
        "evaluations": evaluations,
        "incidents": [{"title": title, "found": ok} for title, ok in found],
        "expected_gaps": {
            control: [
                {"status": s, "start": format_utc(a), "end": format_utc(b)} for s, a, b in gaps
            ]
            for control, gaps in expected.items()
        },
        "unfed_controls": UNFED,
    }


def _control_table(tenant: str, result: WindowEvaluation) -> Table:
    table = Table(
        title=f"{tenant}: {format_utc(result.window_start)} .. {format_utc(result.as_of)}"
    )
    table.add_column("control")
    table.add_column("now")
    table.add_column("continuity", justify="right")
    table.add_column("gaps")
    for item in result.controls:
        share = item.continuity.share
        shown = "-" if share is None else f"{share:.1%}"
        gaps = ", ".join(f"{g.status} {g.start:%Y-%m-%d}..{g.end:%Y-%m-%d}" for g in item.gaps[:3])
        if len(item.gaps) > 3:
            gaps += f" (+{len(item.gaps) - 3})"
        table.add_row(item.control.id, status_text(item.at.status), shown, gaps or "-")
    return table


def _status_line(tenant: str, result: WindowEvaluation, *, where: str) -> str:
    """One line for a tenant with little evidence: which controls are in which state."""
    by_status: dict[str, list[str]] = {}
    for item in result.controls:
        by_status.setdefault(item.at.status, []).append(item.control.id)
    counts = "; ".join(
        f"{status}: {', '.join(ids) if len(ids) <= 3 else f'{len(ids)} controls'}"
        for status, ids in sorted(by_status.items())
    )
    return (
        f"\n{tenant} (one real Defender sample export and nothing else) now: {counts}; "
        f"see: {where} report --tenant {tenant}"
    )


def _print_summary(outcome: DemoOutcome, found: list[tuple[str, bool]]) -> None:
    console = stdout()
    console.print(f"[bold]claimready demo[/] built in {outcome.data_dir}")
    console.print(f"{len(outcome.ingests)} pieces of evidence ingested", markup=False)
    for tenant, result in outcome.evaluations.items():
        if tenant == TENANT:
            console.print(_control_table(tenant, result))
        else:
            line = _status_line(tenant, result, where=f"claimready --data-dir {outcome.data_dir}")
            console.print(line, markup=False, soft_wrap=True)
    console.print(f"\ninjected incidents at {TENANT} (each must show up as its exact gaps):")
    for title, ok in found:
        mark = "[green]found[/]" if ok else "[red]NOT FOUND[/]"
        console.print(f"  {mark} {title}", highlight=False)
    if UNFED:
        console.print("\ncontrols no demo connector feeds (unverified by design):")
        for control, why in UNFED.items():
            console.print(f"  {control}: {why}", markup=False)
    where = f"claimready --data-dir {outcome.data_dir}"
    console.print("\nwhere to look next:", markup=False)
    for command in (
        f"{where} gaps --tenant {TENANT} --window 365d",
        f"{where} gaps --tenant {TENANT} --window 365d --control mfa-privileged",
        f"{where} controls show kev-remediated --tenant {TENANT}",
        f"{where} evaluate --tenant {TENANT} --window 365d",
        f"{where} report --tenant {TENANT}",
        f"{where} verify",
    ):
        console.print(f"  {command}", markup=False, soft_wrap=True)
