"""Rendering of the readiness report for a terminal."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from claimready.cli.output import status_text, stdout

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
        f"{control['failing']} fail, {control['unverified']} unverified; coverage {coverage}",
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
    for column in ("asset", "status", "reason"):
        table.add_column(column)
    for asset in shown[:MAX_ASSET_ROWS]:
        table.add_row(asset["asset"], status_text(asset["status"]), asset["reason"])
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
