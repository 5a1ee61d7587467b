"""Okta users, factors and System Log: fixtures, errors, fuzzing and live collection."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings

from claimready.assets.identity import Identifier
from claimready.connectors.builtin.okta import (
    SIGNAL_COUNT,
    SIGNAL_ENABLED,
    SIGNAL_LAST_SIGN_IN,
    SIGNAL_MFA_DENIED,
    SIGNAL_MFA_METHODS,
    SIGNAL_MFA_REGISTERED,
    SIGNAL_SINGLE_FACTOR,
    OktaLogsConnector,
    OktaUsersConnector,
    collect_okta_logs,
    collect_okta_users,
)
from claimready.connectors.registry import detect_connector
from claimready.errors import CollectionError
from claimready.timeutil import parse_utc
from tests.connectors.helpers import raises_input_error
from tests.connectors.test_live import (
    OKTA,
    RecordedApi,
    api,  # noqa: F401  (fixture)
    assert_well_formed,
    facts_of,
    mutated,
    normalize_path,
    okta_config,
    only_input_errors,
)

USERS = OKTA / "users.json"
BUNDLE = OKTA / "users_bundle.json"
FACTORS = OKTA / "factors.json"
LOG = OKTA / "system_log.json"
LOG_LINES = OKTA / "system_log.jsonl"
USERS_CONNECTOR = OktaUsersConnector()
LOGS_CONNECTOR = OktaLogsConnector()


def _json(path: Path) -> Any:
    return json.loads(path.read_text())


def _time(text: Any) -> datetime | None:
    try:
        return parse_utc(text)
    except (ValueError, TypeError, AttributeError):
        return None


def test_bundle_users_and_factors() -> None:
    users, factors = _json(USERS), _json(FACTORS)
    result = normalize_path(USERS_CONNECTOR, BUNDLE)
    assert_well_formed(result)
    assert result.record_count == len(users) == len(result.observations)
    enabled = {"ACTIVE", "RECOVERY", "PASSWORD_EXPIRED", "LOCKED_OUT"}
    assert facts_of(result, SIGNAL_ENABLED) == {u["id"]: u["status"] in enabled for u in users}
    assert facts_of(result, SIGNAL_LAST_SIGN_IN) == {
        u["id"]: _time(u["lastLogin"]) for u in users if _time(u["lastLogin"])
    }
    active = {
        uid: sorted({f["factorType"] for f in items if f["status"] == "ACTIVE"})
        for uid, items in factors.items()
    }
    assert facts_of(result, SIGNAL_MFA_REGISTERED) == {k: bool(v) for k, v in active.items()}
    assert facts_of(result, SIGNAL_MFA_METHODS) == {k: ",".join(v) for k, v in active.items()}
    without = [u for u in users if u["id"] not in factors]
    assert sum(w.field == "factors" for w in result.warnings) == len(without)
    for observation in result.observations:
        login = next(u["profile"]["login"] for u in users if u["id"] == observation.key)
        assert Identifier("upn", login.lower()) in observation.identifiers
        assert Identifier("source_id", f"okta:{observation.key}") in observation.identifiers


def test_users_array_alone_leaves_mfa_unknown() -> None:
    result = normalize_path(USERS_CONNECTOR, USERS)
    assert not facts_of(result, SIGNAL_MFA_REGISTERED)
    assert any("MFA enrolment is not known" in note for note in result.notes)
    assert len(facts_of(result, SIGNAL_ENABLED)) == len(_json(USERS))


def _expected_log(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Recompute the documented rules straight from the fixture."""
    mfa_types = {
        "user.authentication.auth_via_mfa",
        "user.mfa.okta_verify.deny_push",
        "user.mfa.attempt_bypass",
    }
    dated = [e for e in events if e["actor"]["type"] == "User" and _time(e["published"])]
    challenged = {
        (e["actor"]["id"], e["authenticationContext"]["externalSessionId"])
        for e in dated
        if e["eventType"] in mfa_types
    }
    out: dict[str, dict[str, Any]] = {}
    for e in dated:
        if e["eventType"] not in mfa_types | {"user.session.start"}:
            continue
        who, at, result = e["actor"]["id"], _time(e["published"]), e["outcome"]["result"]
        row = out.setdefault(who, {"count": 0, "last": None, "single": None, "denied": None})
        session = e["authenticationContext"]["externalSessionId"]
        if e["eventType"] == "user.session.start" and result == "SUCCESS":
            row["count"] += 1
            row["last"] = max(filter(None, [row["last"], at]))
            if session not in (None, "unknown") and (who, session) not in challenged:
                row["single"] = max(filter(None, [row["single"], at]))
        if e["eventType"] == "user.mfa.okta_verify.deny_push" or (
            e["eventType"] in mfa_types and result in ("FAILURE", "DENY")
        ):
            row["denied"] = max(filter(None, [row["denied"], at]))
    return out


@pytest.mark.parametrize("path", [LOG, LOG_LINES])
def test_system_log_rules(path: Path) -> None:
    events = _json(LOG)
    expected = _expected_log(events)
    result = normalize_path(LOGS_CONNECTOR, path)
    assert_well_formed(result)
    assert result.record_count == len(events)
    assert facts_of(result, SIGNAL_COUNT) == {k: v["count"] for k, v in expected.items()}
    for signal, name in (
        (SIGNAL_LAST_SIGN_IN, "last"),
        (SIGNAL_SINGLE_FACTOR, "single"),
        (SIGNAL_MFA_DENIED, "denied"),
    ):
        assert facts_of(result, signal) == {k: v[name] for k, v in expected.items() if v[name]}
    stamps = [t for t in (_time(e["published"]) for e in events) if t]
    assert result.observed_to == max(stamps)
    assert {w.field for w in result.warnings} == {
        "published",
        "authenticationContext.externalSessionId",
    }


def test_detection_observed_at_and_determinism() -> None:
    for path, kind in ((USERS, "okta_users"), (BUNDLE, "okta_users"), (LOG, "okta_logs")):
        assert detect_connector(name=path.name, head=path.read_bytes()[:4096]).kind == kind
    assert detect_connector(name=LOG_LINES.name, head=LOG_LINES.read_bytes()[:4096]).kind == (
        "okta_logs"
    )
    moment = datetime(2025, 3, 1, tzinfo=UTC)
    for connector, path in ((USERS_CONNECTOR, BUNDLE), (LOGS_CONNECTOR, LOG)):
        assert {f.observed_at for f in normalize_path(connector, path, moment).facts} == {moment}
        assert normalize_path(connector, path) == normalize_path(connector, path)


@pytest.mark.parametrize(
    ("connector", "text", "record", "field", "message"),
    [
        (USERS_CONNECTOR, '{"people": []}', None, "users", "'users' array"),
        (USERS_CONNECTOR, '{"users": [], "factors": []}', None, "factors", "keyed by user id"),
        (USERS_CONNECTOR, '[{"id": "u1"}]', 0, "status", "missing"),
        (
            USERS_CONNECTOR,
            '[{"id": "u1", "status": "ACTIVE", "profile": 3}]',
            0,
            "profile",
            "object",
        ),
        (LOGS_CONNECTOR, '"text"', None, None, "LogEvent"),
        (LOGS_CONNECTOR, '[{"published": "x"}]', 0, "eventType", "missing"),
        (LOGS_CONNECTOR, '{"eventType": "a"}\n[1]\n', "line 2", None, "expected a JSON object"),
    ],
)
def test_wrong_shapes_name_file_record_and_field(
    tmp_path: Path, connector: Any, text: str, record: Any, field: str | None, message: str
) -> None:
    path = tmp_path / "okta.json"
    path.write_text(text)
    with raises_input_error(file="okta.json", record=record, field=field, match=message):
        normalize_path(connector, path)


@settings(max_examples=50, deadline=None)
@given(data=mutated(BUNDLE.read_bytes()))
def test_fuzz_users(data: bytes) -> None:
    only_input_errors(USERS_CONNECTOR, data, "users.json")


@settings(max_examples=50, deadline=None)
@given(data=mutated(LOG.read_bytes()))
def test_fuzz_log(data: bytes) -> None:
    only_input_errors(LOGS_CONNECTOR, data, "log.json")


@settings(max_examples=30, deadline=None)
@given(data=mutated(LOG_LINES.read_bytes()))
def test_fuzz_log_lines(data: bytes) -> None:
    only_input_errors(LOGS_CONNECTOR, data, "log.jsonl")


def test_collect_users_with_factors(api: RecordedApi, tmp_path: Path) -> None:  # noqa: F811
    users, factors = _json(USERS), _json(FACTORS)
    api.serve_okta("/api/v1/users", users, page_size=2)
    for user in users:
        api.serve_okta(f"/api/v1/users/{user['id']}/factors", factors.get(user["id"], []))
    api.queue("/api/v1/users", httpx.Response(429, headers={"Retry-After": "3"}))
    with api.client() as client:
        data = collect_okta_users(client, okta_config(), sleep=api.sleep)
    assert api.sleeps == [3.0]
    bundle = json.loads(data)
    assert bundle["users"] == users
    assert bundle["factors"] == {u["id"]: factors.get(u["id"], []) for u in users}
    path = tmp_path / "okta-users.json"
    path.write_bytes(data)
    assert detect_connector(name=path.name, head=data[:4096]).kind == "okta_users"
    result = normalize_path(USERS_CONNECTOR, path)
    assert len(facts_of(result, SIGNAL_MFA_REGISTERED)) == len(users)


def test_collect_logs_stops_at_the_empty_polling_page(api: RecordedApi, tmp_path: Path) -> None:  # noqa: F811
    events = _json(LOG)

    def page(request: httpx.Request) -> httpx.Response:
        start = int(request.url.params.get("after", "0"))
        nxt = request.url.copy_with(query=None).copy_merge_params({"after": str(start + 5)})
        return httpx.Response(
            200, json=events[start : start + 5], headers={"Link": f'<{nxt}>; rel="next"'}
        )

    api.routes["/api/v1/logs"] = page
    since = datetime(2024, 6, 1, tzinfo=UTC)
    with api.client() as client:
        data = collect_okta_logs(client, okta_config(), since=since, sleep=api.sleep)
    assert json.loads(data) == events
    assert api.requests[0].url.params["since"] == "2024-06-01T00:00:00Z"
    assert len(api.requests) == -(-len(events) // 5) + 1
    path = tmp_path / "okta-log.json"
    path.write_bytes(data)
    assert normalize_path(LOGS_CONNECTOR, path).facts == normalize_path(LOGS_CONNECTOR, LOG).facts


def test_collect_refuses_odd_user_ids(api: RecordedApi) -> None:  # noqa: F811
    api.serve_okta("/api/v1/users", [{"id": "../../admin"}])
    with api.client() as client, pytest.raises(CollectionError, match="unexpected id"):
        collect_okta_users(client, okta_config(), sleep=api.sleep)
