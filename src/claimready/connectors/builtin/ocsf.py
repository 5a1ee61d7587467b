"""OCSF 1.x events (Open Cybersecurity Schema Framework): findings, sign-ins, inventory, patches.

Reads a JSON array of events, one event object, or JSON lines. Every event is
validated against the shipped JSON Schema for its ``class_uid`` (the required
attributes of the class and the types of the attributes read here); a
failure names the file, the record index and the JSON path of the field.

Attributes read, by class:

* all: ``class_uid``; ``time`` (timestamp_t, milliseconds since the epoch;
  a value below 10^11 cannot be milliseconds of this century and is read as
  seconds, as Prowler writes it); ``metadata.event_code``,
  ``metadata.product.name``.
* findings (2002 Vulnerability, 2003 Compliance, 2004 Detection): the
  outcome from ``status_code`` (``PASS``/``FAIL``, Prowler's convention),
  else ``compliance.status_id`` (1 Pass, 3 Fail), else an open
  ``status_id`` (1 New, 2 In Progress, or absent) counts as failed;
  ``finding_info.uid``/``title``; ``resources[].uid``/``name`` (the affected
  cloud resources), ``cloud.account.uid`` when no resource is named;
  ``vulnerabilities[].cve.uid`` and ``severity``.
* 2005 Incident Finding: validated and counted; incidents are not per-asset facts.
* 3002 Authentication: ``user.uid``/``name``/``email_addr``, ``status_id``
  (1 Success, 2 Failure), ``is_mfa``, ``auth_protocol_id``/``auth_protocol``.
* 5001 Device Inventory Info: ``device.uid``/``hostname``/``instance_uid``/
  ``mac``/``hw_info.serial_number``/``type_id``, ``device.os.name``/``version``.
* 5004 OS Patch State: ``device`` as above and ``kb_article_list[]``
  (``severity``, ``install_state_id``: 1 Installed, 2 Not Installed,
  3 Installed Pending Reboot).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

import jsonschema

from claimready.assets.identity import (
    CLOUD_ID,
    MAC,
    SERIAL,
    UPN,
    AssetObservation,
    Identifier,
    host_identifiers,
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
from claimready.connectors.builtin.wazuh import CVE_PATTERN, SEVERITY_SIGNALS, load_document
from claimready.connectors.jsonlines import (
    Fields,
    first_json_line,
    iter_json_lines,
    json_type_name,
)
from claimready.connectors.registry import hookimpl
from claimready.errors import InputError
from claimready.facts.models import Fact, FactValue

KIND = "ocsf"
SCHEMA_FILE = "events-1.x.schema.json"
SUPPORTED_CLASSES = (2002, 2003, 2004, 2005, 3002, 5001, 5004)
FINDING_CLASSES = frozenset({2002, 2003, 2004})
_SECONDS_LIMIT = 10**11
_OPEN_STATUS = frozenset({None, 1, 2})
_LEGACY_PROTOCOL_IDS = frozenset({1, 7, 8, 11})
_LEGACY_PROTOCOL_NAMES = frozenset({"ntlm", "pap", "chap", "basic", "basic authentication"})
_DEVICE_KINDS = {1: "server", 2: "workstation", 3: "workstation"}

SIGNALS = (
    SignalSpec("posture.check_failed", "text", "a failed posture check (one fact per check id)"),
    SignalSpec("posture.check_passed", "text", "a passed posture check (one fact per check id)"),
    SignalSpec("posture.failed_count", "number", "failed posture checks on the resource"),
    SignalSpec("vuln.cve", "text", "an open CVE on the asset (one fact per CVE)"),
    *(SignalSpec(s, "number", f"open {k} vulnerabilities") for k, s in SEVERITY_SIGNALS.items()),
    SignalSpec("signin.legacy_auth", "time", "latest successful legacy-protocol sign-in"),
    SignalSpec("signin.single_factor", "time", "latest successful sign-in without MFA"),
    SignalSpec("signin.mfa_denied", "time", "latest sign-in that failed at MFA"),
    SignalSpec("signin.count", "number", "sign-ins of the user in the file"),
    SignalSpec("device.os", "text", "operating system name"),
    SignalSpec("device.os_version", "text", "operating system version"),
    SignalSpec("patch.pending_critical", "number", "critical patches not installed"),
)


@cache
def _schema() -> dict[str, Any]:
    text = resources.files("claimready.connectors").joinpath("schemas", "ocsf", SCHEMA_FILE)
    loaded: dict[str, Any] = json.loads(text.read_text(encoding="utf-8"))
    return loaded


@cache
def _validator(class_uid: int) -> jsonschema.protocols.Validator:
    schema = _schema()
    root = {"$ref": f"#/$defs/class_{class_uid}", "$defs": schema["$defs"]}
    validator: jsonschema.protocols.Validator = jsonschema.Draft202012Validator(root)
    return validator


def _json_path(error: jsonschema.ValidationError) -> str:
    path = "$"
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    required = error.validator_value
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = (
            [n for n in required if n not in error.instance] if isinstance(required, list) else []
        )
        if missing:
            path += f".{missing[0]}"
    return path


def validate_event(raw: Any, *, file: str, record: int | str) -> int:
    """Check ``raw`` against its class's schema; the class uid, or InputError naming the path."""
    event = Fields(raw, file=file, record=record)
    class_uid = event.number("class_uid", required=True)
    if class_uid is None or class_uid not in SUPPORTED_CLASSES:
        supported = ", ".join(str(c) for c in SUPPORTED_CLASSES)
        raise event.error("class_uid", f"expected one of {supported}, found {raw['class_uid']!r}")
    error = jsonschema.exceptions.best_match(_validator(int(class_uid)).iter_errors(raw))
    if error is not None:
        raise InputError(
            f"not a valid OCSF {int(class_uid)} event: {error.message}",
            file=file,
            record=record,
            field=_json_path(error),
        )
    return int(class_uid)


@dataclass(slots=True)
class _State:
    where: str
    observed_at: datetime | None
    observations: dict[str, AssetObservation] = field(default_factory=dict)
    facts: list[Fact] = field(default_factory=list)
    warnings: list[RecordWarning] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    times: list[datetime] = field(default_factory=list)
    failed: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    latest: dict[tuple[str, str], datetime] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def fact(self, key: str, signal: str, value: FactValue, at: datetime) -> None:
        self.facts.append(Fact(key, signal, value, self.observed_at or at))

    def latest_of(self, key: str, signal: str, moment: datetime) -> None:
        previous = self.latest.get((key, signal))
        if previous is None or moment > previous:
            self.latest[(key, signal)] = moment


def _event_time(event: Fields, state: _State) -> datetime | None:
    value = event.need_number("time")
    if value < _SECONDS_LIMIT:
        note = f"{state.where}: 'time' is in seconds, not OCSF's milliseconds; read as seconds"
        if note not in state.notes:
            state.notes.append(note)
        value *= 1000
    try:
        moment = datetime.fromtimestamp(value / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        state.warnings.append(RecordWarning(str(event.record), "time", f"out of range: {value}"))
        return None
    state.times.append(moment)
    return moment


def _resource_assets(event: Fields, state: _State) -> list[str]:
    keys: list[str] = []
    for resource in event.objects("resources"):
        uid = resource.text("uid")
        if uid and uid.strip():
            idents = [source_identifier(KIND, uid), identifier(CLOUD_ID, uid)]
            name = resource.text("name") or uid
            _observe(state, uid, "cloud_resource", name, idents)
            keys.append(uid)
    if keys:
        return keys
    cloud = event.obj("cloud")
    account = cloud.obj("account") if cloud else None
    uid = account.text("uid") if account else None
    if uid and uid.strip():
        idents = [source_identifier(KIND, uid), identifier(CLOUD_ID, uid)]
        _observe(state, uid, "cloud_resource", uid, idents)
        return [uid]
    device_key = _device_asset(event, state)
    return [device_key] if device_key else []


def _observe(
    state: _State, key: str, kind: str, name: str, idents: list[Identifier | None]
) -> None:
    found = tuple(dict.fromkeys(i for i in idents if i is not None))
    state.observations.setdefault(key, AssetObservation(key, kind, name, found))


def _outcome(event: Fields, class_uid: int) -> str | None:
    code = event.text("status_code")
    if code is not None and code.strip().upper() in ("PASS", "FAIL"):
        return code.strip().upper()
    if code is not None:
        return None
    compliance = event.obj("compliance")
    if class_uid == 2003 and compliance is not None:
        return {1: "PASS", 3: "FAIL"}.get(int(compliance.number("status_id") or 0))
    status = event.number("status_id")
    return "FAIL" if (None if status is None else int(status)) in _OPEN_STATUS else None


def _check_id(event: Fields) -> str:
    metadata = event.obj("metadata")
    code = metadata.text("event_code") if metadata else None
    info = event.obj("finding_info")
    title = info.text("title") if info else None
    uid = info.text("uid") if info else None
    return code or (title if uid is None or uid.startswith("<") else uid) or str(uid)


def _finding(event: Fields, class_uid: int, at: datetime, state: _State) -> None:
    keys = _resource_assets(event, state)
    if not keys:
        state.warnings.append(RecordWarning(str(event.record), "resources", "names no asset"))
        return
    outcome = _outcome(event, class_uid)
    if class_uid == 2002:
        if outcome == "FAIL":
            _vulnerabilities(event, keys, at, state)
        return
    if outcome is None:
        return
    check = _check_id(event)
    signal = "posture.check_failed" if outcome == "FAIL" else "posture.check_passed"
    for key in keys:
        state.fact(key, signal, check, at)
        state.latest_of(key, "posture", at)
        if outcome == "FAIL":
            state.failed[key] += 1


def _vulnerabilities(event: Fields, keys: list[str], at: datetime, state: _State) -> None:
    for vuln in event.objects("vulnerabilities"):
        cve = vuln.obj("cve")
        uid = cve.text("uid") if cve else None
        severity = (vuln.text("severity") or "").lower()
        for key in keys:
            if uid and CVE_PATTERN.fullmatch(uid):
                state.fact(key, "vuln.cve", uid.upper(), at)
            if severity in SEVERITY_SIGNALS:
                state.counts[f"{key}\0{SEVERITY_SIGNALS[severity]}"] += 1
            state.latest_of(key, "vuln", at)


def _device_asset(event: Fields, state: _State) -> str | None:
    device = event.obj("device")
    if device is None:
        return None
    uid, hostname = device.text("uid"), device.text("hostname") or device.text("name")
    hw = device.obj("hw_info")
    idents: list[Identifier | None] = [
        source_identifier(KIND, f"{_product(event)}/{uid}") if uid else None,
        *host_identifiers(hostname),
        identifier(CLOUD_ID, device.text("instance_uid")),
        identifier(MAC, device.text("mac")),
        identifier(SERIAL, hw.text("serial_number") if hw else None),
    ]
    key = uid or hostname
    if not key:
        return None
    kind = _DEVICE_KINDS.get(int(device.number("type_id") or 0), "endpoint")
    _observe(state, key, kind, hostname or key, idents)
    return key


def _product(event: Fields) -> str:
    metadata = event.obj("metadata")
    product = metadata.obj("product") if metadata else None
    return (product.text("name") if product else None) or "unknown"


def _authentication(event: Fields, at: datetime, state: _State) -> None:
    user = event.need("user")
    upn = user.text("email_addr") or (
        user.text("name") if "@" in (user.text("name") or "") else None
    )
    uid = user.text("uid")
    key = uid or upn or user.text("name")
    if not key:
        state.warnings.append(RecordWarning(str(event.record), "user", "names no user"))
        return
    idents = [
        source_identifier(KIND, f"{_product(event)}/{uid}") if uid else None,
        identifier(UPN, upn),
    ]
    _observe(state, key, "user", upn or user.text("name") or key, idents)
    state.counts[f"{key}\0signin.count"] += 1
    state.latest_of(key, "signin.seen", at)
    status = event.number("status_id")
    mfa = event.boolean("is_mfa")
    if status == 1 and _is_legacy(event):
        state.latest_of(key, "signin.legacy_auth", at)
    if status == 1 and mfa is False:
        state.latest_of(key, "signin.single_factor", at)
    if status == 2 and mfa is True:
        state.latest_of(key, "signin.mfa_denied", at)


def _is_legacy(event: Fields) -> bool:
    protocol_id = event.number("auth_protocol_id")
    if protocol_id is not None and int(protocol_id) in _LEGACY_PROTOCOL_IDS:
        return True
    return (event.text("auth_protocol") or "").strip().lower() in _LEGACY_PROTOCOL_NAMES


def _inventory(event: Fields, class_uid: int, at: datetime, state: _State) -> None:
    key = _device_asset(event, state)
    if key is None:
        state.warnings.append(RecordWarning(str(event.record), "device", "names no device"))
        return
    device = event.need("device")
    if class_uid == 5001:
        os = device.obj("os")
        if os is not None:
            state.fact(key, "device.os", str(os.text("name")), at)
            version = os.text("version")
            if version:
                state.fact(key, "device.os_version", version, at)
        return
    pending = 0
    for article in event.objects("kb_article_list"):
        state_id = article.number("install_state_id")
        if state_id == 2 and (article.text("severity") or "").lower() == "critical":
            pending += 1
    state.fact(key, "patch.pending_critical", pending, at)


def _read_event(raw: Any, index: int | str, state: _State) -> None:
    class_uid = validate_event(raw, file=state.where, record=index)
    event = Fields(raw, file=state.where, record=index)
    at = _event_time(event, state)
    if at is None:
        return
    if class_uid in FINDING_CLASSES:
        _finding(event, class_uid, at, state)
    elif class_uid == 3002:
        _authentication(event, at, state)
    elif class_uid in (5001, 5004):
        _inventory(event, class_uid, at, state)


def _summaries(state: _State) -> None:
    for (key, signal), moment in state.latest.items():
        if signal == "posture":
            state.fact(key, "posture.failed_count", state.failed.get(key, 0), moment)
        elif signal == "vuln":
            for sig in SEVERITY_SIGNALS.values():
                state.fact(key, sig, state.counts.get(f"{key}\0{sig}", 0), moment)
        elif signal == "signin.seen":
            state.fact(key, "signin.count", state.counts[f"{key}\0signin.count"], moment)
        else:
            state.fact(key, signal, moment, moment)


def _events(evidence: EvidenceFile) -> list[tuple[int | str, Any]]:
    where = evidence.display_name
    with evidence.path.open("rb") as handle:
        head = handle.read(4096)
    if first_json_line(head) is not None:
        return [
            (f"line {line.number}", line.value)
            for line in iter_json_lines(evidence.path, file=where)
        ]
    document = load_document(evidence)
    if isinstance(document, dict):
        return [(0, document)]
    if isinstance(document, list):
        return list(enumerate(document))
    raise InputError(
        "expected an OCSF event, an array of events or JSON lines, "
        f"found {json_type_name(document)}",
        file=where,
    )


class OcsfConnector(Connector):
    """OCSF 1.x findings, authentications, device inventory and patch state, schema-validated."""

    kind = KIND
    title = "OCSF 1.x events"
    version = "1.0"
    formats = ("OCSF JSON array", "one OCSF event object", "OCSF JSON lines")
    signals = SIGNALS
    blind_spots = (
        "only the event classes 2002-2005, 3002, 5001 and 5004 are read; others are refused",
        "a finding with status MANUAL (Prowler) is neither passed nor failed",
        "OS Patch State lists articles without install dates: no patch.last_installed",
        "the producer decides which resources it checked; absent resources are not passing",
    )

    def detect(self, *, name: str, head: bytes) -> bool:
        """JSON naming an OCSF class, category and metadata."""
        return all(key in head for key in (b'"class_uid"', b'"metadata"')) and (
            b'"category_uid"' in head or b'"type_uid"' in head
        )

    def normalize(
        self, evidence: EvidenceFile, *, observed_at: datetime | None, collected_at: datetime
    ) -> Normalized:
        """Validate every event and map it to facts."""
        state = _State(where=evidence.display_name, observed_at=observed_at)
        events = _events(evidence)
        for index, raw in events:
            _read_event(raw, index, state)
        _summaries(state)
        return Normalized(
            observations=tuple(state.observations.values()),
            facts=tuple(state.facts),
            record_count=len(events),
            observed_from=min(state.times) if state.times and observed_at is None else None,
            observed_to=observed_at or (max(state.times) if state.times else None),
            media_type="application/json",
            warnings=tuple(state.warnings),
            notes=tuple(state.notes),
        )


@hookimpl
def claimready_connectors() -> list[Connector]:
    """Register the OCSF connector."""
    return [OcsfConnector()]
