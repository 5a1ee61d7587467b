"""Custody records: the entries of the ledger, as canonical JSON (RFC 8785).

Every record carries ``type``, ``v`` (schema version), ``actor`` and
``tenant``. ``evidence.collected`` is fully specified (:class:`EvidenceCollected`,
a fixed structure encoded without a walk); the other kinds carry a
``subject`` and free-form ``details`` until their owners pin them down.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import msgspec

from claimready.canonical import canonical_json, loads
from claimready.errors import InputError
from claimready.ledger.tiles import MAX_ENTRY_SIZE
from claimready.timeutil import format_utc

__all__ = [
    "GENERIC_TYPES",
    "MAX_RECORD_SIZE",
    "SCHEMA_VERSION",
    "EvidenceCollected",
    "decode_record",
    "encode_record",
    "evidence_collected",
    "generic_record",
]

SCHEMA_VERSION = 1
MAX_RECORD_SIZE = MAX_ENTRY_SIZE
"""64 KiB less one byte: the largest entry an entry bundle can length-prefix."""

EVIDENCE_COLLECTED = "evidence.collected"
GENERIC_TYPES = frozenset(
    {
        "result.derived",
        "access",
        "export",
        "hold.set",
        "hold.released",
        "retention.set",
        "disposal",
    }
)
_REQUIRED = ("type", "v", "actor", "tenant")


_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_SAFE_SIZE = 2**53


def _sha256_hex(value: str, field: str) -> str:
    if type(value) is not str or not _SHA256_HEX.fullmatch(value):
        raise InputError("expected 64 lowercase hex digits", field=field)
    return value


def _nonempty(value: str, field: str) -> str:
    if type(value) is not str:
        raise InputError("must be text", field=field)
    if not value:
        raise InputError("must not be empty", field=field)
    return value


class _Blob(msgspec.Struct, frozen=True):
    sha256: str
    size: int


class _Source(msgspec.Struct, frozen=True):
    kind: str
    name: str


class _Tool(msgspec.Struct, frozen=True):
    name: str
    version: str


class EvidenceCollected(msgspec.Struct, frozen=True):
    """An ``evidence.collected`` record, made by :func:`evidence_collected`.

    Its fields (and those of its parts) are declared in RFC 8785's key
    order and hold only checked text, safe-range integers and null, so its
    canonical JSON is msgspec's encoding of it, with no walk and no sort.
    """

    actor: str
    blob: _Blob
    collected_at: str
    collector: str
    media_type: str
    observed_from: str
    observed_to: str | None
    source: _Source
    tenant: str
    tool: _Tool
    type: str
    v: int

    def as_dict(self) -> dict[str, Any]:
        """The record as JSON-typed values (as :func:`decode_record` gives it back)."""
        value: dict[str, Any] = msgspec.to_builtins(self)
        return value


_STRUCT_ENCODER = msgspec.json.Encoder()


def evidence_collected(
    *,
    actor: str,
    tenant: str,
    blob_sha256: str,
    size: int,
    media_type: str,
    source_kind: str,
    source_name: str,
    tool: str,
    tool_version: str,
    collector: str,
    observed_from: datetime,
    observed_to: datetime | None,
    collected_at: datetime,
) -> EvidenceCollected:
    """An ``evidence.collected`` record: one blob entered as evidence (values checked here)."""
    if type(size) is not int or not 0 <= size < _SAFE_SIZE:
        raise InputError(f"must be a whole number from 0 to {_SAFE_SIZE - 1}", field="size")
    if type(source_name) is not str:
        raise InputError("must be text", field="source_name")
    if type(tool_version) is not str:
        raise InputError("must be text", field="tool_version")
    return EvidenceCollected(  # positional: the fields in their declared order
        _nonempty(actor, "actor"),
        _Blob(_sha256_hex(blob_sha256, "blob_sha256"), size),
        format_utc(collected_at),
        _nonempty(collector, "collector"),
        _nonempty(media_type, "media_type"),
        format_utc(observed_from),
        None if observed_to is None else format_utc(observed_to),
        _Source(_nonempty(source_kind, "source_kind"), source_name),
        _nonempty(tenant, "tenant"),
        _Tool(_nonempty(tool, "tool"), tool_version),
        EVIDENCE_COLLECTED,
        SCHEMA_VERSION,
    )


def generic_record(
    *,
    type: str,
    actor: str,
    tenant: str,
    at: datetime,
    subject: Mapping[str, Any],
    details: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A record of a later kind (``result.derived``, ``access``, ``export``,
    ``hold.set``, ``hold.released``, ``retention.set``, ``disposal``).

    ``subject`` names what the record is about (for example ``{"blob":
    <sha256>, "leaf": <index>}``). A ``disposal`` is a tombstone: the blob
    may be deleted, the leaf that entered it stays.
    """
    if type not in GENERIC_TYPES:
        raise InputError(f"unknown record type {type!r}", field="type")
    return {
        "type": type,
        "v": SCHEMA_VERSION,
        "actor": _nonempty(actor, "actor"),
        "tenant": _nonempty(tenant, "tenant"),
        "at": format_utc(at),
        "subject": dict(subject),
        "details": dict(details or {}),
    }


def encode_record(record: Mapping[str, Any] | EvidenceCollected) -> bytes:
    """Canonical JSON bytes of a record; at most :data:`MAX_RECORD_SIZE` bytes."""
    if isinstance(record, EvidenceCollected):
        try:
            data = _STRUCT_ENCODER.encode(record)
        except UnicodeEncodeError:  # a lone surrogate: refused, named, as for any record
            data = canonical_json(record.as_dict())
        kind = record.type
    else:
        for key in _REQUIRED:
            if key not in record:
                raise InputError("missing", field=key)
        data = canonical_json(dict(record))
        kind = str(record.get("type"))
    if len(data) > MAX_RECORD_SIZE:
        raise InputError(
            f"record is {len(data)} bytes; at most {MAX_RECORD_SIZE} fit the ledger", record=kind
        )
    return data


def decode_record(data: bytes) -> dict[str, Any]:
    """Parse a ledger entry back into a record, checking the common fields."""
    try:
        value = loads(data)
    except ValueError as exc:
        raise InputError(f"entry is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise InputError("entry is not a JSON object")
    for key in _REQUIRED:
        if key not in value:
            raise InputError("missing", field=key)
    return value
