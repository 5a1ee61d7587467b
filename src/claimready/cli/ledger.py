"""``claimready verify`` and ``claimready ledger``: prove the evidence has not changed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from claimready.app import App
from claimready.cli.options import JsonOption
from claimready.cli.output import emit_json, stdout
from claimready.db.engine import transaction
from claimready.errors import InputError, NotFoundError, UsageError
from claimready.evidence.integrity import verify_tenant
from claimready.evidence.service import get_evidence_or_raise
from claimready.ledger.proof import verify_receipt
from claimready.ledger.records import decode_record
from claimready.tenants import service as tenants

cli = typer.Typer(help="Ledger keys, checkpoints and receipts.", no_args_is_help=True)


def register(root: typer.Typer) -> None:
    """Add ``verify`` and the ``ledger`` group to the root command."""
    root.command("verify")(verify)
    root.add_typer(cli, name="ledger")


def _read_text(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise InputError(f"{what} not found", file=path) from exc
    except OSError as exc:
        raise InputError(f"cannot read {what}: {exc.strerror}", file=path) from exc


def _vkeys(values: list[str]) -> list[str]:
    keys: list[str] = []
    for value in values:
        path = Path(value)
        text = _read_text(path, "verifier key file").decode() if path.is_file() else value
        keys.extend(line.strip() for line in text.splitlines() if line.strip())
    return keys


def verify(
    ctx: typer.Context,
    tenant: Annotated[
        list[str] | None,
        typer.Option("--tenant", "-t", help="Tenant to verify (repeatable) [default: all]"),
    ] = None,
    receipt: Annotated[
        Path | None, typer.Option(help="Check one receipt offline instead (needs --vkey)")
    ] = None,
    vkey: Annotated[
        list[str] | None,
        typer.Option(help="Trusted verifier key, or a file of them (repeatable; with --receipt)"),
    ] = None,
    blobs: Annotated[
        bool, typer.Option("--blobs/--no-blobs", help="Re-hash every evidence blob")
    ] = True,
    json_output: JsonOption = False,
) -> None:
    """Verify ledgers (every entry, tile, checkpoint and blob), or one receipt offline.

    Exits 1 naming exactly what does not verify: an entry index, a tile path,
    a checkpoint, a blob hash or an evidence record.
    """
    if receipt is not None:
        _verify_receipt(receipt, vkey or [], json_output=json_output)
        return
    app: App = ctx.obj
    with transaction(app.sessions) as session:
        slugs = tenant or [t.slug for t in tenants.get_all(session=session)]
        for slug in slugs:
            tenants.get_by_slug_or_raise(session=session, slug=slug)
    reports = [verify_tenant(app=app, tenant_slug=slug, rehash=blobs) for slug in slugs]
    if json_output:
        emit_json([r.as_dict() for r in reports])
        return
    console = stdout()
    if not reports:
        console.print("no tenants to verify")
    for r in reports:
        console.print(
            f"{r.tenant}: verified {r.entries} entries, {r.checkpoints} checkpoints, "
            f"{r.tiles} tiles, {r.timestamps} timestamps, {r.blobs} blobs re-hashed, "
            f"{r.evidence} evidence records matched; root {r.root}",
            markup=False,
            soft_wrap=True,
        )


def _verify_receipt(path: Path, vkeys: list[str], *, json_output: bool) -> None:
    keys = _vkeys(vkeys)
    if not keys:
        raise UsageError("--receipt needs at least one trusted --vkey")
    verified = verify_receipt(_read_text(path, "receipt"), None, keys)
    record: dict[str, Any] = decode_record(verified.entry)
    summary = {
        "receipt": str(path),
        "origin": verified.checkpoint.origin,
        "index": verified.index,
        "tree_size": verified.checkpoint.size,
        "record": record,
    }
    if json_output:
        emit_json(summary)
        return
    blob = record.get("blob", {}).get("sha256", "-")
    stdout().print(
        f"receipt verifies: entry {verified.index} of {verified.checkpoint.origin} "
        f"(tree size {verified.checkpoint.size}); {record.get('type')} blob {blob}",
        markup=False,
        soft_wrap=True,
    )


@cli.command("vkey")
def vkey_command(
    ctx: typer.Context,
    output: Annotated[Path | None, typer.Option(help="Write the keys to this file")] = None,
) -> None:
    """Print the verifier keys (current and retired) that reviewers need to check checkpoints."""
    app: App = ctx.obj
    app.keyring.signer()
    current = app.keyring.current_vkey()
    keys = [current, *(k for k in app.keyring.vkeys() if k != current)]
    text = "\n".join(keys) + "\n"
    if output is None:
        stdout().print(text, end="", markup=False, soft_wrap=True)
    else:
        output.write_text(text)
        stdout().print(f"wrote {len(keys)} verifier keys to {output}", markup=False)


@cli.command("rotate-key")
def rotate_key(ctx: typer.Context) -> None:
    """Start signing with a new key; old verifier keys are kept so old checkpoints verify."""
    app: App = ctx.obj
    signer = app.keyring.rotate()
    stdout().print(f"new verifier key: {signer.verifier.vkey}", markup=False, soft_wrap=True)


@cli.command("receipt")
def receipt_command(
    ctx: typer.Context,
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="Tenant slug")],
    evidence: Annotated[int, typer.Option(help="Evidence id (as shown by ingest and report)")],
    output: Annotated[Path | None, typer.Option(help="Write the receipt to this file")] = None,
) -> None:
    """Print the offline-verifiable receipt (c2sp.org/tlog-proof@v1) of one evidence record."""
    app: App = ctx.obj
    with transaction(app.sessions) as session:
        record = tenants.get_by_slug_or_raise(session=session, slug=tenant)
        item = get_evidence_or_raise(session=session, tenant_id=record.id, evidence_id=evidence)
        index = item.ledger_index
    if index is None:
        raise NotFoundError(f"evidence {evidence} of tenant {tenant!r} has no ledger entry")
    with app.open_ledger(tenant) as ledger:
        text = ledger.receipt(index)
    if output is None:
        stdout().print(text.decode(), end="", markup=False, soft_wrap=True)
    else:
        output.write_bytes(text)
        stdout().print(f"wrote the receipt of ledger entry {index} to {output}", markup=False)


@cli.command("checkpoint")
def checkpoint_command(
    ctx: typer.Context,
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="Tenant slug")],
) -> None:
    """Print the tenant ledger's latest signed checkpoint."""
    app: App = ctx.obj
    with transaction(app.sessions) as session:
        tenants.get_by_slug_or_raise(session=session, slug=tenant)
    with app.open_ledger(tenant) as ledger:
        _checkpoint, note = ledger.latest()
    stdout().print(note.decode(), end="", markup=False, soft_wrap=True)
