"""Helpers shared by the benchmarks."""

from __future__ import annotations

_UNITS = {"KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}


def parse_size(text: str) -> int:
    """``1GB``, ``200MB``, ``512KB`` or a plain number of bytes."""
    raw = text.strip().upper()
    for unit, factor in _UNITS.items():
        if raw.endswith(unit):
            return int(float(raw[: -len(unit)]) * factor)
    return int(raw)
