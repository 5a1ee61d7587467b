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
    and go to the reference implementation. A loop over a stack rather than
    recursion: every ledger entry passes here.
    """
    stack = [value]
    pop, push, extend = stack.pop, stack.append, stack.extend
    while stack:
        item = pop()
        kind = type(item)
        if kind is str or kind is bool or item is None:
            continue
        if kind is int:
            if not -_SAFE_INTEGER < item < _SAFE_INTEGER:
                return False
        elif kind is dict:
            for key, member in item.items():
                if type(key) is not str or not key.isascii():
                    return False
                if type(member) is not str:  # most members are: skip the stack
                    push(member)
        elif kind is list or kind is tuple:
            extend(item)
        else:
            return False
    return True


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
