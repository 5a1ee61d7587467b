"""``claimready verify`` and receipts: tampering anywhere is named, receipts verify offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import update

from claimready.app import App
from claimready.blobs.local import LocalBlobStore
from claimready.db.engine import transaction
from claimready.evidence.models import Evidence
from claimready.ledger.tiles import entries_path
from claimready.settings import Settings
from tests.conftest import Run


@pytest.fixture
def ingested(run: Run, defender_sample: Path) -> Path:
    """A deployment with the sample ingested for tenant acme; returns the data dir."""
    assert run("init")[0] == 0
    run("tenant", "add", "acme")
    code, out, _ = run("ingest", "--tenant", "acme", str(defender_sample), "--json")
    assert code == 0 and json.loads(out)[0]["ledger_index"] == 0
    return defender_sample


def _flip(path: Path, offset: int = -1) -> None:
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_clean_ledger_verifies(run: Run, ingested: Path) -> None:
    code, out, _ = run("verify", "--json")
    report = json.loads(out)
    assert code == 0
    assert report == [
        {
            "tenant": "acme",
            "entries": 1,
            "checkpoints": report[0]["checkpoints"],
            "tiles": 1,
            "blobs": 1,
            "evidence": 1,
            "root": report[0]["root"],
            "timestamps": 0,
        }
    ]


def test_receipt_verifies_offline_and_rejects_a_stranger_key(
    run: Run, ingested: Path, tmp_path: Path
) -> None:
    receipt, vkeys = tmp_path / "receipt.txt", tmp_path / "vkeys.txt"
    assert (
        run("ledger", "receipt", "--tenant", "acme", "--evidence", "1", "--output", str(receipt))[0]
        == 0
    )
    assert run("ledger", "vkey", "--output", str(vkeys))[0] == 0
    code, out, _ = run("verify", "--receipt", str(receipt), "--vkey", str(vkeys), "--json")
    assert code == 0 and json.loads(out)["record"]["type"] == "evidence.collected"
    stranger = "other/claimready+14472c0f+ATcgX9fctBL7A6qRqQ/6Xw5A7oBM0YXnkYNFkqo5p7+l"
    code, _, err = run("verify", "--receipt", str(receipt), "--vkey", stranger)
    assert code == 1 and err.startswith("error: ")


def test_a_changed_blob_is_named(run: Run, ingested: Path, settings: Settings) -> None:
    app = App(settings=settings)
    digest = next(app.blobs.iter_hashes())
    blob = next(p for p in (settings.data_dir / "blobs").rglob(digest) if p.is_file())
    _flip(blob)
    code, _, err = run("verify")
    assert code == 1 and digest in err


def test_a_changed_pack_is_named(run: Run, ingested: Path, settings: Settings) -> None:
    app = App(settings=settings)
    store = app.blobs
    assert isinstance(store, LocalBlobStore)
    digest = next(store.iter_hashes())
    loose = store.path_for(digest)
    again = settings.data_dir / "again.json"
    again.write_bytes(loose.read_bytes())
    loose.unlink()
    store.put_files([again])
    app.close()
    assert run("verify")[0] == 0
    (pack,) = (settings.data_dir / "blobs" / "packs").glob("pack-*.pack")
    original = pack.read_bytes()
    _flip(pack, 100)
    code, _, err = run("verify")
    assert code == 1 and f"blob {digest}" in err
    pack.write_bytes(original)
    _flip(pack, -70)
    code, _, err = run("verify")
    assert code == 1 and f"pack {pack.name}" in err


def test_a_changed_entry_bundle_is_named(run: Run, ingested: Path, settings: Settings) -> None:
    bundle = settings.ledger_dir / "acme" / entries_path(0, 1)
    _flip(bundle, 10)
    code, _, err = run("verify", "--no-blobs")
    assert code == 1 and "tile/entries" in err


def test_an_evidence_record_pointing_elsewhere_is_named(
    run: Run, ingested: Path, settings: Settings
) -> None:
    app = App(settings=settings)
    with transaction(app.sessions) as session:
        session.execute(update(Evidence).values(sha256="0" * 64))
    app.close()
    code, _, err = run("verify")
    assert code == 1 and "evidence 1" in err
