"""Generic CSV / JSON connector for RMM and inventory exports, configured by a YAML mapping.

A mapping says which columns (CSV) or dotted JSON paths give the asset's
identifiers, its kind, the observation time and which columns become which
signals with what conversion. Mappings are data, validated by one pydantic
schema (:class:`Mapping`); an invalid mapping is a ConfigError naming the YAML
file and the key.

Each mapping is a connector of kind ``mapping:<name>``: the bundled
mappings (``claimready/connectors/mappings/*.yaml``: ``ninjaone``,
``datto-rmm``, ``connectwise-automate``) and every ``*.yaml`` file in the
directory named by the ``CLAIMREADY_MAPPINGS_DIR`` environment variable
(a user mapping with a bundled mapping's name replaces it).
"""

from __future__ import annotations

import csv
import functools
import io
import os
import re
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from claimready.assets.identity import AssetObservation, Identifier, identifier, source_identifier
from claimready.connectors.base import (
    SIGNAL_TYPES,
    Connector,
    EvidenceFile,
    Normalized,
    RecordWarning,
    SignalSpec,
)
from claimready.connectors.builtin.wazuh import MAX_DOCUMENT_BYTES, load_document
from claimready.connectors.jsonlines import json_type_name
from claimready.connectors.registry import hookimpl
from claimready.errors import ConfigError, InputError
from claimready.facts.models import Fact, FactValue
from claimready.timeutil import parse_utc

MAPPINGS_ENV = "CLAIMREADY_MAPPINGS_DIR"
KIND_PREFIX = "mapping:"
_SIGNAL_NAME = re.compile(r"[a-z]+(\.[a-z0-9_]+)+")
_TRUE = ("yes", "true", "1", "on", "enabled", "y")
_FALSE = ("no", "false", "0", "off", "disabled", "n")
IdentifierKind = Literal["hostname", "fqdn", "serial", "mac", "cloud_id", "upn"]
AssetKind = Literal["workstation", "server", "endpoint", "network_device", "user", "cloud_resource"]


class TimeSpec(BaseModel):
    """How to read a time: ``iso``, ``epoch_s``, ``epoch_ms`` or a strptime pattern."""

    model_config = ConfigDict(extra="forbid")
    column: str
    format: str = "iso"
    timezone: str | None = Field(default=None, description="IANA zone for times without one")

    @model_validator(mode="after")
    def _zone(self) -> TimeSpec:
        pattern = self.format not in ("iso", "epoch_s", "epoch_ms")
        if pattern and "%z" not in self.format and self.timezone is None:
            raise ValueError("a strptime format without %z needs 'timezone'")
        if self.timezone is not None:
            try:
                ZoneInfo(self.timezone)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(f"unknown time zone {self.timezone!r}") from exc
        return self


class SignalMap(BaseModel):
    """One column mapped to one signal."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    signal: str
    column: str
    type: str
    true_values: list[str] = Field(default_factory=lambda: list(_TRUE))
    false_values: list[str] = Field(default_factory=lambda: list(_FALSE))
    format: str = "iso"
    timezone: str | None = None
    description: str = ""

    @model_validator(mode="after")
    def _check(self) -> SignalMap:
        if not _SIGNAL_NAME.fullmatch(self.signal):
            raise ValueError(f"signal {self.signal!r} is not a dotted lower-case name")
        if self.type not in SIGNAL_TYPES:
            raise ValueError(f"type must be one of {SIGNAL_TYPES}")
        if self.type == "time":
            TimeSpec(column=self.column, format=self.format, timezone=self.timezone)
        return self


class AssetMap(BaseModel):
    """Where the asset's id, name, kind and identifiers come from."""

    model_config = ConfigDict(extra="forbid")
    id: str
    display_name: str
    kind: AssetKind = "endpoint"
    kind_column: str | None = None
    kind_values: dict[str, AssetKind] = Field(default_factory=dict)
    identifiers: dict[IdentifierKind, str] = Field(default_factory=dict)


class Mapping(BaseModel):
    """A whole mapping file."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    title: str
    format: Literal["csv", "json"]
    records: str | None = Field(default=None, description="dotted path to the JSON array")
    detect: list[str] = Field(min_length=1, description="columns/keys that identify the export")
    asset: AssetMap
    observed: TimeSpec | None = None
    signals: list[SignalMap] = Field(min_length=1)
    blind_spots: list[str] = Field(default_factory=list)


def load_mapping(path: Path) -> Mapping:
    """Read and validate a mapping; ConfigError naming the file and key otherwise.

    The file is read every time, but a text already validated is not parsed again:
    every listing of the connectors builds the mapping connectors anew, and parsing
    YAML is most of their cost. An edited file is a new text, so it always counts.
    """
    try:
        return _parsed(path, path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        problem = " ".join(str(exc).split())
        raise ConfigError(f"{path}: cannot read mapping: {problem}") from exc


#: libyaml's safe loader where PyYAML has it (every process parses the bundled mappings).
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@functools.lru_cache(maxsize=64)
def _parsed(path: Path, text: str) -> Mapping:
    """The mapping of a file's text (the path only names it in errors, which are not kept)."""
    try:
        document = yaml.load(text, Loader=_SAFE_LOADER)  # noqa: S506 - a safe loader
    except (ValueError, yaml.YAMLError) as exc:
        problem = " ".join(str(exc).split())
        raise ConfigError(f"{path}: cannot read mapping: {problem}") from exc
    try:
        return Mapping.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise ConfigError(f"{path}: key {key}: {first['msg']}") from exc


def mapping_files(environ: dict[str, str] | None = None) -> dict[str, Path]:
    """Bundled mapping files, then the user's, by file stem."""
    found: dict[str, Path] = {}
    bundled = resources.files("claimready.connectors").joinpath("mappings")
    for entry in sorted(bundled.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            found[entry.name.removesuffix(".yaml")] = Path(str(entry))
    user_dir = (environ if environ is not None else os.environ).get(MAPPINGS_ENV)
    if user_dir:
        for path in sorted(Path(user_dir).glob("*.yaml")):
            found[path.stem] = path
    return found


def _get(record: dict[str, Any], path: str, fmt: str) -> Any:
    if fmt == "csv" or path in record:
        return record.get(path)
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _time(value: Any, fmt: str, zone: str | None) -> datetime:
    if fmt in ("epoch_s", "epoch_ms"):
        number = float(value)
        return datetime.fromtimestamp(number / (1000 if fmt == "epoch_ms" else 1), tz=UTC)
    text = str(value).strip()
    if fmt == "iso":
        try:
            return parse_utc(text)
        except ValueError:
            if zone is None:
                raise
            return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)
    parsed = datetime.strptime(text, fmt)  # noqa: DTZ007 - the zone is applied just below
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ZoneInfo(str(zone)))
    return parsed.astimezone(UTC)


def _convert(spec: SignalMap, value: Any) -> FactValue:
    if spec.type == "bool":
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower()
        if word in (v.lower() for v in spec.true_values):
            return True
        if word in (v.lower() for v in spec.false_values):
            return False
        raise ValueError(f"not one of the configured true/false values: {value!r}")
    if spec.type == "number":
        if isinstance(value, bool):
            raise ValueError(f"expected a number, found {value!r}")
        return float(str(value).replace(",", "")) if isinstance(value, str) else float(value)
    if spec.type == "time":
        return _time(value, spec.format, spec.timezone)
    return str(value)


class MappingConnector(Connector):
    """A CSV/JSON export read through a YAML mapping."""

    version = "1.0"

    def __init__(self, name: str, path: Path) -> None:
        self.kind = f"{KIND_PREFIX}{name}"
        self.path = path
        self.error: ConfigError | None = None
        self.mapping: Mapping | None = None
        try:
            self.mapping = load_mapping(path)
        except ConfigError as exc:
            self.error = exc
        mapping = self.mapping
        self.title = mapping.title if mapping else f"mapping {name} (invalid)"
        self.formats = (f"{mapping.format.upper()} export" if mapping else "invalid mapping",)
        self.signals = tuple(
            SignalSpec(s.signal, s.type, s.description or f"from column {s.column!r}")
            for s in (mapping.signals if mapping else [])
        )
        self.blind_spots = tuple(mapping.blind_spots if mapping else [])

    def detect(self, *, name: str, head: bytes) -> bool:
        """Every ``detect`` column in the CSV header, or every key in the JSON head."""
        if self.mapping is None:
            return False
        if self.mapping.format == "csv":
            header = head.lstrip(b"\xef\xbb\xbf").split(b"\n", 1)[0].decode("utf-8", "replace")
            columns = {c.strip() for c in next(csv.reader([header]), [])}
            return all(column in columns for column in self.mapping.detect)
        return all(f'"{key}"'.encode() in head for key in self.mapping.detect)

    def normalize(
        self, evidence: EvidenceFile, *, observed_at: datetime | None, collected_at: datetime
    ) -> Normalized:
        """One observation per record, facts converted as the mapping says."""
        if self.mapping is None:
            raise self.error or ConfigError(f"{self.path}: invalid mapping")
        return _normalize(self.mapping, evidence, observed_at, collected_at)


def _records(mapping: Mapping, evidence: EvidenceFile) -> list[Any]:
    where = evidence.display_name
    if mapping.format == "csv":
        if evidence.size > MAX_DOCUMENT_BYTES:
            raise InputError("file is too large", file=where)
        try:
            text = evidence.path.read_bytes().decode("utf-8-sig")
            return list(csv.DictReader(io.StringIO(text, newline="")))
        except UnicodeDecodeError as exc:
            raise InputError(f"not UTF-8 text (byte {exc.start})", file=where) from exc
        except csv.Error as exc:
            raise InputError(f"not valid CSV: {exc}", file=where) from exc
    document = load_document(evidence)
    if mapping.records:
        document = _get(document, mapping.records, "json") if isinstance(document, dict) else None
    if not isinstance(document, list):
        raise InputError(
            f"expected an array of records, found {json_type_name(document)}",
            file=where,
            field=mapping.records,
        )
    return document


def _observation(mapping: Mapping, record: dict[str, Any], key: str) -> AssetObservation:
    asset = mapping.asset
    idents: list[Identifier | None] = [source_identifier(f"{KIND_PREFIX}{mapping.name}", key)]
    for ident_kind, column in asset.identifiers.items():
        value = _get(record, column, mapping.format)
        if isinstance(value, str) and value.strip():
            idents.append(identifier(ident_kind, value))
    kind = asset.kind
    if asset.kind_column:
        raw_kind = _get(record, asset.kind_column, mapping.format)
        kind = asset.kind_values.get(str(raw_kind), asset.kind)
    name = _get(record, asset.display_name, mapping.format)
    return AssetObservation(
        key=key,
        kind=kind,
        display_name=str(name) if name not in (None, "") else key,
        identifiers=tuple(dict.fromkeys(i for i in idents if i is not None)),
    )


def _normalize(
    mapping: Mapping, evidence: EvidenceFile, observed_at: datetime | None, collected_at: datetime
) -> Normalized:
    where = evidence.display_name
    records = _records(mapping, evidence)
    observations: dict[str, AssetObservation] = {}
    facts: list[Fact] = []
    warnings: list[RecordWarning] = []
    times: list[datetime] = []
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise InputError(
                f"expected an object, found {json_type_name(record)}", file=where, record=index
            )
        raw_key = _get(record, mapping.asset.id, mapping.format)
        if raw_key in (None, ""):
            raise InputError("missing asset id", file=where, record=index, field=mapping.asset.id)
        key = str(raw_key)
        label = f"{index} (id {key})"
        observations.setdefault(key, _observation(mapping, record, key))
        if mapping.observed is None:
            at: datetime | None = observed_at or collected_at
        else:
            at = observed_at or _record_time(mapping, record, label, warnings)
            times.extend([at] if at else [])
        if at is None:
            continue
        for spec in mapping.signals:
            value = _get(record, spec.column, mapping.format)
            if value in (None, ""):
                continue
            try:
                facts.append(Fact(key, spec.signal, _convert(spec, value), at))
            except (ValueError, TypeError, OverflowError, OSError) as exc:
                warnings.append(RecordWarning(label, spec.column, str(exc)))
    return Normalized(
        observations=tuple(observations.values()),
        facts=tuple(facts),
        record_count=len(records),
        observed_from=min(times) if times and observed_at is None else None,
        observed_to=observed_at or (max(times) if times else None),
        media_type="text/csv" if mapping.format == "csv" else "application/json",
        warnings=tuple(warnings),
        notes=()
        if mapping.observed or observed_at
        else (f"{where}: the mapping names no time column; facts describe the collection time",),
    )


def _record_time(
    mapping: Mapping, record: dict[str, Any], label: str, warnings: list[RecordWarning]
) -> datetime | None:
    spec = mapping.observed
    if spec is None:
        return None
    value = _get(record, spec.column, mapping.format)
    try:
        return _time(value, spec.format, spec.timezone)
    except (ValueError, TypeError, OverflowError, OSError):
        warnings.append(RecordWarning(label, spec.column, f"unreadable time {value!r}"))
        return None


@hookimpl
def claimready_connectors() -> list[Connector]:
    """One connector per bundled or user-supplied mapping file."""
    return [MappingConnector(name, path) for name, path in mapping_files().items()]
