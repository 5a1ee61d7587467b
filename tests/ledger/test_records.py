"""Custody records."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from claimready.errors import InputError
from claimready.ledger import records


def test_evidence_collected_is_canonical() -> None:
    record = records.evidence_collected(
        actor="connector:edr",
        tenant="acme",
        blob_sha256="ab" * 32,
        size=10,
        media_type="application/json",
        source_kind="edr",
        source_name="Defender",
        tool="claimready",
        tool_version="0.1.0",
        collector="worker-1",
        observed_from=datetime(2025, 1, 1, tzinfo=UTC),
        observed_to=None,
        collected_at=datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
    )
    data = records.encode_record(record)
    assert data.startswith(b'{"actor":"connector:edr","blob":{"sha256":"abab')
    assert b'"observed_to":null' in data
    assert records.decode_record(data) == record


def test_generic_kinds_and_limits() -> None:
    at = datetime(2025, 1, 1, tzinfo=UTC)
    tomb = records.generic_record(
        type="disposal", actor="u:1", tenant="acme", at=at, subject={"blob": "ab" * 32, "leaf": 3}
    )
    assert records.decode_record(records.encode_record(tomb))["type"] == "disposal"
    with pytest.raises(InputError, match="unknown record type"):
        records.generic_record(type="nope", actor="u", tenant="t", at=at, subject={})
    big = records.generic_record(
        type="access", actor="u", tenant="t", at=at, subject={}, details={"x": "y" * 70000}
    )
    with pytest.raises(InputError, match="at most 65535"):
        records.encode_record(big)
    with pytest.raises(InputError):
        records.evidence_collected(
            actor="a", tenant="t", blob_sha256="XYZ", size=1, media_type="m", source_kind="k",
            source_name="n", tool="t", tool_version="1", collector="c",
            observed_from=at, observed_to=at, collected_at=at,
        )  # fmt: skip
