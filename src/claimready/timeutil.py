"""The one time helper: every time inside claimready is timezone-aware UTC."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta

__all__ = ["UTC", "ensure_utc", "format_utc", "parse_duration", "parse_utc", "utcnow"]


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


def ensure_utc(value: datetime) -> datetime:
    """Return ``value`` in UTC; a naive value is rejected rather than guessed."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value.isoformat()} has no time zone")
    return value.astimezone(UTC)


def parse_utc(text: str) -> datetime:
    """Parse an ISO 8601 / RFC 3339 timestamp that carries a zone (``Z`` or an offset).

    Fractional seconds longer than microseconds (Microsoft APIs emit seven
    digits) are truncated. A timestamp without a zone raises ``ValueError``.
    """
    raw = text.strip()
    if not raw:
        raise ValueError("empty timestamp")
    if raw.endswith(("Z", "z")):
        raw = raw[:-1] + "+00:00"
    dot = raw.find(".")
    if dot != -1:
        end = dot + 1
        while end < len(raw) and raw[end].isdigit():
            end += 1
        raw = raw[: dot + 1] + raw[dot + 1 : end][:6].ljust(6, "0") + raw[end:]
    return ensure_utc(datetime.fromisoformat(raw))


def format_utc(value: datetime) -> str:
    """Format as RFC 3339 in UTC with a ``Z`` suffix (microseconds only when non-zero)."""
    if value.tzinfo is UTC:
        return _format_utc(value)  # the usual case, and often the same moment again
    return _format_utc(ensure_utc(value))


@functools.lru_cache(maxsize=1024)
def _format_utc(utc: datetime) -> str:
    spec = "microseconds" if utc.microsecond else "seconds"
    return utc.isoformat(timespec=spec)[:-6] + "Z"  # "+00:00" becomes "Z"


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """Parse ``90d``, ``26h``, ``15m``, ``30s`` or ``2w`` into a timedelta."""
    raw = text.strip().lower()
    if len(raw) < 2 or raw[-1] not in _UNITS or not raw[:-1].isdigit():
        raise ValueError(f"duration {text!r} is not a whole number followed by s, m, h, d or w")
    return timedelta(seconds=int(raw[:-1]) * _UNITS[raw[-1]])
