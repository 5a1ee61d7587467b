"""Custody records."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

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
    assert records.decode_record(data) == record.as_dict()


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


_TEXT = st.text(max_size=40)  # any characters but lone surrogates


@settings(max_examples=300, deadline=None)
@given(
    names=st.lists(_TEXT.filter(bool), min_size=6, max_size=6),
    open_text=st.lists(_TEXT, min_size=2, max_size=2),
    size=st.integers(min_value=0, max_value=2**53 - 1),
    moments=st.lists(
        st.datetimes(timezones=st.just(UTC)),
        min_size=3,
        max_size=3,
    ),
)
def test_evidence_collected_encodes_as_rfc8785_without_the_walk(
    names: list[str], open_text: list[str], size: int, moments: list[datetime]
) -> None:
    """The record skips the plain-value walk; its bytes must still be RFC 8785's."""
    actor, tenant, media_type, source_kind, tool, collector = names
    record = records.evidence_collected(
        actor=actor,
        tenant=tenant,
        blob_sha256="0f" * 32,
        size=size,
        media_type=media_type,
        source_kind=source_kind,
        source_name=open_text[0],
        tool=tool,
        tool_version=open_text[1],
        collector=collector,
        observed_from=moments[0],
        observed_to=moments[1],
        collected_at=moments[2],
    )
    assert records.encode_record(record) == bytes(rfc8785.dumps(record.as_dict()))


@pytest.mark.parametrize(
    ("field", "value"),
    [("size", 2**53), ("size", -1), ("size", 1.5), ("actor", 7), ("source_name", None)],
)
def test_evidence_collected_rejects_values_it_cannot_vouch_for(field: str, value: object) -> None:
    at = datetime(2025, 1, 1, tzinfo=UTC)
    fields: dict[str, Any] = {
        "actor": "a", "tenant": "t", "blob_sha256": "ab" * 32, "size": 1, "media_type": "m",
        "source_kind": "k", "source_name": "n", "tool": "t", "tool_version": "1",
        "collector": "c", "observed_from": at, "observed_to": None, "collected_at": at,
    }  # fmt: skip
    fields[field] = value
    with pytest.raises(InputError) as caught:
        records.evidence_collected(**fields)
    assert caught.value.field == field


def test_a_lone_surrogate_in_an_evidence_record_is_refused_by_name() -> None:
    at = datetime(2025, 1, 1, tzinfo=UTC)
    record = records.evidence_collected(
        actor="a", tenant="t", blob_sha256="ab" * 32, size=1, media_type="m", source_kind="k",
        source_name="bad \ud800 name", tool="t", tool_version="1", collector="c",
        observed_from=at, observed_to=None, collected_at=at,
    )  # fmt: skip
    with pytest.raises(InputError, match="cannot be canonicalized"):
        records.encode_record(record)
