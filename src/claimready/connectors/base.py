"""What every connector is, built-in or third-party.

A connector declares its source kind, the formats it reads, the signals it
emits and its known blind spots. ``normalize`` is pure and deterministic: the
same evidence and metadata always give the same facts, so anyone can
re-derive facts from the ledger.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx

from claimready.assets.identity import AssetObservation
from claimready.connectors.files import ZIP_SIGNATURE
from claimready.errors import UsageError
from claimready.facts.models import Fact


@dataclass(frozen=True, slots=True)
class EvidenceFile:
    """A raw evidence file handed to a connector, with the name users know it by."""

    path: Path
    display_name: str
    size: int


SIGNAL_TYPES = ("bool", "number", "text", "time")


@dataclass(frozen=True, slots=True)
class SignalSpec:
    """A signal a connector emits: its name, value type and meaning.

    Names are dotted, domain first (``edr.healthy``, ``identity.mfa_registered``);
    the same name means the same thing whichever connector emits it.
    """

    name: str
    type: str
    description: str

    def __post_init__(self) -> None:
        if self.type not in SIGNAL_TYPES:
            raise ValueError(f"signal {self.name}: type must be one of {SIGNAL_TYPES}")


@dataclass(frozen=True, slots=True)
class RecordWarning:
    """A record that was read but could not be used in full (it makes its asset unverified)."""

    record: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"record {self.record}: field {self.field!r}: {self.message}"


@dataclass(frozen=True, slots=True)
class Normalized:
    """The pure result of normalizing one piece of evidence.

    ``facts`` is a tuple, or a :class:`~claimready.facts.models.FactColumns`
    from a connector that builds its facts column by column.
    """

    observations: tuple[AssetObservation, ...]
    facts: Sequence[Fact]
    record_count: int
    observed_from: datetime | None
    observed_to: datetime | None
    media_type: str
    warnings: tuple[RecordWarning, ...] = field(default_factory=tuple)
    notes: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class Collected:
    """One raw artifact fetched from a live source, exactly as the source returned it."""

    name: str
    data: bytes


class Connector(ABC):
    """Base class for connectors; subclasses set the class attributes and implement both methods."""

    kind: str
    title: str
    version: str
    formats: tuple[str, ...]
    signals: tuple[SignalSpec, ...]
    blind_spots: tuple[str, ...]

    live: bool = False

    def collect(
        self, *, settings: Mapping[str, str], secrets: Mapping[str, str], http: httpx.Client
    ) -> list[Collected]:
        """Fetch raw evidence from the source's API (connectors with ``live = True``).

        The result is stored untouched and normalized by :meth:`normalize`, so a
        live collection and an imported export of the same data give the same facts.
        """
        raise UsageError(
            f"source kind {self.kind!r} has no live collection; export a file and use "
            "claimready ingest"
        )

    @abstractmethod
    def detect(self, *, name: str, head: bytes) -> bool:
        """True when a file with this name starting with ``head`` is in this connector's format."""

    @abstractmethod
    def normalize(
        self, evidence: EvidenceFile, *, observed_at: datetime | None, collected_at: datetime
    ) -> Normalized:
        """Turn raw evidence into asset observations and facts.

        ``observed_at`` is the time the evidence describes when the user gave it
        (imports of old exports); otherwise the connector reads it from the
        content; when it has none, facts are taken to describe ``collected_at``
        and ``observed_to`` is None.
        Raises :class:`claimready.errors.InputError` naming file, record and field.
        """

    def normalize_batches(
        self, evidence: EvidenceFile, *, observed_at: datetime | None, collected_at: datetime
    ) -> Iterator[Normalized]:
        """Normalize in chunks, for files too large to hold as one result.

        Each chunk carries its own observations, facts, record count and
        warnings; ``observed_from``/``observed_to``/``media_type`` of the chunks
        are combined. The default yields :meth:`normalize` once; a streaming
        connector overrides this and defines ``normalize`` by merging.
        """
        yield self.normalize(evidence, observed_at=observed_at, collected_at=collected_at)


class JsonMarkerConnector(Connector):
    """A connector for a JSON format recognized by what its first bytes contain.

    Subclasses declare ``detect_markers``, byte strings any one of which
    identifies the format (an OData ``$metadata#...`` context, say), and
    ``detect_fields``, the field names that identify records without a marker:
    every entry must appear as a quoted key, and an entry that is a tuple of
    names is satisfied by any one of them. A zip archive is never claimed.
    """

    detect_markers: tuple[bytes, ...] = ()
    detect_fields: tuple[str | tuple[str, ...], ...] = ()

    def detect(self, *, name: str, head: bytes) -> bool:
        """Not a zip archive, and one of ``detect_markers`` or every ``detect_fields`` entry."""
        if head.startswith(ZIP_SIGNATURE):
            return False
        if any(marker in head for marker in self.detect_markers):
            return True
        return bool(self.detect_fields) and all(
            any(_quoted(key) in head for key in _alternatives(entry))
            for entry in self.detect_fields
        )


def _alternatives(entry: str | tuple[str, ...]) -> tuple[str, ...]:
    return (entry,) if isinstance(entry, str) else entry


def _quoted(key: str) -> bytes:
    return f'"{key}"'.encode()
