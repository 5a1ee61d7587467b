"""Silence records: claimready's own evidence that a source stopped reporting.

When a declared source has produced no evidence for longer than its expected
interval, claimready writes a small JSON record of that fact and ingests it
like any other evidence, so the absence is in the ledger and in the facts:
absence of evidence is recorded, never mistaken for health.

Format (``claimready/source-silence@v1``)::

    {"format": "claimready/source-silence@v1", "tenant": "acme",
     "source": {"name": "defender", "kind": "defender"},
     "expected_every_seconds": 93600, "last_evidence_at": "2026-05-01T03:00:00Z" | null,
     "checked_at": "2026-05-03T09:00:00Z"}
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from claimready.assets.identity import AssetObservation, source_identifier
from claimready.connectors.base import Connector, EvidenceFile, Normalized, SignalSpec
from claimready.connectors.files import parse_json
from claimready.connectors.registry import hookimpl
from claimready.errors import InputError
from claimready.facts.models import Fact
from claimready.timeutil import parse_utc

KIND = "silence"
FORMAT = "claimready/source-silence@v1"
SIGNAL_SILENT = "source.silent"
SIGNAL_LAST_EVIDENCE = "source.last_evidence"


def _text(document: dict[str, Any], field: str, *, file: str) -> str:
    value = document.get(field)
    if not isinstance(value, str) or not value:
        raise InputError("expected non-empty text", file=file, field=field)
    return value


def _time(value: Any, *, field: str, file: str) -> datetime:
    if not isinstance(value, str):
        raise InputError("expected an ISO 8601 time", file=file, field=field)
    try:
        return parse_utc(value)
    except ValueError as exc:
        raise InputError(f"unreadable time {value!r}", file=file, field=field) from exc


class SilenceConnector(Connector):
    """Records that a declared source went silent."""

    kind = KIND
    title = "claimready source silence check"
    version = "1.0"
    formats = (FORMAT,)
    signals = (
        SignalSpec(
            SIGNAL_SILENT, "bool", "the source produced no evidence for longer than expected"
        ),
        SignalSpec(SIGNAL_LAST_EVIDENCE, "time", "when the source last produced evidence"),
    )
    blind_spots = ("only sources declared with expect_every in the sources file are checked",)

    def detect(self, *, name: str, head: bytes) -> bool:
        """The record names its own format."""
        return FORMAT.encode() in head

    def normalize(
        self, evidence: EvidenceFile, *, observed_at: datetime | None, collected_at: datetime
    ) -> Normalized:
        """One source asset with its silence and last-evidence facts."""
        file = evidence.display_name
        document = parse_json(evidence.path.read_bytes(), file=file)
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise InputError(f"expected a {FORMAT} record", file=file, field="format")
        source = document.get("source")
        if not isinstance(source, dict):
            raise InputError("expected an object", file=file, field="source")
        name = _text(source, "name", file=file)
        checked = observed_at or _time(document.get("checked_at"), field="checked_at", file=file)
        key = f"source:{name}"
        facts = [Fact(key, SIGNAL_SILENT, True, checked)]
        last = document.get("last_evidence_at")
        if last is not None:
            facts.append(
                Fact(
                    key,
                    SIGNAL_LAST_EVIDENCE,
                    _time(last, field="last_evidence_at", file=file),
                    checked,
                )
            )
        observation = AssetObservation(
            key=key,
            kind="source",
            display_name=f"source {name}",
            identifiers=(source_identifier("claimready-source", name),),
        )
        return Normalized(
            observations=(observation,),
            facts=tuple(facts),
            record_count=1,
            observed_from=None,
            observed_to=checked,
            media_type="application/json",
        )


@hookimpl
def claimready_connectors() -> list[Connector]:
    """Register the silence connector."""
    return [SilenceConnector()]
