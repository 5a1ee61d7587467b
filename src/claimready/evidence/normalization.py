"""Run a connector over a file: validate every batch, merge the summary, keep small results.

A file is normalized once in full before anything is stored, so a bad record
anywhere rejects the whole file with nothing written. Results up to
:data:`KEEP_FACTS` facts are kept for the storing pass; larger files are
normalized a second time while storing (normalization is deterministic, so
both passes agree), which keeps memory bounded for files of any size.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from claimready.connectors.base import Connector, EvidenceFile, Normalized, RecordWarning

KEEP_FACTS = 2_000_000
MAX_WARNINGS_KEPT = 200


@dataclass
class Summary:
    """What a whole file's normalization found, merged over its batches."""

    record_count: int = 0
    fact_count: int = 0
    observed_from: datetime | None = None
    observed_to: datetime | None = None
    media_type: str = "application/octet-stream"
    warnings: list[RecordWarning] = field(default_factory=list)
    warning_count: int = 0
    notes: list[str] = field(default_factory=list)

    def add(self, batch: Normalized) -> None:
        """Merge one batch into the summary."""
        self.record_count += batch.record_count
        self.fact_count += len(batch.facts)
        self.media_type = batch.media_type
        if batch.observed_from is not None:
            self.observed_from = min(filter(None, (self.observed_from, batch.observed_from)))
        if batch.observed_to is not None:
            self.observed_to = max(filter(None, (self.observed_to, batch.observed_to)))
        self.warning_count += len(batch.warnings)
        room = MAX_WARNINGS_KEPT - len(self.warnings)
        self.warnings.extend(batch.warnings[: max(room, 0)])
        self.notes.extend(n for n in batch.notes if n not in self.notes)


@dataclass
class Normalization:
    """A validated file: its summary and, when small enough, its batches."""

    connector: Connector
    evidence: EvidenceFile
    observed_at: datetime | None
    collected_at: datetime
    summary: Summary
    kept: list[Normalized] | None

    def batches(self) -> Iterator[Normalized]:
        """The batches again: from memory, or by normalizing a second time."""
        if self.kept is not None:
            yield from self.kept
            return
        yield from self.connector.normalize_batches(
            self.evidence, observed_at=self.observed_at, collected_at=self.collected_at
        )


def normalize_file(
    *,
    connector: Connector,
    evidence: EvidenceFile,
    observed_at: datetime | None,
    collected_at: datetime,
) -> Normalization:
    """Normalize every batch of the file (raising InputError on any bad record)."""
    summary = Summary()
    kept: list[Normalized] | None = []
    for batch in connector.normalize_batches(
        evidence, observed_at=observed_at, collected_at=collected_at
    ):
        summary.add(batch)
        if kept is not None:
            kept.append(batch)
            if summary.fact_count > KEEP_FACTS:
                kept = None
    return Normalization(connector, evidence, observed_at, collected_at, summary, kept)
