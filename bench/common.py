"""Helpers shared by the benchmarks."""

from __future__ import annotations

import os
import resource
from collections.abc import Iterable
from pathlib import Path

from claimready.connectors.base import Normalized
from claimready.facts.store import FactWriter

_UNITS = {"KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}


def parse_size(text: str) -> int:
    """``1GB``, ``200MB``, ``512KB`` or a plain number of bytes."""
    raw = text.strip().upper()
    for unit, factor in _UNITS.items():
        if raw.endswith(unit):
            return int(float(raw[: -len(unit)]) * factor)
    return int(raw)


def cpu_seconds() -> float:
    """CPU time of this process and of the children it has waited for (user + system).

    ``time.process_time`` leaves out child processes, which a connector may use
    to read one file on two cores.
    """
    return sum(cpu_split())


def cpu_split() -> tuple[float, float]:
    """CPU time (user + system) of this process, and of the children it has waited for."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def load_average() -> str:
    """The 1, 5 and 15 minute load averages and the CPU count, for figures taken on a shared box."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def target_line(what: str, rate: float, cpu_rate: float, target: float, unit: str) -> str:
    """The one line that says whether a figure meets its target."""
    verdict = "MEETS" if rate >= target else "MISSES"
    return (
        f"TARGET {what}: {rate:,.0f} {unit}/s wall clock, {verdict} {target:,.0f} {unit}/s "
        f"(CPU-time rate {cpu_rate:,.0f}/s; {load_average()})"
    )


def store_batches(batches: Iterable[Normalized], facts_dir: Path) -> int:
    """Store normalized batches as ingest does (asset ids in order of first sight); the facts."""
    asset_ids: dict[str, int] = {}
    writer = FactWriter(facts_dir=facts_dir, tenant_id=1, evidence_id=1, ledger_index=None)
    stored = 0
    for batch in batches:
        for observation in batch.observations:
            asset_ids.setdefault(observation.key, len(asset_ids) + 1)
        writer.add_facts(batch.facts, asset_ids)
        stored += len(batch.facts)
    writer.close()
    return stored
