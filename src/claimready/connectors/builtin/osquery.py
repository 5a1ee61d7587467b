"""osquery result logs (``osqueryd.results.log``, JSON lines, filesystem logger plugin).

Each line is one result of a scheduled query: ``name`` (the query name, or
``pack_<pack>_<query>``), ``hostIdentifier`` (the host name by default, or
the host UUID with ``--host_identifier=uuid``), ``unixTime`` /
``calendarTime`` (when the query ran, UTC), ``decorations`` (optional:
``hostname``, ``hardware_serial``/``serial``, ``host_uuid``/``uuid``) and
either a differential row (``columns`` with ``action`` ``added``/``removed``)
or a whole ``snapshot`` array (``action`` ``snapshot``). The current table
per host and query is rebuilt in order: a snapshot replaces it, ``added``
adds a row and ``removed`` removes it.

Queries read (by name suffix):

* ``windows_security_center``: ``antivirus``, ``firewall``, ``autoupdate``;
  ``Good`` is on, ``Poor``/``Snoozed`` are off, anything else is unknown.
* ``bitlocker_info``: ``protection_status`` per volume (1 protected);
  encrypted only when every listed volume is protected.
* ``patches``: ``installed_on`` (``M/D/YYYY``, a date; read as 00:00 UTC).
* ``os_version``: ``name``, ``version``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from claimready.assets.identity import (
    SERIAL,
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
from claimready.connectors.jsonlines import Fields, first_json_line, iter_json_objects
from claimready.connectors.registry import hookimpl
from claimready.facts.models import Fact

KIND = "osquery"
QUERIES = ("windows_security_center", "bitlocker_info", "patches", "os_version")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
_WSC_ON = frozenset({"good"})
_WSC_OFF = frozenset({"poor", "snoozed"})
_WSC_SIGNALS = (("antivirus", "av.enabled"), ("firewall", "firewall.enabled"))
_CALENDAR = "%a %b %d %H:%M:%S %Y UTC"

SIGNALS = (
    SignalSpec("av.enabled", "bool", "antivirus reported Good by Windows Security Center"),
    SignalSpec("firewall.enabled", "bool", "firewall reported Good by Windows Security Center"),
    SignalSpec("patch.auto_update", "bool", "automatic updates reported Good by Security Center"),
    SignalSpec("device.encrypted", "bool", "every BitLocker volume is protected"),
    SignalSpec("patch.last_installed", "time", "install date of the newest hotfix (day precision)"),
    SignalSpec("device.os", "text", "operating system name"),
    SignalSpec("device.os_version", "text", "operating system version"),
)

Row = frozenset[tuple[str, str]]


@dataclass(slots=True)
class _Host:
    identifiers: dict[Identifier, None] = field(default_factory=dict)
    tables: dict[str, set[Row]] = field(default_factory=lambda: defaultdict(set))
    times: dict[str, datetime] = field(default_factory=dict)


def _query_of(name: str) -> str | None:
    for query in QUERIES:
        if name == query or name.endswith(f"_{query}"):
            return query
    return None


def _run_time(line: Fields, warnings: list[RecordWarning]) -> datetime | None:
    raw = line.raw.get("unixTime")
    if isinstance(raw, str) and raw.isdigit():
        raw = int(raw)
    if isinstance(raw, int) and not isinstance(raw, bool):
        try:
            return datetime.fromtimestamp(raw, tz=UTC)
        except (OverflowError, OSError, ValueError):
            pass
    text = line.text("calendarTime")
    if text is not None:
        try:
            return datetime.strptime(text, _CALENDAR).replace(tzinfo=UTC)
        except ValueError:
            pass
    warnings.append(RecordWarning(str(line.record), "unixTime", "no readable query time"))
    return None


def _row(raw: Any, line: Fields, field_name: str) -> Row:
    columns = Fields(raw, file=line.file, record=line.record, prefix=field_name)
    return frozenset((k, v if isinstance(v, str) else str(v)) for k, v in columns.raw.items())


def _host_identifiers(host_id: str, line: Fields) -> list[Identifier]:
    found: list[Identifier] = []
    if _UUID.fullmatch(host_id):
        found.append(source_identifier(KIND, host_id.lower()))
    else:
        found.extend(host_identifiers(host_id))
    decorations = line.obj("decorations")
    if decorations is not None:
        for name in ("host_uuid", "uuid"):
            value = decorations.raw.get(name)
            if isinstance(value, str) and _UUID.fullmatch(value):
                found.append(source_identifier(KIND, value.lower()))
        hostname = decorations.raw.get("hostname")
        found.extend(host_identifiers(hostname if isinstance(hostname, str) else None))
        for name in ("hardware_serial", "serial"):
            value = decorations.raw.get(name)
            ident = identifier(SERIAL, value) if isinstance(value, str) else None
            if ident is not None:
                found.append(ident)
    return found


def _apply(line: Fields, host: _Host, query: str, moment: datetime) -> None:
    action = line.text("action")
    table = host.tables[query]
    if "snapshot" in line.raw:
        items = line.array("snapshot", required=True) or []
        host.tables[query] = {_row(item, line, f"snapshot[{i}]") for i, item in enumerate(items)}
    elif action in ("added", "removed"):
        row = _row(line.raw.get("columns"), line, "columns")
        if action == "added":
            table.add(row)
        else:
            table.discard(row)
    else:
        raise line.error("action", f"expected snapshot, added or removed, found {action!r}")
    host.times[query] = max(moment, host.times.get(query, moment))


def _wsc_facts(key: str, rows: set[Row], at: datetime, warnings: list[RecordWarning]) -> list[Fact]:
    facts: list[Fact] = []
    for values in _ordered(rows):
        for column, signal in (*_WSC_SIGNALS, ("autoupdate", "patch.auto_update")):
            word = values.get(column, "").strip().lower()
            if word in _WSC_ON or word in _WSC_OFF:
                facts.append(Fact(key, signal, word in _WSC_ON, at))
            else:
                message = f"unknown state {values.get(column)!r}"
                warnings.append(RecordWarning(f"host {key}", f"{column}", message))
    return facts


def _installed_on(text: str) -> datetime | None:
    try:
        month, day, year = (int(part) for part in text.strip().split("/"))
        return datetime(year, month, day, tzinfo=UTC)
    except ValueError:
        return None


def _ordered(rows: set[Row]) -> list[dict[str, str]]:
    """Rows as dicts in a stable order (sets of rows iterate in hash order)."""
    return [dict(row) for row in sorted(rows, key=sorted)]


def _patch_facts(
    key: str, rows: set[Row], at: datetime, warnings: list[RecordWarning]
) -> list[Fact]:
    dates: list[datetime] = []
    for row in _ordered(rows):
        text = row.get("installed_on", "")
        moment = _installed_on(text)
        if moment is None:
            warnings.append(
                RecordWarning(f"host {key}", "installed_on", f"unreadable date {text!r}")
            )
        else:
            dates.append(moment)
    return [Fact(key, "patch.last_installed", max(dates), at)] if dates else []


def _os_facts(key: str, rows: set[Row], at: datetime) -> list[Fact]:
    facts: list[Fact] = []
    for row in _ordered(rows):
        for column, signal in (("name", "device.os"), ("version", "device.os_version")):
            if row.get(column):
                facts.append(Fact(key, signal, row[column], at))
    return facts


def _host_facts(key: str, host: _Host, warnings: list[RecordWarning]) -> list[Fact]:
    facts: list[Fact] = []
    for query, rows in host.tables.items():
        at = host.times[query]
        if query == "windows_security_center":
            facts.extend(_wsc_facts(key, rows, at, warnings))
        elif query == "bitlocker_info" and rows:
            protected = all(row.get("protection_status") == "1" for row in _ordered(rows))
            facts.append(Fact(key, "device.encrypted", protected, at))
        elif query == "patches":
            facts.extend(_patch_facts(key, rows, at, warnings))
        elif query == "os_version":
            facts.extend(_os_facts(key, rows, at))
    return facts


def _asset_kind(host: _Host) -> str:
    names = " ".join(row.get("name", "") for row in _ordered(host.tables.get("os_version", set())))
    if "server" in names.lower():
        return "server"
    return "workstation" if names.lower().startswith(("microsoft windows", "macos")) else "endpoint"


class OsqueryConnector(Connector):
    """osquery scheduled-query results: antivirus, firewall, updates, encryption, patches, OS."""

    kind = KIND
    title = "osquery result log"
    version = "1.0"
    formats = ("osqueryd.results.log (JSON lines, differential and snapshot results)",)
    signals = SIGNALS
    blind_spots = (
        "only hosts running osquery with these queries scheduled appear",
        "a differential log that starts mid-stream lacks rows added before it began",
        "Windows Security Center reports only products registered with it",
    )

    def detect(self, *, name: str, head: bytes) -> bool:
        """JSON lines with ``hostIdentifier``, ``name`` and ``calendarTime``/``unixTime``."""
        first = first_json_line(head)
        if first is not None:
            return "hostIdentifier" in first and "name" in first and "unixTime" in first
        return b'"hostIdentifier"' in head and b'"unixTime"' in head

    def normalize(
        self, evidence: EvidenceFile, *, observed_at: datetime | None, collected_at: datetime
    ) -> Normalized:
        """Rebuild each host's current tables, then derive facts from them."""
        where = evidence.display_name
        hosts: dict[str, _Host] = defaultdict(_Host)
        warnings: list[RecordWarning] = []
        records = 0
        for number, raw in iter_json_objects(evidence.path, file=where):
            records += 1
            line = Fields(raw, file=where, record=f"line {number}")
            query = _query_of(str(line.text("name", required=True)))
            host_id = str(line.text("hostIdentifier", required=True))
            host = hosts[host_id]
            host.identifiers.update(dict.fromkeys(_host_identifiers(host_id, line)))
            moment = _run_time(line, warnings)
            if query is not None and moment is not None:
                _apply(line, host, query, moment)
        facts: list[Fact] = []
        observations: list[AssetObservation] = []
        for key, host in hosts.items():
            observations.append(
                AssetObservation(key, _asset_kind(host), key, tuple(host.identifiers))
            )
            facts.extend(_host_facts(key, host, warnings))
        times = [f.observed_at for f in facts]
        if observed_at is not None:
            facts = [Fact(f.asset_key, f.signal, f.value, observed_at) for f in facts]
        return Normalized(
            observations=tuple(observations),
            facts=tuple(facts),
            record_count=records,
            observed_from=min(times) if times and observed_at is None else None,
            observed_to=observed_at or (max(times) if times else None),
            media_type="application/x-ndjson",
            warnings=tuple(warnings),
        )


@hookimpl
def claimready_connectors() -> list[Connector]:
    """Register the osquery connector."""
    return [OsqueryConnector()]
