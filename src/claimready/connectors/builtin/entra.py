"""Microsoft Entra ID: MFA registration and sign-in logs, from Microsoft Graph.

Two formats, two connectors:

``entra_registration`` reads ``GET /reports/authenticationMethods/
userRegistrationDetails`` (the userRegistrationDetails resource): ``id`` is the
user's object id, ``userPrincipalName`` the UPN; ``isMfaRegistered`` — a
strong MFA method is registered; ``isMfaCapable`` — registered *and* allowed by
the authentication methods policy; ``isAdmin`` — the user holds an admin
role; ``methodsRegistered`` — the registered methods (``microsoftAuthenticatorPush``,
``mobilePhone``, ``fido2``…); ``lastUpdatedDateTime`` — when the record was
last refreshed.

``entra_signins`` reads ``GET /auditLogs/signIns`` (the signIn resource):
``createdDateTime`` — when the sign-in happened; ``userId`` /
``userPrincipalName`` — who; ``status.errorCode`` — 0 for a successful
sign-in, an AADSTS code otherwise; ``clientAppUsed`` — ``Browser`` and
``Mobile Apps and Desktop clients`` are modern authentication, every other
value (``Exchange ActiveSync``, ``IMAP4``, ``SMTP``, ``Other clients``…) is a
legacy protocol that cannot do MFA; ``authenticationRequirement`` —
``singleFactorAuthentication`` or ``multiFactorAuthentication``;
``conditionalAccessStatus`` — ``success``, ``failure`` or ``notApplied``.

Both are read as Graph responses (``{"value": [...]}``, all pages joined) or
bare arrays. Sign-in facts are per user and describe the end of the log
window (the newest sign-in in the file).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

import httpx

from claimready.assets.identity import (
    CLOUD_ID,
    UPN,
    AssetObservation,
    Identifier,
    identifier,
    source_identifier,
)
from claimready.connectors.base import (
    Connector,
    EvidenceFile,
    JsonMarkerConnector,
    Normalized,
    RecordWarning,
    SignalSpec,
)
from claimready.connectors.jsonlines import Fields, json_type_name, read_time
from claimready.connectors.live import (
    MicrosoftConfig,
    MicrosoftLiveConnector,
    Sleep,
    collect_microsoft_listing,
    odata_records,
    read_json_evidence,
    since_filter,
)
from claimready.connectors.registry import hookimpl
from claimready.facts.models import Fact

REGISTRATION_KIND = "entra_registration"
SIGNINS_KIND = "entra_signins"
USER_SOURCE = "entra"
REGISTRATION_PATH = "/v1.0/reports/authenticationMethods/userRegistrationDetails"
SIGNINS_PATH = "/v1.0/auditLogs/signIns"

SIGNAL_MFA_REGISTERED = "identity.mfa_registered"
SIGNAL_MFA_CAPABLE = "identity.mfa_capable"
SIGNAL_IS_ADMIN = "identity.is_admin"
SIGNAL_MFA_METHODS = "identity.mfa_methods"
SIGNAL_LAST_SIGN_IN = "identity.last_sign_in"
SIGNAL_LEGACY_AUTH = "signin.legacy_auth"
SIGNAL_SINGLE_FACTOR = "signin.single_factor"
SIGNAL_COUNT = "signin.count"
SIGNAL_CA_NOT_APPLIED = "signin.ca_not_applied"

MODERN_CLIENTS = frozenset({"browser", "mobile apps and desktop clients"})
SINGLE_FACTOR = "singlefactorauthentication"
CA_NOT_APPLIED = "notapplied"


def _user_observation(user_id: str, upn: str | None) -> AssetObservation:
    idents: list[Identifier] = [source_identifier(USER_SOURCE, user_id)]
    for kind, value in ((CLOUD_ID, user_id), (UPN, upn)):
        found = identifier(kind, value)
        if found is not None:
            idents.append(found)
    return AssetObservation(
        key=user_id,
        kind="user",
        display_name=upn or f"{USER_SOURCE}:{user_id}",
        identifiers=tuple(dict.fromkeys(idents)),
    )


def _undated_note(where: str, field_name: str) -> tuple[str, ...]:
    return (
        f"{where}: no readable {field_name}; the export is taken to describe its collection "
        "time (pass --observed-at for an older export)",
    )


# Live collection ---------------------------------------------------------------------------


def collect_entra_registration(
    client: httpx.Client, config: MicrosoftConfig, *, sleep: Sleep = time.sleep
) -> bytes:
    """Every userRegistrationDetails record as one Graph response document.

    Needs the application permission ``AuditLog.Read.All``.
    """
    return collect_microsoft_listing(
        client, config, config.graph_url, REGISTRATION_PATH, sleep=sleep
    )


def collect_entra_signins(
    client: httpx.Client,
    config: MicrosoftConfig,
    *,
    since: datetime | None = None,
    sleep: Sleep = time.sleep,
) -> bytes:
    """Every sign-in (at or after ``since``) as one Graph response document.

    Needs the application permissions ``AuditLog.Read.All`` and ``Directory.Read.All``.
    """
    params = since_filter("createdDateTime", since)
    return collect_microsoft_listing(
        client, config, config.graph_url, SIGNINS_PATH, params=params, sleep=sleep
    )


# userRegistrationDetails ---------------------------------------------------------------


class EntraRegistrationConnector(MicrosoftLiveConnector, JsonMarkerConnector):
    """Entra ID MFA registration per user (userRegistrationDetails)."""

    kind = REGISTRATION_KIND
    title = "Microsoft Entra ID MFA registration"
    version = "1.0"
    formats = ("Graph /reports/authenticationMethods/userRegistrationDetails JSON response",)
    signals = (
        SignalSpec(SIGNAL_MFA_REGISTERED, "bool", "a strong MFA method is registered"),
        SignalSpec(SIGNAL_MFA_CAPABLE, "bool", "registered and allowed by the methods policy"),
        SignalSpec(SIGNAL_IS_ADMIN, "bool", "the account holds an Entra ID admin role"),
        SignalSpec(SIGNAL_MFA_METHODS, "text", "registered methods, comma-separated, sorted"),
    )
    blind_spots = (
        "registration is not enforcement: whether MFA is required at sign-in is decided by "
        "Conditional Access or security defaults (see the sign-in log connector)",
        "the report needs an Entra ID P1/P2 licence; it omits accounts Graph does not list",
    )

    # Collected: every user's registration details, Microsoft Graph.
    collector = staticmethod(collect_entra_registration)
    # Detected: a Graph body naming userRegistrationDetails, or records with its MFA flags.
    detect_markers = (b"userRegistrationDetails",)
    detect_fields = ("isMfaRegistered", "methodsRegistered")

    def normalize(
        self, evidence: EvidenceFile, *, observed_at: datetime | None, collected_at: datetime
    ) -> Normalized:
        """One user asset and its MFA registration facts per record."""
        where = evidence.display_name
        records = odata_records(
            read_json_evidence(evidence), where=where, what="the userRegistrationDetails response"
        )
        warnings: list[RecordWarning] = []
        parsed = [_registration(i, raw, where, warnings) for i, raw in enumerate(records)]
        updated = [p.updated for p in parsed if p.updated is not None]
        described = observed_at or (max(updated) if updated else None)
        at = described or collected_at
        facts = [Fact(p.user_id, signal, value, at) for p in parsed for signal, value in p.values]
        return Normalized(
            observations=tuple(_user_observation(p.user_id, p.upn) for p in parsed),
            facts=tuple(facts),
            record_count=len(parsed),
            observed_from=None,
            observed_to=described,
            media_type="application/json",
            warnings=tuple(warnings),
            notes=() if described else _undated_note(where, "lastUpdatedDateTime"),
        )


@dataclass(frozen=True, slots=True)
class _Registration:
    user_id: str
    upn: str | None
    updated: datetime | None
    values: tuple[tuple[str, bool | str], ...]


def _registration(
    index: int, raw: object, where: str, warnings: list[RecordWarning]
) -> _Registration:
    fields = Fields(raw, file=where, record=index)
    user_id = str(fields.id_text("id", required=True))
    label = f"{index} (id {user_id})"
    values: list[tuple[str, bool | str]] = []
    for name, signal in (
        ("isMfaRegistered", SIGNAL_MFA_REGISTERED),
        ("isMfaCapable", SIGNAL_MFA_CAPABLE),
        ("isAdmin", SIGNAL_IS_ADMIN),
    ):
        flag = fields.boolean(name)
        if flag is None:
            warnings.append(RecordWarning(label, name, "missing; not known for this user"))
        else:
            values.append((signal, flag))
    methods = fields.array("methodsRegistered")
    if methods is not None:
        for position, method in enumerate(methods):
            if not isinstance(method, str):
                raise fields.error(
                    f"methodsRegistered[{position}]",
                    f"expected text, found {json_type_name(method)}",
                )
        values.append((SIGNAL_MFA_METHODS, ",".join(sorted({str(m) for m in methods}))))
    return _Registration(
        user_id=user_id,
        upn=fields.text("userPrincipalName"),
        updated=read_time(fields, "lastUpdatedDateTime", warnings=warnings, label=label),
        values=tuple(values),
    )


# signIns ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _UserSignIns:
    user_id: str
    upn: str | None = None
    successes: int = 0
    ca_not_applied: int = 0
    last_success: datetime | None = None
    last_legacy: datetime | None = None
    last_single_factor: datetime | None = None
    facts: list[Fact] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _SignIn:
    user_id: str
    upn: str | None
    at: datetime
    success: bool
    client_app: str | None
    requirement: str | None
    ca_status: str | None


def _later(current: datetime | None, moment: datetime) -> datetime:
    return moment if current is None or moment > current else current


class EntraSignInsConnector(MicrosoftLiveConnector, JsonMarkerConnector):
    """Entra ID sign-in logs: legacy protocols, single-factor sign-ins, activity per user."""

    kind = SIGNINS_KIND
    title = "Microsoft Entra ID sign-in logs"
    version = "1.0"
    formats = ("Graph /auditLogs/signIns JSON response (all pages joined)",)
    signals = (
        SignalSpec(SIGNAL_COUNT, "number", "successful sign-ins in the log window"),
        SignalSpec(SIGNAL_LAST_SIGN_IN, "time", "the newest successful sign-in"),
        SignalSpec(
            SIGNAL_LEGACY_AUTH, "time", "the newest successful sign-in over a legacy protocol"
        ),
        SignalSpec(
            SIGNAL_SINGLE_FACTOR, "time", "the newest successful sign-in that needed one factor"
        ),
        SignalSpec(
            SIGNAL_CA_NOT_APPLIED,
            "number",
            "successful sign-ins no Conditional Access policy applied to",
        ),
    )
    blind_spots = (
        "only the collected window is covered (Entra keeps 30 days with P1/P2, 7 without)",
        "the default /auditLogs/signIns listing holds interactive user sign-ins; service "
        "principal and managed identity sign-ins are not included",
        "a user with no sign-in in the window does not appear",
    )

    # Collected: sign-ins within the ``lookback`` window (default 1d), Microsoft Graph.
    collector = staticmethod(collect_entra_signins)
    uses_lookback = True
    # Detected: a Graph body naming auditLogs/signIns, or records with sign-in fields.
    detect_markers = (b"$metadata#auditLogs/signIns",)
    detect_fields = ("clientAppUsed", "createdDateTime", "userPrincipalName")

    def normalize(
        self, evidence: EvidenceFile, *, observed_at: datetime | None, collected_at: datetime
    ) -> Normalized:
        """Per-user sign-in facts, describing the end of the log window."""
        where = evidence.display_name
        records = odata_records(
            read_json_evidence(evidence), where=where, what="the auditLogs/signIns response"
        )
        warnings: list[RecordWarning] = []
        events = [
            event
            for index, raw in enumerate(records)
            if (event := _sign_in(index, raw, where, warnings)) is not None
        ]
        users: dict[str, _UserSignIns] = {}
        for event in events:
            user = users.setdefault(event.user_id, _UserSignIns(event.user_id))
            user.upn = user.upn or event.upn
            _count(user, event)
        described = observed_at or (max(e.at for e in events) if events else None)
        at = described or collected_at
        facts = [fact for user in users.values() for fact in _sign_in_facts(user, at)]
        return Normalized(
            observations=tuple(_user_observation(u.user_id, u.upn) for u in users.values()),
            facts=tuple(facts),
            record_count=len(records),
            observed_from=min(e.at for e in events) if events and not observed_at else None,
            observed_to=described,
            media_type="application/json",
            warnings=tuple(warnings),
            notes=() if described else _undated_note(where, "createdDateTime"),
        )


def _sign_in(index: int, raw: object, where: str, warnings: list[RecordWarning]) -> _SignIn | None:
    fields = Fields(raw, file=where, record=index)
    sign_in_id = str(fields.id_text("id", required=True))
    label = f"{index} (id {sign_in_id})"
    user_id = fields.text("userId")
    at = read_time(fields, "createdDateTime", warnings=warnings, label=label)
    status = fields.obj("status")
    code = status.number("errorCode") if status is not None else None
    client_app = fields.text("clientAppUsed")
    requirement = fields.text("authenticationRequirement")
    if at is None:
        if fields.raw.get("createdDateTime") is None:
            warnings.append(RecordWarning(label, "createdDateTime", "missing; sign-in undated"))
        return None
    problem = _unusable(user_id, code, client_app, requirement)
    if problem is not None or not user_id or code is None:
        if problem is not None:
            warnings.append(RecordWarning(label, problem[0], problem[1]))
        return None
    return _SignIn(
        user_id=user_id,
        upn=fields.text("userPrincipalName"),
        at=at,
        success=code == 0,
        client_app=client_app,
        requirement=requirement,
        ca_status=fields.text("conditionalAccessStatus"),
    )


def _unusable(
    user_id: str | None, code: float | None, client_app: str | None, requirement: str | None
) -> tuple[str, str] | None:
    """Why a dated sign-in cannot be counted, or None when it can."""
    if not user_id:
        return ("userId", "missing; the sign-in has no user")
    if code is None:
        return ("status.errorCode", "missing; cannot tell whether the sign-in succeeded")
    if code == 0 and not client_app:
        return ("clientAppUsed", "missing; cannot tell whether a legacy protocol was used")
    if code == 0 and not requirement:
        return ("authenticationRequirement", "missing; cannot tell whether MFA was required")
    return None


def _count(user: _UserSignIns, event: _SignIn) -> None:
    if not event.success:
        return
    user.successes += 1
    user.last_success = _later(user.last_success, event.at)
    if (event.client_app or "").strip().lower() not in MODERN_CLIENTS:
        user.last_legacy = _later(user.last_legacy, event.at)
    if (event.requirement or "").strip().lower() == SINGLE_FACTOR:
        user.last_single_factor = _later(user.last_single_factor, event.at)
    if (event.ca_status or "").strip().lower() == CA_NOT_APPLIED:
        user.ca_not_applied += 1


def _sign_in_facts(user: _UserSignIns, at: datetime) -> list[Fact]:
    key = user.user_id
    facts = [
        Fact(key, SIGNAL_COUNT, user.successes, at),
        Fact(key, SIGNAL_CA_NOT_APPLIED, user.ca_not_applied, at),
    ]
    for signal, moment in (
        (SIGNAL_LAST_SIGN_IN, user.last_success),
        (SIGNAL_LEGACY_AUTH, user.last_legacy),
        (SIGNAL_SINGLE_FACTOR, user.last_single_factor),
    ):
        if moment is not None:
            facts.append(Fact(key, signal, moment, at))
    return facts


@hookimpl
def claimready_connectors() -> list[Connector]:
    """Register both Entra ID connectors."""
    return [EntraRegistrationConnector(), EntraSignInsConnector()]
