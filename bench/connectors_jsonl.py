"""Benchmark of the streaming JSON-lines path: Wazuh alerts.json to stored Parquet facts.

1. Throughput: a synthetic ``alerts.json`` in Wazuh's alert shape (agents,
   rules of levels 3-12, decoder, data, full_log) is normalized by the Wazuh
   alerts connector and stored with a ``FactWriter`` batch by batch, as ingest
   does; in the same run a plain-Python baseline (``json.loads`` per line, one
   dict per fact in the fact schema, ``pyarrow.Table.from_pylist`` and one
   Parquet write) does the same job without validation. Both rates in facts
   per second, parse to Parquet, and their ratio are printed.
2. End to end: ``ingest_file`` on the same file (SQLite, a fresh data
   directory, connectors loaded before the clock starts): blob, ledger entry,
   asset reconciliation and fact files.
3. Memory: a file of ``--size`` bytes (default 1 GB) is streamed through the
   connector and the writer, then ingested end to end, each in a child process
   whose peak RSS (``VmHWM``) is reported.

Rates use wall time; the CPU time of the child is printed too, since other
work on a shared machine slows the wall clock but not the CPU time, and so is
the load average. The ``TARGET`` line says whether the target is met.

Usage::

    python -m bench jsonl                   # 100 MB throughput, 1 GB memory
    python -m bench jsonl --quick           # 20 MB / 50 MB smoke run
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
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from bench.common import cpu_seconds, load_average, parse_size, store_batches, target_line
from claimready.connectors.base import EvidenceFile
from claimready.connectors.builtin.wazuh_alerts import WazuhAlertsConnector
from claimready.facts.store import FACT_SCHEMA

TARGET_FACTS_PER_S = 200_000
_ROOT = Path(__file__).resolve().parents[1]  # children run as ``python -m bench.<module>`` here
TARGET_RSS = 1 << 30
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
    """Stream through the connector and store each batch as ingest does; the facts stored."""
    evidence = EvidenceFile(path=path, display_name=path.name, size=path.stat().st_size)
    batches = WazuhAlertsConnector().normalize_batches(
        evidence, observed_at=None, collected_at=datetime.now(UTC)
    )
    return store_batches(batches, facts_dir)


def _baseline_row(
    asset_id: int, signal: str, observed_at: datetime, **value: Any
) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(FACT_SCHEMA.names)
    row.update(
        tenant_id=1, asset_id=asset_id, signal=signal, observed_at=observed_at, evidence_id=1
    )
    row.update(value)
    return row


def run_baseline(path: Path, facts_dir: Path) -> int:
    """json.loads per line, a dict per fact, one pyarrow table from the list, one write.

    The same facts in the same schema as the connector's, without its checks.
    """
    rows: list[dict[str, Any]] = []
    last: dict[str, datetime] = {}
    asset_ids: dict[str, int] = {}
    with path.open("rb") as handle:
        for line in handle:
            alert = json.loads(line)
            moment = datetime.fromisoformat(alert["timestamp"])
            agent = alert["agent"]["id"]
            asset_id = asset_ids.setdefault(agent, len(asset_ids) + 1)
            if agent not in last or moment > last[agent]:
                last[agent] = moment
            level = alert["rule"]["level"]
            if level >= 7:
                value = f"{alert['rule']['id']}|{level}"
                rows.append(_baseline_row(asset_id, "log.alert", moment, value_text=value))
    for agent, moment in last.items():
        rows.append(_baseline_row(asset_ids[agent], "log.last_event", moment, value_time=moment))
    facts_dir.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(rows, schema=FACT_SCHEMA)
    pq.write_table(table, facts_dir / "baseline.parquet", compression="zstd")
    return len(rows)


def peak_rss() -> int:
    """Peak RSS in bytes of this process (``VmHWM``, which exec resets, unlike ``ru_maxrss``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def ingest(path: Path, source_kind: str) -> tuple[int, int]:
    """``ingest_file`` into a fresh SQLite data directory; (records, facts) stored."""
    from claimready.app import App
    from claimready.connectors.registry import all_connectors
    from claimready.db.engine import transaction
    from claimready.db.migrate import upgrade
    from claimready.evidence.service import ingest_file
    from claimready.settings import Settings
    from claimready.tenants import service as tenants

    all_connectors()  # plugin discovery imports every connector once: not part of the ingest
    with tempfile.TemporaryDirectory() as folder:
        app = App(settings=Settings(data_dir=Path(folder) / "data"))
        try:
            upgrade(app.engine)
            with transaction(app.sessions) as session:
                tenants.create(session=session, slug="bench")
            began = time.perf_counter(), cpu_seconds()
            result = ingest_file(app=app, tenant_slug="bench", path=path, source_kind=source_kind)
            seconds = time.perf_counter() - began[0], cpu_seconds() - began[1]
        finally:
            app.close()
    _report(result.record_count, result.fact_count, seconds)
    return result.record_count, result.fact_count


def _report(records: int, facts: int, seconds: tuple[float, float]) -> None:
    figures = {"records": records, "facts": facts, "seconds": seconds[0], "cpu": seconds[1]}
    # A connector may read a large file with a second process: the peak is the larger of both.
    second = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    print(json.dumps({**figures, "peak_rss": max(peak_rss(), second)}))


def measure(module: str, *args: str) -> dict[str, float]:
    """Run ``python -m module args`` in a fresh interpreter; the figures it printed last."""
    command = [sys.executable, "-m", module, *args]
    output = subprocess.run(command, check=True, capture_output=True, text=True, cwd=_ROOT)
    result: dict[str, float] = json.loads(output.stdout.strip().splitlines()[-1])
    return result


def describe(label: str, result: dict[str, float], *, unit: str = "facts") -> str:
    """One line: count, wall and CPU seconds, rate and peak RSS."""
    count = result["records" if unit != "facts" else "facts"]
    return (
        f"  {label:<22} {count:>10,.0f} {unit} in {result['seconds']:6.2f} s "
        f"(CPU {result['cpu']:6.2f} s) = {count / result['seconds']:>9,.0f} {unit}/s "
        f"(CPU {count / result['cpu']:>9,.0f}/s), peak RSS {result['peak_rss'] / 2**20:,.0f} MiB"
    )


def _child(mode: str, path: Path) -> None:
    if mode == "ingest":
        ingest(path, "wazuh-alerts")
        return
    runner: Callable[[Path, Path], int] = run_ours if mode == "ours" else run_baseline
    with tempfile.TemporaryDirectory() as folder:
        began = time.perf_counter(), cpu_seconds()
        facts = runner(path, Path(folder) / "facts")
        seconds = time.perf_counter() - began[0], cpu_seconds() - began[1]
    _report(0, facts, seconds)


def main(argv: list[str] | None = None) -> None:
    """Run the throughput comparison, the end-to-end ingest and the memory measurement."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size", default="1GB", help="memory test file size (1GB, 50MB, ...)")
    parser.add_argument("--throughput-size", default="100MB", help="throughput file size")
    parser.add_argument("--quick", action="store_true", help="20 MB throughput, 50 MB memory")
    parser.add_argument("--child", choices=("ours", "baseline", "ingest"), help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child, args.file)
        return
    throughput = parse_size("20MB" if args.quick else args.throughput_size)
    memory = parse_size("50MB" if args.quick else args.size)
    print(f"start: {load_average()}")
    with tempfile.TemporaryDirectory() as folder:
        small = Path(folder) / "alerts.json"
        lines = generate(small, throughput)
        print(f"throughput file: {small.stat().st_size / 1e6:.0f} MB, {lines:,} alerts")
        ours = measure(__name__, "--child", "ours", "--file", str(small))
        base = measure(__name__, "--child", "baseline", "--file", str(small))
        print(describe("claimready", ours))
        print(describe("baseline", base))
        ratio = (ours["facts"] / ours["seconds"]) / (base["facts"] / base["seconds"])
        cpu_ratio = (ours["facts"] / ours["cpu"]) / (base["facts"] / base["cpu"])
        print(f"  ratio claimready/baseline: {ratio:.2f} wall clock, {cpu_ratio:.2f} CPU time")
        print(
            target_line(
                "JSON lines normalize + store",
                ours["facts"] / ours["seconds"],
                ours["facts"] / ours["cpu"],
                TARGET_FACTS_PER_S,
                "facts",
            )
        )
        print(
            describe(
                "ingest_file end to end",
                measure(__name__, "--child", "ingest", "--file", str(small)),
            )
        )
        small.unlink()
        big = Path(folder) / "alerts-big.json"
        lines = generate(big, memory)
        print(f"memory file: {big.stat().st_size / 2**30:.2f} GiB, {lines:,} alerts")
        for label, mode in (("streamed and stored", "ours"), ("ingest_file end to end", "ingest")):
            result = measure(__name__, "--child", mode, "--file", str(big))
            verdict = "under" if result["peak_rss"] < TARGET_RSS else "OVER"
            print(f"{describe(label, result)} ({verdict} the 1 GiB target)")
    print(f"end: {load_average()}")


if __name__ == "__main__":
    main(sys.argv[1:])
