"""The one serializer for canonical JSON (RFC 8785, JSON Canonicalization Scheme).

Ledger entries, facts digests and signed documents are serialized here and
nowhere else, so the same value always yields the same bytes.
"""

from __future__ import annotations

import json
from typing import Any

import rfc8785

from claimready.errors import InputError


def canonical_json(value: Any) -> bytes:
    """Serialize ``value`` per RFC 8785 (sorted keys, no spaces, UTF-8, ES6 number form)."""
    try:
        return bytes(rfc8785.dumps(value))
    except (rfc8785.CanonicalizationError, TypeError) as exc:
        raise InputError(f"value cannot be canonicalized as JSON: {exc}") from exc


def loads(data: bytes | str) -> Any:
    """Parse JSON text (the inverse of :func:`canonical_json` for JSON-typed values)."""
    return json.loads(data)
