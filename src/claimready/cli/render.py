"""Rendering of the readiness report for a terminal."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.table import Table

from claimready.cli.output import status_text, stdout
from claimready.controls.gaps import Gap
from claimready.controls.service import WindowEvaluation, step_json
from claimready.timeutil import format_utc

MAX_ASSET_ROWS = 25


def print_report(data: dict[str, Any]) -> None:
    """Print the report: each control, its non-passing assets, and the evidence cited."""
    console = stdout()
    tenant = data["tenant"]
    console.print(f"[bold]Readiness report: {tenant['name']}[/] ({tenant['slug']})")
    console.print(f"generated {data['generated_at']}\n", markup=False)
    for control in data["controls"]:
        _print_control(control)


def _print_control(control: dict[str, Any]) -> None:
    console = stdout()
    coverage = "-" if control["coverage"] is None else f"{control['coverage']:.1%}"
    console.print(f"[bold]{control['id']}[/]  {control['title']}: {status_text(control['status'])}")
    console.print(f"  {control['objective']}", markup=False, soft_wrap=True)
    console.print(
        f"  as of {control['at']}: {control['in_scope']} in scope, {control['passing']} pass, "
        f"{control['failing']} fail, {control['unverified']} unverified, "
        f"{control['excepted']} excepted; coverage {coverage}; "
        f"{'provably before' if control['provable'] else 'rests on backfilled evidence'}",
        markup=False,
        soft_wrap=True,
    )
    _print_assets(control["assets"])
    _print_evidence(control["evidence"])
    console.print()


def _print_assets(assets: list[dict[str, Any]]) -> None:
    shown = [a for a in assets if a["status"] != "pass"]
    if not shown:
        return
    table = Table(title="assets not passing", title_justify="left")
    for column in ("asset", "status", "judged on"):
        table.add_column(column)
    for asset in shown[:MAX_ASSET_ROWS]:
        values = ", ".join(
            f"{name}={'unknown' if value is None else value}"
            for name, value in asset["values"].items()
        )
        table.add_row(asset["asset"], status_text(asset["status"]), values)
    stdout().print(table)
    if len(shown) > MAX_ASSET_ROWS:
        stdout().print(f"  … and {len(shown) - MAX_ASSET_ROWS} more (use --json for all)")


def _print_evidence(evidence: list[dict[str, Any]]) -> None:
    console = stdout()
    if not evidence:
        console.print("  no evidence cited")
        return
    console.print("  evidence cited:")
    for item in evidence:
        ledger = (
            "not yet in the ledger"
            if item["ledger_index"] is None
            else (f"ledger entry {item['ledger_index']}")
        )
        console.print(
            f"    #{item['id']} {item['file']} from {item['source']}, sha256 {item['sha256']}\n"
            f"       describes {item['observed_to']} ({item['observed_origin']}), "
            f"collected {item['collected_at']}, {ledger}",
            markup=False,
            soft_wrap=True,
        )


def _gap_json(gap: Gap) -> dict[str, Any]:
    return {
        "control": gap.control_id,
        "status": gap.status,
        "start": format_utc(gap.start),
        "end": format_utc(gap.end),
        "steps": gap.steps,
    }


def evaluation_json(result: WindowEvaluation) -> dict[str, Any]:
    """An evaluation as JSON-ready data: state at the moment, continuity, gaps, steps."""
    controls: list[dict[str, Any]] = []
    for item in result.controls:
        spec = item.control.spec
        controls.append(
            {
                "id": spec.id,
                "title": spec.title,
                "severity": spec.severity,
                "at": step_json(item.at),
                "continuity": item.continuity.share,
                "steps_total": item.continuity.steps,
                "steps_pass": item.continuity.passing,
                "steps_fail": item.continuity.failing,
                "steps_unverified": item.continuity.unverified,
                "steps_backfilled": sum(1 for s in item.steps if not s.provable),
                "gaps": [_gap_json(g) for g in item.gaps],
                "steps": [step_json(s) for s in item.steps],
            }
        )
    gaps = [g for c in controls for g in c["gaps"]]
    return {
        "tenant": result.tenant,
        "as_of": format_utc(result.as_of),
        "window_start": format_utc(result.window_start),
        "stored_before": None if result.stored_before is None else format_utc(result.stored_before),
        "controls": controls,
        "gaps": gaps,
    }


def print_evaluation(result: WindowEvaluation) -> None:
    """A table: each control's state at the moment and its continuity over the window."""
    title = (
        f"{result.tenant} as of {format_utc(result.as_of)}, since {format_utc(result.window_start)}"
    )
    if result.stored_before is not None:
        title += f", evidence stored before {format_utc(result.stored_before)}"
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("control", no_wrap=True)
    table.add_column("now", no_wrap=True)
    for name in ("cover", "p/f/u/x", "contin.", "gaps", "basis"):
        table.add_column(name, no_wrap=True)
    for item in result.controls:
        at = item.at
        coverage = "-" if at.coverage is None else f"{at.coverage:.1%}"
        share = item.continuity.share
        backfilled = sum(1 for s in item.steps if not s.provable)
        basis = "provable" if at.provable else f"backfilled ({at.backfilled} assets)"
        table.add_row(
            item.control.id,
            status_text(at.status),
            coverage,
            f"{at.passing}/{at.failing}/{at.unverified}/{at.excepted}",
            "-" if share is None else f"{share:.1%}",
            str(len(item.gaps)),
            basis if not backfilled else f"{basis}; {backfilled} backfilled steps",
        )
    stdout().print(table)


def print_gaps(data: dict[str, Any]) -> None:
    """Every gap of the window, one line each."""
    console = stdout()
    if not data["gaps"]:
        console.print("no gaps in the window", markup=False)
        return
    table = Table(title=f"gaps of {data['tenant']} since {data['window_start']}")
    for name in ("control", "status", "start", "end", "steps"):
        table.add_column(name)
    for gap in data["gaps"]:
        table.add_row(
            gap["control"], status_text(gap["status"]), gap["start"], gap["end"], str(gap["steps"])
        )
    console.print(table)
