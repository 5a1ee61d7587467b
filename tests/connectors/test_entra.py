"""Entra ID registration details and sign-in logs: fixtures, errors, fuzzing, collection."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings

from claimready.assets.identity import Identifier
from claimready.connectors.builtin.entra import (
    SIGNAL_CA_NOT_APPLIED,
    SIGNAL_COUNT,
    SIGNAL_IS_ADMIN,
    SIGNAL_LAST_SIGN_IN,
    SIGNAL_LEGACY_AUTH,
    SIGNAL_MFA_CAPABLE,
    SIGNAL_MFA_METHODS,
    SIGNAL_MFA_REGISTERED,
    SIGNAL_SINGLE_FACTOR,
    EntraRegistrationConnector,
    EntraSignInsConnector,
    collect_entra_registration,
    collect_entra_signins,
)
from claimready.connectors.registry import detect_connector
from claimready.timeutil import parse_utc
from tests.connectors.helpers import raises_input_error
from tests.connectors.test_live import (
    MICROSOFT,
    RecordedApi,
    api,  # noqa: F401  (fixture)
    assert_well_formed,
    facts_of,
    microsoft_config,
    mutated,
    normalize_path,
    only_input_errors,
)

REGISTRATION = MICROSOFT / "entra_registration.json"
SIGNINS = MICROSOFT / "entra_signins.json"
REG = EntraRegistrationConnector()
SIGN = EntraSignInsConnector()


def _value(path: Path) -> list[dict[str, Any]]:
    value: list[dict[str, Any]] = json.loads(path.read_text())["value"]
    return value


def _time(text: Any) -> datetime | None:
    try:
        return parse_utc(text)
    except (ValueError, TypeError, AttributeError):
        return None


def test_registration_facts() -> None:
    users = _value(REGISTRATION)
    result = normalize_path(REG, REGISTRATION)
    assert_well_formed(result)
    assert result.record_count == len(users) == len(result.observations)
    assert facts_of(result, SIGNAL_MFA_REGISTERED) == {u["id"]: u["isMfaRegistered"] for u in users}
    assert facts_of(result, SIGNAL_MFA_CAPABLE) == {u["id"]: u["isMfaCapable"] for u in users}
    assert facts_of(result, SIGNAL_IS_ADMIN) == {
        u["id"]: u["isAdmin"] for u in users if "isAdmin" in u
    }
    assert facts_of(result, SIGNAL_MFA_METHODS) == {
        u["id"]: ",".join(sorted(u["methodsRegistered"])) for u in users
    }
    stamps = [t for t in (_time(u["lastUpdatedDateTime"]) for u in users) if t]
    assert result.observed_to == max(stamps)
    bad = len(users) - len(stamps)
    assert sorted(w.field for w in result.warnings) == sorted(
        ["lastUpdatedDateTime"] * bad + ["isAdmin"] * sum("isAdmin" not in u for u in users)
    )
    for observation in result.observations:
        upn = next(u["userPrincipalName"] for u in users if u["id"] == observation.key)
        assert Identifier("upn", upn.lower()) in observation.identifiers
        assert Identifier("cloud_id", observation.key) in observation.identifiers
        assert Identifier("source_id", f"entra:{observation.key}") in observation.identifiers


def _expected_signins(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Recompute the per-user aggregates straight from the fixture."""
    modern = {"Browser", "Mobile Apps and Desktop clients"}
    users: dict[str, dict[str, Any]] = {}
    for e in events:
        at = _time(e["createdDateTime"])
        if at is None or "status" not in e:
            continue
        user = users.setdefault(
            e["userId"], {"count": 0, "ca": 0, "last": None, "legacy": None, "single": None}
        )
        if e["status"]["errorCode"] != 0:
            continue
        user["count"] += 1
        user["ca"] += e["conditionalAccessStatus"] == "notApplied"
        user["last"] = max(filter(None, [user["last"], at]))
        if e["clientAppUsed"] not in modern:
            user["legacy"] = max(filter(None, [user["legacy"], at]))
        if e["authenticationRequirement"] == "singleFactorAuthentication":
            user["single"] = max(filter(None, [user["single"], at]))
    return users


def test_signin_aggregates_per_user() -> None:
    events = _value(SIGNINS)
    expected = _expected_signins(events)
    result = normalize_path(SIGN, SIGNINS)
    assert_well_formed(result)
    assert result.record_count == len(events)
    assert facts_of(result, SIGNAL_COUNT) == {k: v["count"] for k, v in expected.items()}
    assert facts_of(result, SIGNAL_CA_NOT_APPLIED) == {k: v["ca"] for k, v in expected.items()}
    for signal, name in (
        (SIGNAL_LAST_SIGN_IN, "last"),
        (SIGNAL_LEGACY_AUTH, "legacy"),
        (SIGNAL_SINGLE_FACTOR, "single"),
    ):
        assert facts_of(result, signal) == {k: v[name] for k, v in expected.items() if v[name]}
    stamps = [t for t in (_time(e["createdDateTime"]) for e in events) if t]
    assert result.observed_to == max(stamps) and result.observed_from == min(stamps)
    assert {f.observed_at for f in result.facts} == {max(stamps)}
    assert sorted(w.field for w in result.warnings) == ["createdDateTime", "status.errorCode"]


def test_observed_at_wins() -> None:
    moment = datetime(2025, 3, 1, tzinfo=UTC)
    for connector, path in ((REG, REGISTRATION), (SIGN, SIGNINS)):
        result = normalize_path(connector, path, observed_at=moment)
        assert {f.observed_at for f in result.facts} == {moment}


def test_each_format_detected_by_its_own_connector_and_deterministic() -> None:
    for path, kind in ((REGISTRATION, "entra_registration"), (SIGNINS, "entra_signins")):
        assert detect_connector(name=path.name, head=path.read_bytes()[:4096]).kind == kind
    assert normalize_path(SIGN, SIGNINS) == normalize_path(SIGN, SIGNINS)
    assert normalize_path(REG, REGISTRATION) == normalize_path(REG, REGISTRATION)


@pytest.mark.parametrize(
    ("connector", "document", "record", "field", "message"),
    [
        (REG, {"users": []}, None, "value", "'value' array"),
        (REG, {"value": [{"isAdmin": True}]}, 0, "id", "missing"),
        (REG, {"value": [{"id": "u", "isMfaRegistered": "yes"}]}, 0, "isMfaRegistered", "true or"),
        (
            REG,
            {"value": [{"id": "u", "methodsRegistered": [1]}]},
            0,
            "methodsRegistered[0]",
            "text",
        ),
        (SIGN, {"value": [{"id": "s", "status": 0}]}, 0, "status", "expected an object"),
        (
            SIGN,
            {"value": [{"id": "s", "status": {"errorCode": "0"}}]},
            0,
            "status.errorCode",
            "number",
        ),
    ],
)
def test_wrong_shapes_name_file_record_and_field(
    tmp_path: Path,
    connector: Any,
    document: object,
    record: int | None,
    field: str | None,
    message: str,
) -> None:
    path = tmp_path / "graph.json"
    path.write_text(json.dumps(document))
    with raises_input_error(file="graph.json", record=record, field=field, match=message):
        normalize_path(connector, path)


@settings(max_examples=50, deadline=None)
@given(data=mutated(REGISTRATION.read_bytes()))
def test_fuzz_registration(data: bytes) -> None:
    only_input_errors(REG, data, "registration.json")


@settings(max_examples=50, deadline=None)
@given(data=mutated(SIGNINS.read_bytes()))
def test_fuzz_signins(data: bytes) -> None:
    only_input_errors(SIGN, data, "signins.json")


def test_collect_both_and_normalize_like_the_exports(api: RecordedApi, tmp_path: Path) -> None:  # noqa: F811
    api.serve_token()
    api.serve_odata(
        "/v1.0/reports/authenticationMethods/userRegistrationDetails", REGISTRATION, page_size=2
    )
    api.serve_odata("/v1.0/auditLogs/signIns", SIGNINS, page_size=3)
    since = datetime(2024, 6, 1, tzinfo=UTC)
    with api.client() as client:
        registration = collect_entra_registration(client, microsoft_config(), sleep=api.sleep)
        signins = collect_entra_signins(client, microsoft_config(), since=since, sleep=api.sleep)
    filters = [r.url.params.get("$filter") for r in api.requests if "signIns" in r.url.path]
    assert filters[0] == "createdDateTime ge 2024-06-01T00:00:00Z"
    for data, connector, fixture in ((registration, REG, REGISTRATION), (signins, SIGN, SIGNINS)):
        path = tmp_path / fixture.name
        path.write_bytes(data)
        head = data[:4096]
        assert detect_connector(name=path.name, head=head).kind == connector.kind
        assert normalize_path(connector, path).facts == normalize_path(connector, fixture).facts
