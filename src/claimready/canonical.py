"""The one serializer for canonical JSON (RFC 8785, JSON Canonicalization Scheme).

Ledger entries, facts digests and signed documents are serialized here and
nowhere else, so the same value always yields the same bytes.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import rfc8785

from claimready.errors import InputError

_ENCODER = msgspec.json.Encoder(order="sorted")
_SAFE_INTEGER = 2**53


def _plain(value: Any) -> bool:
    """Whether ``value`` holds only what msgspec writes exactly as RFC 8785 does.

    That is strings, booleans, null, integers inside the IEEE 754 safe range,
    lists, and objects whose keys are ASCII (so sorting by code point equals
    RFC 8785's sort by UTF-16 code unit). Floats need ES6 number formatting
    and go to the reference implementation.
    """
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return bool(-_SAFE_INTEGER < value < _SAFE_INTEGER)
    if kind is dict:
        return all(type(k) is str and k.isascii() and _plain(v) for k, v in value.items())
    if kind is list or kind is tuple:
        return all(_plain(item) for item in value)
    return False


def canonical_json(value: Any) -> bytes:
    """Serialize ``value`` per RFC 8785 (sorted keys, no spaces, UTF-8, ES6 number form)."""
    if _plain(value):
        try:
            return _ENCODER.encode(value)
        except UnicodeEncodeError:
            pass  # a lone surrogate: the reference implementation names the problem
    try:
        return bytes(rfc8785.dumps(value))
    except (rfc8785.CanonicalizationError, TypeError) as exc:
        raise InputError(f"value cannot be canonicalized as JSON: {exc}") from exc


def loads(data: bytes | str) -> Any:
    """Parse JSON text (the inverse of :func:`canonical_json` for JSON-typed values)."""
    return json.loads(data)
