"""The organizational records connector: facts counted from the file, bad input rejected."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claimready.connectors.base import EvidenceFile, Normalized
from claimready.connectors.builtin.records import RecordsConnector
from claimready.connectors.registry import detect_connector
from claimready.errors import InputError

FIXTURE = Path(__file__).parents[1] / "assets" / "records" / "records.yaml"
COLLECTED = datetime(2026, 2, 1, tzinfo=UTC)
SECTIONS = ("training", "phishing", "incident_response", "pen_test", "backups", "logging")


def _normalize(path: Path) -> Normalized:
    evidence = EvidenceFile(path=path, display_name=path.name, size=path.stat().st_size)
    return RecordsConnector().normalize(evidence, observed_at=None, collected_at=COLLECTED)


def test_facts_match_the_file() -> None:
    document = yaml.safe_load(FIXTURE.read_text())
    result = _normalize(FIXTURE)
    facts = result.facts
    organization = [f for f in facts if f.asset_key == "organization"]
    # Every field present in the mapped sections, plus the monitoring fields but its
    # provider name, plus two responsibility facts (commander named, functions missing).
    mapped = sum(len(document[s]) for s in SECTIONS) + len(document["monitoring"]) - 1
    assert len(organization) == mapped + 2
    unassigned = next(f for f in organization if f.signal == "raci.unassigned")
    assert unassigned.value == 1.0  # "backup" has nobody
    domains = document["email_domains"]
    assert len(facts) - len(organization) == 3 * len(domains)
    dmarc = {f.asset_key: f.value for f in facts if f.signal == "email.dmarc_policy"}
    assert dmarc == {f"domain:{d['domain']}": d["dmarc"] for d in domains}
    assert result.observed_to == datetime(2026, 1, 15, tzinfo=UTC)
    assert {f.observed_at for f in facts} == {datetime(2026, 1, 15, tzinfo=UTC)}


def test_detected_among_all_connectors() -> None:
    head = FIXTURE.read_bytes()[:4096]
    assert detect_connector(name=FIXTURE.name, head=head).kind == "records"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ("logging: {retention_days: lots}", "logging.retention_days"),
        ("backups: {immutable: yes please}", "backups.immutable"),
        ("pen_test: {report_sha256: abc}", "pen_test.report_sha256"),
        (
            "email_domains: [{domain: a.example, spf: true, dkim: true, dmarc: maybe}]",
            "email_domains[0].dmarc",
        ),
        ("training: [1, 2]", "training"),
    ],
)
def test_wrong_values_name_the_field(tmp_path: Path, change: str, field: str) -> None:
    path = tmp_path / "records.yaml"
    path.write_text(f"claimready_records: 1\nas_of: 2026-01-15T00:00:00Z\n{change}\n")
    with pytest.raises(InputError) as raised:
        _normalize(path)
    assert raised.value.field == field and raised.value.file == "records.yaml"


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_mutated_files_only_raise_input_error(tmp_path: Path, data: st.DataObject) -> None:
    original = bytearray(FIXTURE.read_bytes())
    for _ in range(data.draw(st.integers(min_value=1, max_value=8))):
        position = data.draw(st.integers(min_value=0, max_value=len(original) - 1))
        original[position] = data.draw(st.integers(min_value=0, max_value=255))
    cut = data.draw(st.integers(min_value=1, max_value=len(original)))
    path = tmp_path / "mutated.yaml"
    path.write_bytes(bytes(original[:cut]))
    with contextlib.suppress(InputError):
        _normalize(path)


@pytest.mark.parametrize(
    "text",
    [
        "as_of: 2026-13-45T00:00:00Z",  # YAML reads it as a timestamp, then fails
        "training: {completed_at: 2026-02-30}",
        "organization: [unclosed",
        "x: &a [*a]\norganization: [1]",
    ],
)
def test_impossible_dates_and_broken_yaml_are_input_errors(tmp_path: Path, text: str) -> None:
    path = tmp_path / "records.yaml"
    path.write_text(f"claimready_records: 1\n{text}\n")
    with pytest.raises(InputError) as raised:
        _normalize(path)
    assert "\n" not in str(raised.value)
