"""``export oscal``: assessment results and a POA&M as OSCAL JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from claimready.app import App
from claimready.cli.options import JsonOption, TenantOption, parse_moment
from claimready.cli.output import emit_json, stdout, warn
from claimready.controls.service import EvaluateRequest
from claimready.errors import StorageError, UsageError
from claimready.evidence.service import default_collector
from claimready.oscal.service import OscalExport, export
from claimready.oscal.validate import OSCAL_VERSION
from claimready.timeutil import format_utc, parse_duration, utcnow

cli = typer.Typer(help="Export assessments in standard formats.")

OutputOption = Annotated[
    Path, typer.Option("--output", "-o", help="Where to write the OSCAL assessment results")
]
PoamOption = Annotated[
    Path | None,
    typer.Option("--poam", help="Also write a POA&M with an item per gap in the window here"),
]
AsOfOption = Annotated[
    str | None,
    typer.Option("--as-of", help="The moment to evaluate (ISO 8601 with zone) [default: now]"),
]
WindowOption = Annotated[
    str, typer.Option("--window", help="How far back to evaluate, e.g. 90d, 12w, 48h")
]


def register(root: typer.Typer) -> None:
    """Add these commands to the root command."""
    root.add_typer(cli, name="export")


def _writable(path: Path, option: str) -> Path:
    if path.is_dir():
        raise UsageError(f"{option} {path}: is a directory; give a file name")
    if not path.parent.is_dir():
        raise UsageError(f"{option} {path}: directory {path.parent} does not exist")
    return path


def _write(path: Path, document: dict[str, Any]) -> None:
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc.strerror}") from exc


def _summary(result: OscalExport, output: Path, poam: Path | None) -> dict[str, Any]:
    document = result.assessment_results["assessment-results"]
    findings = [f for r in document["results"] for f in r.get("findings", [])]
    items = result.poam["plan-of-action-and-milestones"]["poam-items"] if result.poam else []
    open_items = [
        i
        for i in items
        if any(p["name"] == "gap-state" and p["value"] == "open" for p in i["props"])
    ]
    return {
        "tenant": result.evaluation.tenant,
        "as_of": format_utc(result.evaluation.as_of),
        "window_start": format_utc(result.evaluation.window_start),
        "oscal_version": OSCAL_VERSION,
        "assessment_results": str(output),
        "poam": str(poam) if poam is not None and result.poam is not None else None,
        "results": len(document["results"]),
        "findings": len(findings),
        "satisfied": sum(f["target"]["status"]["state"] == "satisfied" for f in findings),
        "evidence": result.evidence,
        "poam_items": len(items),
        "open_gaps": len(open_items),
    }


@cli.command("oscal")
def oscal(
    ctx: typer.Context,
    tenant: TenantOption,
    output: OutputOption,
    poam: PoamOption = None,
    as_of: AsOfOption = None,
    window: WindowOption = "90d",
    json_output: JsonOption = False,
) -> None:
    """Evaluate the controls and write OSCAL assessment results (and a POA&M of the gaps).

    Both documents are validated against the OSCAL JSON schemas before they are
    written; the same evaluation always produces the same bytes.
    """
    app: App = ctx.obj
    try:
        span = parse_duration(window)
    except ValueError as exc:
        raise UsageError(f"--window: {exc}") from exc
    _writable(output, "--output")
    if poam is not None:
        _writable(poam, "--poam")
    request = EvaluateRequest(
        tenant_slug=tenant,
        as_of=parse_moment(as_of, option="--as-of") or utcnow(),
        window=span,
        actor=default_collector(),
    )
    result = export(app=app, request=request)
    _write(output, result.assessment_results)
    if poam is not None and result.poam is not None:
        _write(poam, result.poam)
    elif poam is not None:
        warn("no gap in the window: no POA&M written")
    summary = _summary(result, output, poam)
    if json_output:
        emit_json(summary)
        return
    stdout().print(
        f"wrote {output}: {summary['findings']} finding(s), {summary['satisfied']} satisfied, "
        f"citing {summary['evidence']} evidence file(s)"
        + (
            f"; {poam}: {summary['poam_items']} item(s), {summary['open_gaps']} open"
            if summary["poam"]
            else ""
        ),
        markup=False,
    )
