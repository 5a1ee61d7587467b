"""Wazuh ``alerts.json``: the manager's alert log, one JSON object per line.

Fields read (Wazuh alert format): ``timestamp`` (event time with a numeric
offset, ``2024-05-01T10:00:00.123+0000``), ``rule.level`` (0-15; 7 and up are
the levels Wazuh's own dashboards treat as worth attention), ``rule.id``,
``rule.groups``, ``agent.id`` and ``agent.name`` (``agent.ip`` is never used
as an identifier). Agent ``000`` is the manager itself, a server.

SCA scan summaries arrive in the same log as alerts whose ``data.sca.type``
is ``summary``, with ``data.sca.policy_id``, ``score`` (percent passed),
``passed`` and ``failed`` (Wazuh writes these numbers as text). The current
state is rebuilt from the latest summary per agent and policy.

The file is read as a stream in batches, so its size is not limited by memory.
Blocks of lines are decoded with a typed decoder that reads only the fields
above, and the alert facts of a batch are kept as columns
(:class:`~claimready.facts.models.FactColumns`), not one tuple per alert. A
line the decoder cannot read as a plain alert (another type somewhere, a
level outside 0-15, an SCA summary, an odd timestamp) goes alone through the
checked path, which gives the same facts, or the warning or error naming its
line and field.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import msgspec

from claimready.assets.identity import AssetObservation
from claimready.connectors.base import (
    Connector,
    EvidenceFile,
    Normalized,
    RecordWarning,
    SignalSpec,
)
from claimready.connectors.builtin.wazuh import (
    SCA_SIGNALS,
    SIGNAL_SCA_FAILED,
    SIGNAL_SCA_SCORE,
    agent_observation,
)
from claimready.connectors.jsonlines import (
    Fields,
    LineBlock,
    decode_each,
    first_json_line,
    iter_line_blocks,
    line_record,
    merge_normalized,
    parse_line,
)
from claimready.connectors.registry import hookimpl
from claimready.errors import InputError
from claimready.facts.models import Fact, FactColumns, FactValue
from claimready.timeutil import parse_utc

KIND = "wazuh-alerts"
SIGNAL_LAST_EVENT = "log.last_event"
SIGNAL_ALERT = "log.alert"
ALERT_MIN_LEVEL = 7
BATCH_LINES = 50_000
MEDIA_TYPE = "application/x-ndjson"
_ZERO = timedelta(0)
_MAX_LEVEL = 15  # Wazuh's highest rule level; a larger one takes the checked path


@dataclass(slots=True)
class _Agent:
    id: str
    name: str | None
    observation: AssetObservation | None = None

    def observed(self) -> AssetObservation:
        """The agent's asset observation (its name is the one first seen, so it never changes)."""
        if self.observation is None:
            self.observation = agent_observation(self.id, self.name)
        return self.observation


# The shapes the fast path reads. ``gc=False``: they live for one block and hold no cycles.
class _RuleShape(msgspec.Struct, gc=False):
    level: Annotated[int, msgspec.Meta(ge=0, le=_MAX_LEVEL)]
    id: str


class _AgentShape(msgspec.Struct, gc=False):
    id: str
    name: str | None = None


class _DataShape(msgspec.Struct, gc=False):
    """``data`` must be an object; its fields are read only for an SCA summary (checked path)."""


class _AlertShape(msgspec.Struct, gc=False):
    """The fields of an alert that are read; every other field is skipped unread."""

    timestamp: str
    rule: _RuleShape
    agent: _AgentShape
    data: _DataShape | None = None


_DECODER = msgspec.json.Decoder(_AlertShape)
_SCA_KEY = b'"sca"'  # a line holding it anywhere takes the checked path, which reads data.sca


@dataclass(slots=True)
class _Scan:
    at: datetime
    score: float
    failed: float


@dataclass(slots=True)
class _Batch:
    """One batch of alerts; its ``log.alert`` facts as columns: agent, value, observed time."""

    touched: dict[str, None] = field(default_factory=dict)
    keys: list[str] = field(default_factory=list)
    values: list[FactValue] = field(default_factory=list)
    times: list[datetime] = field(default_factory=list)
    warnings: list[RecordWarning] = field(default_factory=list)
    records: int = 0
    first: datetime | None = None
    last: datetime | None = None

    def saw(self, moment: datetime) -> None:
        if self.first is None or moment < self.first:
            self.first = moment
        if self.last is None or moment > self.last:
            self.last = moment


@dataclass(slots=True)
class _Stream:
    where: str
    observed_at: datetime | None
    agents: dict[str, _Agent] = field(default_factory=dict)
    last_events: dict[str, datetime] = field(default_factory=dict)
    scans: dict[tuple[str, str], _Scan] = field(default_factory=dict)
    batch: _Batch = field(default_factory=lambda: _Batch())
    # Alert fact values by rule id, indexed by level: one string per rule and level, not per alert.
    values: dict[str, list[str]] = field(default_factory=dict)


def _sca_number(sca: Fields, name: str, label: str, warnings: list[RecordWarning]) -> float | None:
    value = sca.raw.get(name)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    warnings.append(RecordWarning(label, sca.path(name), f"expected a number, found {value!r}"))
    return None


def _read_sca(
    data: Fields, agent_id: str, moment: datetime, stream: _Stream, batch: _Batch
) -> None:
    sca = data.obj("sca")
    if sca is None or sca.raw.get("type") != "summary":
        return
    policy = str(sca.text("policy_id", required=True))
    label = f"{data.record} (policy {policy})"
    score = _sca_number(sca, "score", label, batch.warnings)
    failed = _sca_number(sca, "failed", label, batch.warnings)
    if score is None or failed is None:
        return
    previous = stream.scans.get((agent_id, policy))
    if previous is None or moment >= previous.at:
        stream.scans[(agent_id, policy)] = _Scan(moment, score, failed)


def _fast_fields(raw: Any) -> tuple[str, float, str, str, str | None] | None:
    """The fields of a well-formed alert read directly, or None to take the checked path."""
    if type(raw) is not dict:
        return None
    rule, agent, stamp = raw.get("rule"), raw.get("agent"), raw.get("timestamp")
    if type(rule) is not dict or type(agent) is not dict or type(stamp) is not str:
        return None
    level, rule_id, agent_id = rule.get("level"), rule.get("id"), agent.get("id")
    name = agent.get("name")
    if (
        not isinstance(level, int | float)
        or isinstance(level, bool)
        or type(rule_id) is not str
        or type(agent_id) is not str
        or not agent_id.strip()
        or (name is not None and type(name) is not str)
    ):
        return None
    return stamp, float(level), rule_id, agent_id, name


def _checked_fields(alert: Fields) -> tuple[str, float, str, str, str | None]:
    """The same fields through :class:`Fields`, raising InputError naming the bad one."""
    stamp = str(alert.text("timestamp", required=True))
    rule = alert.need("rule")
    agent = alert.need("agent")
    level = rule.need_number("level")
    rule_id = str(rule.id_text("id", required=True))
    agent_id = str(agent.id_text("id", required=True))
    return stamp, level, rule_id, agent_id, agent.text("name")


def _parse_stamp(stamp: str) -> datetime:
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return parse_utc(stamp)
    if moment.tzinfo is None:
        raise ValueError("timestamp without a zone")
    return moment if moment.utcoffset() == _ZERO else moment.astimezone(UTC)


def _read_alert(number: int, raw: Any, stream: _Stream, batch: _Batch) -> None:
    fast = _fast_fields(raw)
    if fast is None:
        fast = _checked_fields(Fields(raw, file=stream.where, record=line_record(number)))
    stamp, level, rule_id, agent_id, name = fast
    if not math.isfinite(level):
        raise InputError(
            f"expected a finite number, found {level}",
            file=stream.where,
            record=line_record(number),
            field="rule.level",
        )
    if agent_id not in stream.agents:
        stream.agents[agent_id] = _Agent(agent_id, name)
    batch.touched[agent_id] = None
    batch.records += 1
    try:
        moment = _parse_stamp(stamp)
    except ValueError:
        batch.warnings.append(
            RecordWarning(line_record(number), "timestamp", f"unreadable timestamp {stamp!r}")
        )
        return
    batch.saw(moment)
    last = stream.last_events.get(agent_id)
    if last is None or moment > last:
        stream.last_events[agent_id] = moment
    if level >= ALERT_MIN_LEVEL:
        batch.keys.append(agent_id)
        batch.values.append(f"{rule_id}|{int(level)}")
        batch.times.append(stream.observed_at or moment)
    data = raw.get("data")
    if data is not None and (type(data) is not dict or "sca" in data):
        alert = Fields(raw, file=stream.where, record=line_record(number))
        _read_sca(alert.need("data"), agent_id, moment, stream, batch)


class _OddAlert(Exception):
    """An alert the plain path does not read; the checked path reads it instead."""


def _sca_lines(lines: list[bytes]) -> list[int]:
    """Indices of the lines holding ``"sca"`` anywhere (one search per block when none do)."""
    if _SCA_KEY not in b"\n".join(lines):
        return []
    return [index for index, line in enumerate(lines) if _SCA_KEY in line]


def _plain_moment(stamp: str) -> datetime:
    """The time of an alert in UTC; ValueError (the checked path) when it has none."""
    moment = datetime.fromisoformat(stamp)
    return moment if moment.tzinfo is UTC else _parse_stamp(stamp)


def _new_agent(alert: _AlertShape, stream: _Stream) -> None:
    if not alert.agent.id.strip():
        raise _OddAlert
    stream.agents[alert.agent.id] = _Agent(alert.agent.id, alert.agent.name)


def _rule_values(rule_id: str, by_rule: dict[str, list[str]]) -> list[str]:
    """The alert values of a rule, by level: built once per rule."""
    values = by_rule.get(rule_id)
    if values is None:
        values = by_rule[rule_id] = [f"{rule_id}|{level}" for level in range(_MAX_LEVEL + 1)]
    return values


def _read_odd(number: int, line: bytes, stream: _Stream) -> None:
    """Read one line through the checked path (a blank line is no record)."""
    if line.strip():
        _read_alert(
            number, parse_line(line, file=stream.where, number=number), stream, stream.batch
        )


def _read_plain_alerts(
    first: int, lines: list[bytes], alerts: list[_AlertShape | None], stream: _Stream
) -> None:
    """Read ``alerts``, decoded from ``lines`` (line ``first`` on), into the current batch.

    Alerts whose fields all have their usual types are read here, their
    facts appended to the batch's columns; any other line (None in
    ``alerts``) goes through :func:`_read_alert`, which gives the same
    result, warning or error.
    """
    batch = stream.batch
    agents, last_events, by_rule = stream.agents, stream.last_events, stream.values
    touched, keys, values, times = batch.touched, batch.keys, batch.values, batch.times
    given = stream.observed_at
    for index in _sca_lines(lines):
        alerts[index] = None
    moments: list[datetime] = []
    for index, alert in enumerate(alerts):
        try:
            if alert is None:
                raise _OddAlert
            moment = _plain_moment(alert.timestamp)
            agent_id = alert.agent.id
            if agent_id not in agents:
                _new_agent(alert, stream)
        except (_OddAlert, ValueError):
            _read_odd(first + index, lines[index], stream)
            continue
        last = last_events.get(agent_id)
        if last is None or moment > last:
            last_events[agent_id] = moment
        touched[agent_id] = None
        moments.append(moment)
        rule = alert.rule
        if rule.level >= ALERT_MIN_LEVEL:
            keys.append(agent_id)
            values.append(_rule_values(rule.id, by_rule)[rule.level])
            times.append(given or moment)
    batch.records += len(moments)
    if moments:
        batch.saw(min(moments))
        batch.saw(max(moments))


def _read_block(block: LineBlock, stream: _Stream) -> Iterator[_Batch]:
    """Read one block of lines, yielding every batch that fills up on the way."""
    alerts = decode_each(_DECODER, block)
    if alerts is None:
        for number, data in block.numbered():
            raw = parse_line(data, file=stream.where, number=number)
            _read_alert(number, raw, stream, stream.batch)
            if stream.batch.records >= BATCH_LINES:
                yield stream.batch
                stream.batch = _Batch()
        return
    start = 0
    while start < len(alerts):
        stop = min(len(alerts), start + max(BATCH_LINES - stream.batch.records, 1))
        _read_plain_alerts(block.first + start, block.lines[start:stop], alerts[start:stop], stream)
        start = stop
        if stream.batch.records >= BATCH_LINES:
            yield stream.batch
            stream.batch = _Batch()


def _batch_result(stream: _Stream, batch: _Batch) -> Normalized:
    return Normalized(
        observations=tuple(stream.agents[agent_id].observed() for agent_id in batch.touched),
        facts=FactColumns(batch.keys, [SIGNAL_ALERT] * len(batch.keys), batch.values, batch.times),
        record_count=batch.records,
        observed_from=batch.first if stream.observed_at is None else None,
        observed_to=stream.observed_at or batch.last,
        media_type=MEDIA_TYPE,
        warnings=tuple(batch.warnings),
    )


def _final_result(stream: _Stream, *, collected_at: datetime) -> Normalized:
    facts: list[Fact] = []
    for agent_id in stream.agents:
        last = stream.last_events.get(agent_id)
        if last is not None:
            facts.append(Fact(agent_id, SIGNAL_LAST_EVENT, last, stream.observed_at or last))
    for (agent_id, _policy), scan in sorted(stream.scans.items()):
        at = stream.observed_at or scan.at
        facts.append(Fact(agent_id, SIGNAL_SCA_SCORE, scan.score, at))
        facts.append(Fact(agent_id, SIGNAL_SCA_FAILED, scan.failed, at))
    notes: tuple[str, ...] = ()
    if not stream.agents:
        notes = (f"{stream.where}: no alerts in the file",)
    elif stream.observed_at is None and not stream.last_events:
        notes = (f"{stream.where}: no readable alert timestamp (collected {collected_at})",)
    return Normalized(
        observations=tuple(agent.observed() for agent in stream.agents.values()),
        facts=tuple(facts),
        record_count=0,
        observed_from=None,
        observed_to=stream.observed_at,
        media_type=MEDIA_TYPE,
        notes=notes,
    )


class WazuhAlertsConnector(Connector):
    """Wazuh alerts.json: last event per agent, alerts of level 7 and up, SCA summaries."""

    kind = KIND
    title = "Wazuh alerts (alerts.json)"
    version = "1.0"
    formats = ("alerts.json (JSON lines) from /var/ossec/logs/alerts/",)
    signals = (
        SignalSpec(SIGNAL_LAST_EVENT, "time", "latest event the SIEM received from the asset"),
        SignalSpec(SIGNAL_ALERT, "text", "an alert of level 7 or higher: '<rule id>|<level>'"),
        *SCA_SIGNALS,
    )
    blind_spots = (
        "alerts.json holds only events that matched a rule at or above the manager's "
        "log_alert_level (3 by default): a quiet agent may still be connected",
        "agents that never sent an event are absent; compare with the agent list",
        "an SCA policy that never completed a scan in the file's period has no summary",
    )

    def detect(self, *, name: str, head: bytes) -> bool:
        """JSON lines whose first object has ``rule``, ``agent`` and ``timestamp``."""
        first = first_json_line(head)
        if first is not None:
            return (
                isinstance(first.get("rule"), dict)
                and isinstance(first.get("agent"), dict)
                and "timestamp" in first
                and ("manager" in first or "decoder" in first)
            )
        stripped = head.lstrip()
        return stripped.startswith(b'{"') and all(
            key in head for key in (b'"rule":{', b'"agent":{', b'"timestamp":', b'"manager":{')
        )

    def normalize_batches(
        self, evidence: EvidenceFile, *, observed_at: datetime | None, collected_at: datetime
    ) -> Iterator[Normalized]:
        """Batches of alerts as they stream by, then per-agent last events and SCA state."""
        stream = _Stream(where=evidence.display_name, observed_at=observed_at)
        for block in iter_line_blocks(evidence.path, file=stream.where):
            for full in _read_block(block, stream):
                yield _batch_result(stream, full)
        if stream.batch.records or stream.batch.warnings:
            yield _batch_result(stream, stream.batch)
        yield _final_result(stream, collected_at=collected_at)

    def normalize(
        self, evidence: EvidenceFile, *, observed_at: datetime | None, collected_at: datetime
    ) -> Normalized:
        """Every batch merged into one result."""
        return merge_normalized(
            self.normalize_batches(evidence, observed_at=observed_at, collected_at=collected_at),
            media_type=MEDIA_TYPE,
        )


@hookimpl
def claimready_connectors() -> list[Connector]:
    """Register the Wazuh alerts connector."""
    return [WazuhAlertsConnector()]
