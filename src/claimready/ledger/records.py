"""Custody records: the entries of the ledger, as canonical JSON (RFC 8785).

Every record carries ``type``, ``v`` (schema version), ``actor`` and
``tenant``. ``evidence.collected`` is fully specified; the other kinds carry
a ``subject`` and free-form ``details`` until their owners pin them down.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from claimready.canonical import PlainDict, canonical_json, loads
from claimready.errors import InputError
from claimready.ledger.tiles import MAX_ENTRY_SIZE
from claimready.timeutil import format_utc

__all__ = [
    "GENERIC_TYPES",
    "MAX_RECORD_SIZE",
    "SCHEMA_VERSION",
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
) -> PlainDict:
    """An ``evidence.collected`` record: one blob entered as evidence.

    Its keys are fixed and its values checked here (text, a size in the
    exact integer range, timestamps), so it is a :class:`PlainDict` that
    :func:`encode_record` writes without a further walk.
    """
    if type(size) is not int or not 0 <= size < _SAFE_SIZE:
        raise InputError(f"must be a whole number from 0 to {_SAFE_SIZE - 1}", field="size")
    for name, text in (("source_name", source_name), ("tool_version", tool_version)):
        if type(text) is not str:
            raise InputError("must be text", field=name)
    return PlainDict(
        {
            "type": EVIDENCE_COLLECTED,
            "v": SCHEMA_VERSION,
            "actor": _nonempty(actor, "actor"),
            "tenant": _nonempty(tenant, "tenant"),
            "blob": {"sha256": _sha256_hex(blob_sha256, "blob_sha256"), "size": size},
            "media_type": _nonempty(media_type, "media_type"),
            "source": {"kind": _nonempty(source_kind, "source_kind"), "name": source_name},
            "tool": {"name": _nonempty(tool, "tool"), "version": tool_version},
            "collector": _nonempty(collector, "collector"),
            "observed_from": format_utc(observed_from),
            "observed_to": None if observed_to is None else format_utc(observed_to),
            "collected_at": format_utc(collected_at),
        }
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


def encode_record(record: Mapping[str, Any]) -> bytes:
    """Canonical JSON bytes of a record; at most :data:`MAX_RECORD_SIZE` bytes."""
    for key in _REQUIRED:
        if key not in record:
            raise InputError("missing", field=key)
    data = canonical_json(record if type(record) is PlainDict else dict(record))
    if len(data) > MAX_RECORD_SIZE:
        raise InputError(
            f"record is {len(data)} bytes; at most {MAX_RECORD_SIZE} fit the ledger",
            record=str(record.get("type")),
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
