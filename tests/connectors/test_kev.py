"""The CISA KEV catalog parser and connector on the real catalog, its schema and mutations."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claimready.connectors.base import EvidenceFile, Normalized
from claimready.connectors.builtin.kev import KevConnector, kev_schema, parse_catalog
from claimready.connectors.registry import detect_connector
from claimready.errors import InputError
from claimready.timeutil import parse_utc
from tests.connectors.helpers import input_error_from

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "samples" / "kev"
CATALOG = SAMPLES / "known_exploited_vulnerabilities.json"
COLLECTED = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
DOCUMENT = json.loads(CATALOG.read_text())


def _normalize(path: Path, observed_at: datetime | None = None) -> Normalized:
    evidence = EvidenceFile(path=path, display_name=path.name, size=path.stat().st_size)
    return KevConnector().normalize(evidence, observed_at=observed_at, collected_at=COLLECTED)


def test_bundled_schema_is_cisas() -> None:
    published = json.loads((SAMPLES / "known_exploited_vulnerabilities_schema.json").read_text())
    assert kev_schema() == published


def test_parser_returns_every_entry_typed() -> None:
    catalog = parse_catalog(DOCUMENT, file="kev.json")
    raw = DOCUMENT["vulnerabilities"]
    assert len(catalog.entries) == len(raw) == DOCUMENT["count"]
    assert catalog.catalog_version == DOCUMENT["catalogVersion"]
    assert catalog.date_released == parse_utc(DOCUMENT["dateReleased"])
    first = catalog.entries[0]
    assert first.cve_id == raw[0]["cveID"]
    assert first.date_added == date.fromisoformat(raw[0]["dateAdded"])
    assert first.due_date == date.fromisoformat(raw[0]["dueDate"])
    assert first.vendor_project == raw[0]["vendorProject"]
    assert sum(e.ransomware for e in catalog.entries) == sum(
        v["knownRansomwareCampaignUse"] == "Known" for v in raw
    )


def test_connector_facts_are_about_the_reference_asset() -> None:
    result = _normalize(CATALOG)
    raw = DOCUMENT["vulnerabilities"]
    (observation,) = result.observations
    assert (observation.key, observation.kind) == ("cisa-kev", "reference")
    listed = [f for f in result.facts if f.signal == "kev.listed"]
    assert sorted(f.value for f in listed) == sorted(v["cveID"] for v in raw)
    added = {v["cveID"]: date.fromisoformat(v["dateAdded"]) for v in raw}
    assert all(f.observed_at.date() == added[str(f.value)] for f in listed)
    due = [f for f in result.facts if f.signal == "kev.due"]
    assert len(due) == len(raw)
    due_by = {str(f.value) for f in result.facts if f.signal == "kev.due_by"}
    assert due_by == {f"{v['cveID']}|{v['dueDate']}" for v in raw}
    ransomware = {f.value for f in result.facts if f.signal == "kev.ransomware"}
    assert ransomware == {v["cveID"] for v in raw if v["knownRansomwareCampaignUse"] == "Known"}
    assert result.observed_to == parse_utc(DOCUMENT["dateReleased"])
    assert {f.asset_key for f in result.facts} == {"cisa-kev"}


def test_detects_the_catalog_but_not_its_schema() -> None:
    head = CATALOG.read_bytes()[:4096]
    assert detect_connector(name=CATALOG.name, head=head).kind == "kev"
    schema_head = (SAMPLES / "known_exploited_vulnerabilities_schema.json").read_bytes()[:4096]
    assert not KevConnector().detect(name="schema.json", head=schema_head)


def _small(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(json.dumps(DOCUMENT))
    document["vulnerabilities"] = document["vulnerabilities"][:3]
    document["count"] = 3
    document.update(changes)
    return document


def test_schema_violations_name_entry_and_field() -> None:
    document = _small()
    document["vulnerabilities"][1]["cveID"] = "CVE-12"
    with pytest.raises(InputError, match="does not match the KEV schema") as caught:
        parse_catalog(document, file="kev.json")
    assert (caught.value.file, caught.value.record, caught.value.field) == ("kev.json", 1, "cveID")
    del document["vulnerabilities"][1]["cveID"]
    document["vulnerabilities"][2].pop("dueDate")
    with pytest.raises(InputError, match="required") as caught:
        parse_catalog(document, file="kev.json")
    assert caught.value.record == 1
    with pytest.raises(InputError, match="dateReleased"):
        parse_catalog(_small(dateReleased="soon"), file="kev.json")


def test_unreadable_dates_and_wrong_count_are_warnings() -> None:
    document = _small(count=9)
    document["vulnerabilities"][0]["dueDate"] = "2025-02-30"
    catalog = parse_catalog(document, file="kev.json")
    assert len(catalog.entries) == 2
    assert sorted(w.field for w in catalog.warnings) == ["count", "dueDate"]


_SWAPS: list[Any] = [None, 0, 1.5, True, "", "x", [], {}]
_BASE = json.dumps(_small()).encode()


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):
        document = _small()
        entry = document["vulnerabilities"][draw(st.integers(0, 2))]
        target = entry if draw(st.booleans()) else document
        target[draw(st.sampled_from(sorted(target)))] = draw(st.sampled_from(_SWAPS))
        return json.dumps(document).encode()
    data = bytearray(_BASE)
    for _ in range(draw(st.integers(0, 6))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data[: draw(st.integers(0, len(data)))])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=_mutated())
def test_mutated_catalogs_only_ever_raise_input_error(data: bytes) -> None:
    error = input_error_from(_normalize, data, "kev.json")
    assert error is None or error.file == "kev.json"
