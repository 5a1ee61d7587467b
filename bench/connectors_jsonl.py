"""Benchmark of the streaming JSON-lines path: Wazuh alerts.json to stored Parquet facts.

1. Throughput: a synthetic ``alerts.json`` in Wazuh's alert shape (agents,
   rules of levels 3-12, decoder, data, full_log) is normalized by the
   Wazuh alerts connector and stored with ``write_facts``, and in the same
   run by a straightforward baseline (``json.loads`` per line, one dict per
   fact, ``pyarrow.Table.from_pylist`` and one Parquet write). Both rates in
   facts per second (end to end, parse to Parquet) and their ratio are printed.
2. Memory: a file of ``--size`` bytes (default 1 GB) goes through the same
   streaming path (``normalize_batches`` + ``write_facts`` per batch) in a
   child process whose peak RSS is reported.

Usage::

    python bench/connectors_jsonl.py                       # 100 MB throughput, 1 GB memory
    python bench/connectors_jsonl.py --quick               # 20 MB / 50 MB smoke run
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from claimready.connectors.base import EvidenceFile
from claimready.connectors.builtin.wazuh_alerts import WazuhAlertsConnector
from claimready.facts.store import FactRow, write_facts

TARGET_FACTS_PER_S = 200_000
TARGET_RSS = 1 << 30
_UNITS = {"KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}
_RULES = (
    ("5712", 10, ["syslog", "sshd", "authentication_failures"]),
    ("5503", 5, ["syslog", "pam", "authentication_failed"]),
    ("60122", 9, ["windows", "authentication_failed"]),
    ("550", 7, ["ossec", "syscheck", "syscheck_entry_modified"]),
    ("510", 7, ["ossec", "rootcheck"]),
    ("31101", 5, ["web", "accesslog", "attack"]),
    ("92052", 12, ["sysmon", "sysmon_eid10_detections"]),
    ("533", 7, ["ossec"]),
    ("60106", 3, ["windows", "authentication_success"]),
    ("87105", 10, ["vulnerability-detector"]),
)


def parse_size(text: str) -> int:
    """``1GB``, ``50MB`` or a number of bytes."""
    raw = text.strip().upper()
    for unit, factor in _UNITS.items():
        if raw.endswith(unit):
            return int(float(raw[: -len(unit)]) * factor)
    return int(raw)


def generate(path: Path, size: int, *, agents: int = 2000, seed: int = 7) -> int:
    """Write a Wazuh alerts.json of about ``size`` bytes; return the line count."""
    rng = random.Random(seed)
    start = datetime(2025, 3, 1, tzinfo=UTC)
    names = [f"ws-{i:05d}.corp.example.com" for i in range(agents)]
    written = lines = 0
    with path.open("w", encoding="utf-8") as handle:
        while written < size:
            batch = []
            for _ in range(2000):
                agent = rng.randrange(agents)
                rule_id, level, groups = _RULES[rng.randrange(len(_RULES))]
                moment = start + timedelta(seconds=lines * 0.05)
                stamp = (
                    moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"
                )
                alert = {
                    "timestamp": stamp,
                    "rule": {
                        "level": level,
                        "description": "synthetic rule",
                        "id": rule_id,
                        "firedtimes": rng.randrange(1, 50),
                        "mail": False,
                        "groups": groups,
                    },
                    "agent": {"id": f"{agent + 1:03d}", "name": names[agent], "ip": "10.0.0.1"},
                    "manager": {"name": "wazuh-manager"},
                    "id": f"{int(moment.timestamp())}.{lines}",
                    "full_log": f"Mar  1 00:00:00 {names[agent]} sshd[{rng.randrange(99999)}]: "
                    "Failed password for invalid user admin from 203.0.113.9 port 51234 ssh2",
                    "decoder": {"parent": "sshd", "name": "sshd"},
                    "data": {"srcip": "203.0.113.9", "srcport": "51234", "srcuser": "admin"},
                    "location": "/var/log/auth.log",
                }
                batch.append(json.dumps(alert, separators=(",", ":")))
                lines += 1
            text = "\n".join(batch) + "\n"
            handle.write(text)
            written += len(text)
    return lines


def run_ours(path: Path, facts_dir: Path) -> int:
    """Stream through the connector and store each batch; return the facts stored."""
    evidence = EvidenceFile(path=path, display_name=path.name, size=path.stat().st_size)
    asset_ids: dict[str, int] = {}
    stored = 0
    batches = WazuhAlertsConnector().normalize_batches(
        evidence, observed_at=None, collected_at=datetime.now(UTC)
    )
    for number, batch in enumerate(batches):
        for observation in batch.observations:
            asset_ids.setdefault(observation.key, len(asset_ids) + 1)
        rows = [
            FactRow(asset_ids[f.asset_key], f.signal, f.value, f.observed_at) for f in batch.facts
        ]
        # One evidence id per batch: write_facts names files after the evidence id.
        write_facts(
            facts_dir=facts_dir, tenant_id=1, evidence_id=number, ledger_index=None, rows=rows
        )
        stored += len(rows)
    return stored


def run_baseline(path: Path, facts_dir: Path) -> int:
    """json.loads per line, a dict per fact, one pyarrow table from the list, one write."""
    rows: list[dict[str, Any]] = []
    last: dict[str, datetime] = {}
    with path.open("rb") as handle:
        for line in handle:
            alert = json.loads(line)
            moment = datetime.fromisoformat(alert["timestamp"])
            agent = alert["agent"]["id"]
            if agent not in last or moment > last[agent]:
                last[agent] = moment
            level = alert["rule"]["level"]
            if level >= 7:
                value = f"{alert['rule']['id']}|{level}"
                rows.append(
                    {
                        "asset": agent,
                        "signal": "log.alert",
                        "value_text": value,
                        "value_time": None,
                        "observed_at": moment,
                    }
                )
    for agent, moment in last.items():
        rows.append(
            {
                "asset": agent,
                "signal": "log.last_event",
                "value_text": None,
                "value_time": moment,
                "observed_at": moment,
            }
        )
    facts_dir.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), facts_dir / "baseline.parquet", compression="zstd")
    return len(rows)


def _child(mode: str, path: Path) -> None:
    with tempfile.TemporaryDirectory() as folder:
        began = time.perf_counter()
        runner = run_ours if mode == "ours" else run_baseline
        facts = runner(path, Path(folder) / "facts")
        seconds = time.perf_counter() - began
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"facts": facts, "seconds": seconds, "peak_rss": peak}))


def _measure(mode: str, path: Path) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", mode, "--file", str(path)]
    output = subprocess.run(command, check=True, capture_output=True, text=True)
    result: dict[str, float] = json.loads(output.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> None:
    """Run the throughput comparison and the memory measurement."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size", default="1GB", help="memory test file size (1GB, 50MB, ...)")
    parser.add_argument("--throughput-size", default="100MB", help="throughput file size")
    parser.add_argument("--quick", action="store_true", help="20 MB throughput, 50 MB memory")
    parser.add_argument("--child", choices=("ours", "baseline"), help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child, args.file)
        return
    throughput = parse_size("20MB" if args.quick else args.throughput_size)
    memory = parse_size("50MB" if args.quick else args.size)
    with tempfile.TemporaryDirectory() as folder:
        small = Path(folder) / "alerts.json"
        lines = generate(small, throughput)
        ours = _measure("ours", small)
        base = _measure("baseline", small)
        print(f"throughput file: {small.stat().st_size / 1e6:.0f} MB, {lines} alerts")
        for label, result in (("claimready", ours), ("baseline", base)):
            rate = result["facts"] / result["seconds"]
            print(
                f"  {label:10s} {result['facts']:>9.0f} facts in {result['seconds']:6.2f} s = "
                f"{rate:>9.0f} facts/s, {lines / result['seconds']:>8.0f} lines/s, "
                f"peak RSS {result['peak_rss'] / 2**20:.0f} MiB"
            )
        ratio = (ours["facts"] / ours["seconds"]) / (base["facts"] / base["seconds"])
        print(f"  ratio claimready/baseline: {ratio:.2f} (target {TARGET_FACTS_PER_S} facts/s)")
        small.unlink()
        big = Path(folder) / "alerts-big.json"
        generate(big, memory)
        result = _measure("ours", big)
        print(
            f"memory file: {big.stat().st_size / 2**30:.2f} GiB: peak RSS "
            f"{result['peak_rss'] / 2**20:.0f} MiB (target < {TARGET_RSS / 2**20:.0f} MiB), "
            f"{result['facts'] / result['seconds']:.0f} facts/s"
        )


if __name__ == "__main__":
    main()
