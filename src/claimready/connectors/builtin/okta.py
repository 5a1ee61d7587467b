"""Okta: users with their enrolled MFA factors, and the System Log.

``okta_users`` reads the Users API listing (``GET /api/v1/users``: a JSON
array of User objects) or the bundle the live collector writes, ``{"users":
[...], "factors": {"<user id>": [...]}}``, where each factor list is the
response of ``GET /api/v1/users/{id}/factors``. User fields: ``id``;
``status`` (``STAGED``, ``PROVISIONED``, ``ACTIVE``, ``RECOVERY``,
``PASSWORD_EXPIRED``, ``LOCKED_OUT``, ``SUSPENDED``, ``DEPROVISIONED``);
``profile.login`` (the sign-in name, usually the UPN); ``lastLogin``;
``lastUpdated``, ``statusChanged``. Factor fields: ``factorType`` (``push``,
``token:software:totp``, ``sms``, ``webauthn``, ``question``…) and ``status``
(``ACTIVE``, ``PENDING_ACTIVATION``, ``INACTIVE``…).

``okta_logs`` reads the System Log (``GET /api/v1/logs``: a JSON array of
LogEvent objects, or one LogEvent per line). LogEvent fields: ``eventType``,
``published`` (when it happened), ``actor`` (``type``, ``id``,
``alternateId`` = the login), ``outcome.result`` (``SUCCESS``, ``FAILURE``,
``DENY``…), ``authenticationContext.externalSessionId`` (the session the
event belongs to). The rules (see the connector docs):

* a sign-in is a ``user.session.start`` event with outcome ``SUCCESS``;
* a sign-in is single-factor when its session (same actor, same
  ``externalSessionId``) shows no MFA challenge at all: no
  ``user.authentication.auth_via_mfa``, ``user.mfa.okta_verify.deny_push`` or
  ``user.mfa.attempt_bypass`` event, whatever its outcome (a challenged
  sign-in whose MFA failed did not get in on one factor);
  ``authenticationContext.authenticationStep`` is documented by Okta as
  always 0, so it cannot tell factors apart and is not used;
* an MFA denial is ``user.mfa.okta_verify.deny_push`` (the user pressed
  "No, it's not me"), or an MFA event with outcome ``FAILURE`` or ``DENY``.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from claimready.assets.identity import (
    UPN,
    AssetObservation,
    Identifier,
    identifier,
    source_identifier,
)
from claimready.connectors.base import (
    Connector,
    EvidenceFile,
    Normalized,
    RecordWarning,
    SignalSpec,
)
from claimready.connectors.jsonlines import Fields, iter_json_objects, read_time
from claimready.connectors.live import (
    OktaConfig,
    OktaLiveConnector,
    Sleep,
    collect_okta_list,
    dump_document,
    read_json_evidence,
)
from claimready.connectors.registry import hookimpl
from claimready.errors import CollectionError, InputError
from claimready.facts.models import Fact
from claimready.timeutil import format_utc, parse_utc

USERS_KIND = "okta_users"
LOGS_KIND = "okta_logs"
SOURCE = "okta"

SIGNAL_ENABLED = "identity.enabled"
SIGNAL_MFA_REGISTERED = "identity.mfa_registered"
SIGNAL_MFA_METHODS = "identity.mfa_methods"
SIGNAL_LAST_SIGN_IN = "identity.last_sign_in"
SIGNAL_COUNT = "signin.count"
SIGNAL_SINGLE_FACTOR = "signin.single_factor"
SIGNAL_MFA_DENIED = "signin.mfa_denied"

ENABLED_STATUSES = frozenset({"ACTIVE", "RECOVERY", "PASSWORD_EXPIRED", "LOCKED_OUT"})
ACTIVE_FACTOR = "ACTIVE"
SESSION_START = "user.session.start"
MFA_VERIFY = "user.authentication.auth_via_mfa"
DENY_PUSH = "user.mfa.okta_verify.deny_push"
MFA_EVENTS = frozenset({MFA_VERIFY, DENY_PUSH, "user.mfa.attempt_bypass"})
RELEVANT_EVENTS = frozenset({SESSION_START, *MFA_EVENTS})
FAILED_RESULTS = frozenset({"FAILURE", "DENY"})
_UNKNOWN_SESSION = frozenset({"", "unknown"})
_BUNDLE_START = re.compile(rb'^\s*\{\s*"users"\s*:')
_OKTA_ID = re.compile(r"[A-Za-z0-9]{1,64}")


def _user_observation(user_id: str, login: str | None) -> AssetObservation:
    idents: list[Identifier] = [source_identifier(SOURCE, user_id)]
    upn = identifier(UPN, login)
    if upn is not None:
        idents.append(upn)
    return AssetObservation(
        key=user_id,
        kind="user",
        display_name=login or f"{SOURCE}:{user_id}",
        identifiers=tuple(idents),
    )


# Live collection ---------------------------------------------------------------------------


def collect_okta_users(
    client: httpx.Client, config: OktaConfig, *, sleep: Sleep = time.sleep
) -> bytes:
    """Every user and each user's enrolled factors, as one bundle document.

    Needs a read-only administrator API token (scopes ``okta.users.read``,
    ``okta.factors.read`` for an OAuth service app).
    """
    users = collect_okta_list(client, config, "/api/v1/users", params={"limit": "200"}, sleep=sleep)
    factors: dict[str, Any] = {}
    for user in users:
        user_id = user.get("id") if isinstance(user, dict) else None
        if not isinstance(user_id, str) or not _OKTA_ID.fullmatch(user_id):
            raise CollectionError(f"a user has an unexpected id {user_id!r}", source=config.org_url)
        factors[user_id] = collect_okta_list(
            client, config, f"/api/v1/users/{user_id}/factors", sleep=sleep
        )
    return dump_document({"users": users, "factors": factors})


def collect_okta_logs(
    client: httpx.Client,
    config: OktaConfig,
    *,
    since: datetime,
    until: datetime | None = None,
    sleep: Sleep = time.sleep,
) -> bytes:
    """Every System Log event from ``since`` (to ``until``), as one JSON array."""
    params = {"since": format_utc(since), "limit": "1000", "sortOrder": "ASCENDING"}
    if until is not None:
        params["until"] = format_utc(until)
    events = collect_okta_list(
        client, config, "/api/v1/logs", params=params, stop_on_empty=True, sleep=sleep
    )
    return dump_document(events)


# Users and factors -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _User:
    user_id: str
    login: str | None
    status: str
    last_login: datetime | None
    times: tuple[datetime, ...]


class OktaUsersConnector(OktaLiveConnector):
    """Okta users: enabled accounts, MFA enrolment and last sign-in."""

    kind = USERS_KIND
    title = "Okta users and MFA factors"
    version = "1.0"
    formats = (
        "/api/v1/users JSON array",
        'collector bundle {"users": [...], "factors": {"<user id>": [...]}}',
    )
    signals = (
        SignalSpec(
            SIGNAL_ENABLED, "bool", "the account can sign in (ACTIVE or a recoverable state)"
        ),
        SignalSpec(SIGNAL_MFA_REGISTERED, "bool", "at least one MFA factor is ACTIVE"),
        SignalSpec(SIGNAL_MFA_METHODS, "text", "ACTIVE factor types, comma-separated, sorted"),
        SignalSpec(SIGNAL_LAST_SIGN_IN, "time", "the user's last sign-in (lastLogin)"),
    )
    blind_spots = (
        "a users array without factor lists says nothing about MFA: those users stay unverified",
        "the Users API omits DEPROVISIONED users unless asked for them by filter",
        "enrolment is not enforcement: sign-on policies decide whether MFA is required",
    )

    # Collected: every user with enrolled factors, Okta API.
    collector = staticmethod(collect_okta_users)

    def detect(self, *, name: str, head: bytes) -> bool:
        """A collector bundle, or an array of Okta User objects."""
        if _BUNDLE_START.match(head):
            return b'"profile"' in head or b'"factors"' in head
        return (
            b'"profile"' in head
            and b'"login"' in head
            and (b'"statusChanged"' in head or b'"passwordChanged"' in head)
        )

    def normalize(
        self, evidence: EvidenceFile, *, observed_at: datetime | None, collected_at: datetime
    ) -> Normalized:
        """One user asset per user, with MFA facts where factor lists were collected."""
        where = evidence.display_name
        raw_users, raw_factors = _split_bundle(read_json_evidence(evidence), where=where)
        warnings: list[RecordWarning] = []
        users = [_user(index, raw, where, warnings) for index, raw in enumerate(raw_users)]
        factors = _factors(raw_factors, where=where, warnings=warnings)
        times = [t for u in users for t in u.times] + [t for _, t in factors.values() if t]
        described = observed_at or (max(times) if times else None)
        at = described or collected_at
        facts: list[Fact] = []
        for index, user in enumerate(users):
            facts.extend(_user_facts(user, at))
            if raw_factors is None:
                continue
            if user.user_id not in factors:
                warnings.append(
                    RecordWarning(f"{index} (id {user.user_id})", "factors", "no factor list")
                )
                continue
            methods = factors[user.user_id][0]
            facts.append(Fact(user.user_id, SIGNAL_MFA_REGISTERED, bool(methods), at))
            facts.append(Fact(user.user_id, SIGNAL_MFA_METHODS, ",".join(methods), at))
        notes: list[str] = []
        if raw_factors is None:
            notes.append(f"{where}: users only, no factor lists; MFA enrolment is not known")
        if not described:
            notes.append(f"{where}: no readable time in the users; taken to describe collection")
        return Normalized(
            observations=tuple(_user_observation(u.user_id, u.login) for u in users),
            facts=tuple(facts),
            record_count=len(users),
            observed_from=None,
            observed_to=described,
            media_type="application/json",
            warnings=tuple(warnings),
            notes=tuple(notes),
        )


def _split_bundle(document: Any, *, where: str) -> tuple[list[Any], Any]:
    if isinstance(document, list):
        return document, None
    if not isinstance(document, dict) or not isinstance(document.get("users"), list):
        raise InputError(
            "expected a JSON array of users or an object with a 'users' array",
            file=where,
            field="users",
        )
    factors = document.get("factors")
    if factors is not None and not isinstance(factors, dict):
        raise InputError(
            f"expected an object keyed by user id, found {type(factors).__name__}",
            file=where,
            field="factors",
        )
    return document["users"], factors if factors is not None else None


def _user(index: int, raw: object, where: str, warnings: list[RecordWarning]) -> _User:
    fields = Fields(raw, file=where, record=index)
    user_id = str(fields.id_text("id", required=True))
    label = f"{index} (id {user_id})"
    profile = fields.obj("profile")
    last_login = read_time(fields, "lastLogin", warnings=warnings, label=label)
    times = [last_login] + [
        read_time(fields, name, warnings=warnings, label=label)
        for name in ("lastUpdated", "statusChanged")
    ]
    return _User(
        user_id=user_id,
        login=profile.text("login") if profile is not None else None,
        status=str(fields.text("status", required=True)),
        last_login=last_login,
        times=tuple(t for t in times if t is not None),
    )


def _user_facts(user: _User, at: datetime) -> list[Fact]:
    facts = [Fact(user.user_id, SIGNAL_ENABLED, user.status.upper() in ENABLED_STATUSES, at)]
    if user.last_login is not None:
        facts.append(Fact(user.user_id, SIGNAL_LAST_SIGN_IN, user.last_login, at))
    return facts


def _factors(
    raw: Any, *, where: str, warnings: list[RecordWarning]
) -> dict[str, tuple[tuple[str, ...], datetime | None]]:
    """Per user: the sorted ACTIVE factor types and the newest factor update time."""
    found: dict[str, tuple[tuple[str, ...], datetime | None]] = {}
    for user_id, entries in sorted((raw or {}).items()):
        if not isinstance(entries, list):
            raise InputError(
                f"expected an array of factors, found {type(entries).__name__}",
                file=where,
                record=f"factors of {user_id}",
            )
        active: set[str] = set()
        newest: datetime | None = None
        for position, entry in enumerate(entries):
            fields = Fields(entry, file=where, record=f"factors of {user_id} [{position}]")
            factor_type = str(fields.text("factorType", required=True))
            if str(fields.text("status", required=True)).upper() == ACTIVE_FACTOR:
                active.add(factor_type)
            updated = read_time(fields, "lastUpdated", warnings=warnings)
            if updated is not None and (newest is None or updated > newest):
                newest = updated
        found[user_id] = (tuple(sorted(active)), newest)
    return found


# System Log ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Event:
    event_type: str
    at: datetime
    actor_id: str
    login: str | None
    result: str
    session: str | None
    label: str


@dataclass(slots=True)
class _Actor:
    actor_id: str
    login: str | None
    sign_ins: int = 0
    last_sign_in: datetime | None = None
    last_single_factor: datetime | None = None
    last_denied: datetime | None = None
    starts: list[_Event] = field(default_factory=list)


def _later(current: datetime | None, moment: datetime) -> datetime:
    return moment if current is None or moment > current else current


class OktaLogsConnector(OktaLiveConnector):
    """Okta System Log: sign-ins, single-factor sign-ins and MFA denials per user."""

    kind = LOGS_KIND
    title = "Okta System Log"
    version = "1.0"
    formats = ("/api/v1/logs JSON array of LogEvent", "LogEvent JSON lines")
    signals = (
        SignalSpec(SIGNAL_COUNT, "number", "successful sign-ins (user.session.start) in the log"),
        SignalSpec(SIGNAL_LAST_SIGN_IN, "time", "the newest successful sign-in"),
        SignalSpec(
            SIGNAL_SINGLE_FACTOR,
            "time",
            "the newest successful sign-in whose session shows no MFA challenge",
        ),
        SignalSpec(SIGNAL_MFA_DENIED, "time", "the newest denied or failed MFA challenge"),
    )
    blind_spots = (
        "only the collected window is covered (Okta keeps 90 days)",
        "a session whose MFA step falls outside the window looks single-factor",
        "sessions without an externalSessionId cannot be classified and are warned about",
    )

    # Collected: System Log events within the ``lookback`` window (default 1d).
    collector = staticmethod(collect_okta_logs)
    uses_lookback = True

    def detect(self, *, name: str, head: bytes) -> bool:
        """LogEvent objects: eventType, published and actor, plus an Okta-only field."""
        return (
            b'"eventType"' in head
            and b'"published"' in head
            and b'"actor"' in head
            and (b'"legacyEventType"' in head or b'"authenticationContext"' in head)
        )

    def normalize(
        self, evidence: EvidenceFile, *, observed_at: datetime | None, collected_at: datetime
    ) -> Normalized:
        """Per-user sign-in facts describing the end of the log window."""
        warnings: list[RecordWarning] = []
        records = 0
        window: list[datetime] = []
        actors: dict[str, _Actor] = {}
        mfa_sessions: set[tuple[str, str]] = set()
        for label, raw in _log_records(evidence):
            records += 1
            event = _event(label, raw, evidence.display_name, warnings, window)
            if event is not None:
                _record(event, actors, mfa_sessions)
        for actor in actors.values():
            _classify_sessions(actor, mfa_sessions, warnings)
        described = observed_at or (max(window) if window else None)
        at = described or collected_at
        facts = [fact for actor in actors.values() for fact in _actor_facts(actor, at)]
        return Normalized(
            observations=tuple(_user_observation(a.actor_id, a.login) for a in actors.values()),
            facts=tuple(facts),
            record_count=records,
            observed_from=min(window) if window and not observed_at else None,
            observed_to=described,
            media_type="application/json",
            warnings=tuple(warnings),
            notes=() if described else (f"{evidence.display_name}: no readable event time",),
        )


def _log_records(evidence: EvidenceFile) -> Any:
    """``(record label, raw event)`` pairs from a JSON array or JSON lines."""
    with evidence.path.open("rb") as handle:
        first = handle.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if first == b"[":
        document = read_json_evidence(evidence)
        return ((index, raw) for index, raw in enumerate(document))
    if first != b"{":
        raise InputError(
            "expected a JSON array of LogEvent objects or one LogEvent per line",
            file=evidence.display_name,
        )
    return (
        (f"line {number}", raw)
        for number, raw in iter_json_objects(evidence.path, file=evidence.display_name)
    )


def _event(
    label: str | int, raw: object, where: str, warnings: list[RecordWarning], window: list[datetime]
) -> _Event | None:
    fields = Fields(raw, file=where, record=label)
    event_type = str(fields.text("eventType", required=True))
    if event_type not in RELEVANT_EVENTS:
        published = fields.raw.get("published")
        moment = _quiet_time(published)
        if moment is not None:
            window.append(moment)
        return None
    at = read_time(fields, "published", warnings=warnings, label=str(label))
    if at is None:
        if fields.raw.get("published") is None:
            warnings.append(RecordWarning(str(label), "published", "missing; event undated"))
        return None
    window.append(at)
    actor = fields.obj("actor")
    if actor is None or (actor.text("type") or "") != "User":
        return None
    outcome = fields.obj("outcome")
    context = fields.obj("authenticationContext")
    return _Event(
        event_type=event_type,
        at=at,
        actor_id=str(actor.id_text("id", required=True)),
        login=actor.text("alternateId"),
        result=((outcome.text("result") if outcome else None) or "").upper(),
        session=context.text("externalSessionId") if context else None,
        label=str(label),
    )


def _quiet_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_utc(value)
    except ValueError:
        return None


def _record(event: _Event, actors: dict[str, _Actor], mfa_sessions: set[tuple[str, str]]) -> None:
    actor = actors.setdefault(event.actor_id, _Actor(event.actor_id, event.login))
    actor.login = actor.login or event.login
    if event.event_type == SESSION_START and event.result == "SUCCESS":
        actor.sign_ins += 1
        actor.last_sign_in = _later(actor.last_sign_in, event.at)
        actor.starts.append(event)
    if event.event_type in MFA_EVENTS and event.session:
        mfa_sessions.add((event.actor_id, event.session.strip()))
    if event.event_type == DENY_PUSH or (
        event.event_type in MFA_EVENTS and event.result in FAILED_RESULTS
    ):
        actor.last_denied = _later(actor.last_denied, event.at)


def _classify_sessions(
    actor: _Actor, mfa_sessions: set[tuple[str, str]], warnings: list[RecordWarning]
) -> None:
    for start in actor.starts:
        session = (start.session or "").strip()
        if session.lower() in _UNKNOWN_SESSION:
            warnings.append(
                RecordWarning(
                    start.label,
                    "authenticationContext.externalSessionId",
                    "missing; cannot tell whether MFA followed this sign-in",
                )
            )
        elif (actor.actor_id, session) not in mfa_sessions:
            actor.last_single_factor = _later(actor.last_single_factor, start.at)


def _actor_facts(actor: _Actor, at: datetime) -> list[Fact]:
    key = actor.actor_id
    facts = [Fact(key, SIGNAL_COUNT, actor.sign_ins, at)]
    for signal, moment in (
        (SIGNAL_LAST_SIGN_IN, actor.last_sign_in),
        (SIGNAL_SINGLE_FACTOR, actor.last_single_factor),
        (SIGNAL_MFA_DENIED, actor.last_denied),
    ):
        if moment is not None:
            facts.append(Fact(key, signal, moment, at))
    return facts


@hookimpl
def claimready_connectors() -> list[Connector]:
    """Register both Okta connectors."""
    return [OktaUsersConnector(), OktaLogsConnector()]
