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
above; a line it cannot read as a plain alert (another type somewhere, an SCA
summary, an odd timestamp) goes through the checked path, which gives the
warning or the error naming its line and field.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

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
    decode_lines,
    first_json_line,
    iter_line_blocks,
    line_record,
    merge_normalized,
    parse_line,
)
from claimready.connectors.registry import hookimpl
from claimready.errors import InputError
from claimready.facts.models import Fact
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
    last_event: datetime | None = None
    observation: AssetObservation | None = None

    def observed(self) -> AssetObservation:
        """The agent's asset observation (its name is the one first seen, so it never changes)."""
        if self.observation is None:
            self.observation = agent_observation(self.id, self.name)
        return self.observation


# The shapes the fast path reads. ``gc=False``: they live for one block and hold no cycles.
class _RuleShape(msgspec.Struct, gc=False):
    level: int | float
    id: str | int


class _AgentShape(msgspec.Struct, gc=False):
    id: str | int
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
    touched: dict[str, None] = field(default_factory=dict)
    facts: list[Fact] = field(default_factory=list)
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
    scans: dict[tuple[str, str], _Scan] = field(default_factory=dict)
    batch: _Batch = field(default_factory=lambda: _Batch())
    # The value of an alert fact, by rule id and level: one string per rule, not one per alert.
    values: dict[tuple[str, int | float], str] = field(default_factory=dict)


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
    known = stream.agents.get(agent_id)
    if known is None:
        known = stream.agents[agent_id] = _Agent(agent_id, name)
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
    if known.last_event is None or moment > known.last_event:
        known.last_event = moment
    if level >= ALERT_MIN_LEVEL:
        value = f"{rule_id}|{int(level)}"
        batch.facts.append(Fact(agent_id, SIGNAL_ALERT, value, stream.observed_at or moment))
    data = raw.get("data")
    if data is not None and (type(data) is not dict or "sca" in data):
        alert = Fields(raw, file=stream.where, record=line_record(number))
        _read_sca(alert.need("data"), agent_id, moment, stream, batch)


def _plain_moment(alert: _AlertShape) -> datetime | None:
    """The time of an alert stamped in UTC; None sends it down the checked path."""
    try:
        moment = datetime.fromisoformat(alert.timestamp)
        return moment if moment.tzinfo is UTC else _parse_stamp(alert.timestamp)
    except ValueError:
        return None


def _read_plain_alerts(block: LineBlock, alerts: list[_AlertShape], stream: _Stream) -> None:
    """Read ``alerts``, decoded from ``block``, into the current batch: one record each.

    Alerts whose fields all have their usual types are read here; any other
    goes through :func:`_read_alert`, which gives the same result, warning or error.
    """
    batch = stream.batch
    agents, touched, facts, values = stream.agents, batch.touched, batch.facts, stream.values
    given, lines = stream.observed_at, block.lines
    first, last = batch.first, batch.last
    plain = 0
    for index, alert in enumerate(alerts):
        agent, rule = alert.agent, alert.rule
        agent_id, rule_id, level = agent.id, rule.id, rule.level
        moment = _plain_moment(alert)
        if (
            moment is None
            or type(agent_id) is not str
            or type(rule_id) is not str
            or not agent_id.strip()
            or level > _MAX_LEVEL
            or _SCA_KEY in lines[index]
        ):
            batch.first, batch.last = first, last
            number = block.first + index
            _read_alert(
                number, parse_line(lines[index], file=stream.where, number=number), stream, batch
            )
            first, last = batch.first, batch.last
            continue
        plain += 1
        known = agents.get(agent_id)
        if known is None:
            known = agents[agent_id] = _Agent(agent_id, agent.name)
        touched[agent_id] = None
        if first is None or moment < first:
            first = moment
        if last is None or moment > last:
            last = moment
        if known.last_event is None or moment > known.last_event:
            known.last_event = moment
        if level >= ALERT_MIN_LEVEL:
            value = values.get((rule_id, level))
            if value is None:
                value = values[rule_id, level] = f"{rule_id}|{int(level)}"
            facts.append(Fact(agent_id, SIGNAL_ALERT, value, given or moment))
    batch.first, batch.last = first, last
    batch.records += plain


def _read_block(block: LineBlock, stream: _Stream) -> Iterator[_Batch]:
    """Read one block of lines, yielding every batch that fills up on the way."""
    alerts = decode_lines(_DECODER, block)
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
        _read_plain_alerts(
            LineBlock(block.first + start, block.lines[start:stop], block.utf8),
            alerts[start:stop],
            stream,
        )
        start = stop
        if stream.batch.records >= BATCH_LINES:
            yield stream.batch
            stream.batch = _Batch()


def _batch_result(stream: _Stream, batch: _Batch) -> Normalized:
    return Normalized(
        observations=tuple(stream.agents[agent_id].observed() for agent_id in batch.touched),
        facts=tuple(batch.facts),
        record_count=batch.records,
        observed_from=batch.first if stream.observed_at is None else None,
        observed_to=stream.observed_at or batch.last,
        media_type=MEDIA_TYPE,
        warnings=tuple(batch.warnings),
    )


def _final_result(stream: _Stream, *, collected_at: datetime) -> Normalized:
    facts: list[Fact] = []
    for agent_id, agent in stream.agents.items():
        if agent.last_event is not None:
            at = stream.observed_at or agent.last_event
            facts.append(Fact(agent_id, SIGNAL_LAST_EVENT, agent.last_event, at))
    for (agent_id, _policy), scan in sorted(stream.scans.items()):
        at = stream.observed_at or scan.at
        facts.append(Fact(agent_id, SIGNAL_SCA_SCORE, scan.score, at))
        facts.append(Fact(agent_id, SIGNAL_SCA_FAILED, scan.failed, at))
    notes: tuple[str, ...] = ()
    if not stream.agents:
        notes = (f"{stream.where}: no alerts in the file",)
    elif stream.observed_at is None and not any(a.last_event for a in stream.agents.values()):
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
