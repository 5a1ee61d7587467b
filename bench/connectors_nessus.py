"""Benchmark of the streaming Nessus v2 connector.

1. Throughput: a synthetic report built from real ReportHost/ReportItem shapes
   is normalized by the connector (alone, then with its facts stored by a
   ``FactWriter`` batch by batch, as ingest does: the figure the target is
   for) and, in the same run, by a straightforward baseline (a full
   ``xml.etree`` parse with one Python dict per item); the rates in findings
   (ReportItems) per second and their ratio are printed. A report this large
   is read by two processes; CPU time counts both.
2. End to end: ``ingest_file`` on the same report (SQLite, a fresh data
   directory, connectors loaded before the clock starts), in a child process.
3. Memory: a report of ``--size`` bytes (default 1 GB) is streamed through
   ``normalize_batches`` in a child process whose peak RSS is reported.

Rates use wall time; CPU time is printed beside them, since other work on a
shared machine slows the wall clock but not the CPU time, and so is the load
average. The ``TARGET`` line says whether the target is met.

Usage::

    python -m bench nessus                  # 100 MB throughput, 1 GB memory
    python -m bench nessus --quick          # 20 MB / 50 MB smoke run
"""

from __future__ import annotations

import argparse
import re
import resource
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import cpu_split, load_average, parse_size, store_batches, target_line
from bench.connectors_jsonl import describe, ingest, measure, peak_rss
from claimready.connectors.base import EvidenceFile
from claimready.connectors.builtin.nessus import NessusConnector

# Real reports bundled with their licence (see data/nessus/README.md); --samples names others.
DEFAULT_SAMPLES = Path(__file__).resolve().parent / "data" / "nessus"
COLLECTED = datetime(2026, 1, 1, tzinfo=UTC)
TARGET_RATE = 50_000
TARGET_RSS = 1 << 30


def _shapes(samples: Path) -> tuple[str, list[str]]:
    """HostProperties and ReportItems from the samples, without pretty-printing indentation."""
    items: list[str] = []
    properties = ""
    for path in sorted(samples.glob("*.nessus")):
        text = path.read_text()
        items.extend(re.findall(r"<ReportItem .*?</ReportItem>", text, re.S))
        found = re.search(r"<HostProperties>.*?</HostProperties>", text, re.S)
        if found and "HOST_END_TIMESTAMP" in found.group(0):
            properties = found.group(0)
    if not items or not properties:
        raise SystemExit(f"no Nessus samples with HOST_END_TIMESTAMP under {samples}")
    flatten = re.compile(r">\s+<")
    return flatten.sub(">\n<", properties), [flatten.sub(">\n<", item) for item in items]


def _hosts(properties: str, items: list[str]) -> Iterator[str]:
    number = 0
    while True:
        name = f"host{number}.corp.example.com"
        props = properties.replace("testphp.vulnweb.com", name)
        body = "\n".join(items)
        yield f'<ReportHost name="{name}">{props}\n{body}\n</ReportHost>\n'
        number += 1


def generate(path: Path, size: int, samples: Path) -> int:
    """Write a report of about ``size`` bytes; the number of ReportItems written."""
    properties, items = _shapes(samples)
    written = 0
    findings = 0
    with path.open("w", encoding="utf-8") as handle:
        handle.write('<?xml version="1.0" ?>\n<NessusClientData_v2>\n<Report name="bench">\n')
        for host in _hosts(properties, items):
            handle.write(host)
            written += len(host)
            findings += len(items)
            if written >= size:
                break
        handle.write("</Report>\n</NessusClientData_v2>\n")
    return findings


def _evidence(path: Path) -> EvidenceFile:
    return EvidenceFile(path=path, display_name=path.name, size=path.stat().st_size)


def run_connector(path: Path) -> int:
    """Facts produced by the connector's ``normalize``."""
    result = NessusConnector().normalize(_evidence(path), observed_at=None, collected_at=COLLECTED)
    return len(result.facts)


def run_connector_stored(path: Path) -> int:
    """Facts produced by ``normalize_batches`` and stored batch by batch, as ingest does."""
    with tempfile.TemporaryDirectory() as folder:
        batches = NessusConnector().normalize_batches(
            _evidence(path), observed_at=None, collected_at=COLLECTED
        )
        return store_batches(batches, Path(folder))


def run_baseline(path: Path) -> int:
    """The straightforward way: parse the whole tree, one dict per item, then aggregate."""
    tree = ET.parse(path)  # noqa: S314 - the benchmark's own generated file
    summaries = 0
    for host in tree.getroot().iter("ReportHost"):
        records: list[dict[str, Any]] = []
        for item in host.iter("ReportItem"):
            record: dict[str, Any] = dict(item.attrib)
            for child in item:
                record.setdefault(child.tag, []).append((child.text or "").strip())
            records.append(record)
        open_ = [r for r in records if int(r["severity"]) >= 1]
        cves = {c for r in open_ for c in r.get("cve", [])}
        scores = [
            float((r.get("cvss3_base_score") or r.get("cvss_base_score") or ["0"])[0])
            for r in open_
        ]
        counts = {s: sum(r["severity"] == s for r in open_) for s in ("2", "3", "4")}
        summaries += len(cves) + len(counts) + (1 if scores else 0) + len(open_)
    return summaries


def _timed(label: str, function: Any, path: Path, findings: int) -> tuple[float, float]:
    """Run ``function(path)``; print and return its wall-clock and CPU-time rates.

    When a second process read part of the file, its CPU time is counted and
    the busiest process's CPU time is shown: the wall clock of a machine with
    a free core for each.
    """
    start, (own, children) = time.perf_counter(), cpu_split()
    function(path)
    elapsed = time.perf_counter() - start
    own, children = (
        after - before for after, before in zip(cpu_split(), (own, children), strict=True)
    )
    cpu = own + children
    rate = findings / elapsed
    print(
        f"{label:<32} {elapsed:8.2f} s (CPU {cpu:6.2f} s) {rate:12,.0f} findings/s "
        f"(CPU {findings / cpu:10,.0f}/s)"
    )
    if children:
        busiest = max(own, children)
        print(
            f"{'':<32} CPU {own:.2f} s here + {children:.2f} s in the second process: "
            f"{findings / busiest:,.0f} findings/s by the busiest one"
        )
    return rate, findings / cpu


def throughput(folder: Path, size: int, samples: Path) -> None:
    """Connector versus baseline on the same generated file, then ingest end to end."""
    path = folder / "throughput.nessus"
    findings = generate(path, size, samples)
    print(f"throughput file: {path.stat().st_size / 1e6:,.0f} MB, {findings:,} findings")
    ours = _timed("connector normalize (streamed)", run_connector, path, findings)
    stored = _timed("connector normalize + store", run_connector_stored, path, findings)
    base = _timed("baseline etree + dicts", run_baseline, path, findings)
    print(
        f"ratio connector/baseline: {ours[0] / base[0]:.2f}x wall clock, "
        f"{ours[1] / base[1]:.2f}x CPU time (normalize + store: {stored[0] / base[0]:.2f}x)"
    )
    print(target_line("Nessus normalize + store", *stored, TARGET_RATE, "findings"))
    result = measure(__name__, "--ingest", str(path))
    print(describe("ingest_file end to end", result))
    print(
        f"  = {findings / result['seconds']:,.0f} findings/s "
        f"(CPU {findings / result['cpu']:,.0f}/s) end to end"
    )


def child_peak_rss(path: Path) -> None:
    """Stream ``path`` through ``normalize_batches``; print the peak RSS in bytes, hosts, facts.

    The peak is the larger of this process's and of the second process that
    reads part of a large report.
    """
    facts = 0
    hosts = 0
    for batch in NessusConnector().normalize_batches(
        _evidence(path), observed_at=None, collected_at=COLLECTED
    ):
        facts += len(batch.facts)
        hosts += batch.record_count
    second = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    print(f"{max(peak_rss(), second)} {hosts} {facts}")


def memory(folder: Path, size: int, samples: Path) -> None:
    """Peak RSS of child processes streaming, then ingesting, a report of ``size`` bytes."""
    path = folder / "memory.nessus"
    findings = generate(path, size, samples)
    start = time.perf_counter()
    output = subprocess.run(
        [sys.executable, "-m", __name__, "--child", str(path)],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    ).stdout.split()
    elapsed = time.perf_counter() - start
    peak, hosts, facts = (int(v) for v in output)
    verdict = "under" if peak < TARGET_RSS else "OVER"
    print(
        f"memory file: {path.stat().st_size / 1e9:.2f} GB, {findings:,} findings, {hosts:,} hosts, "
        f"{facts:,} facts in {elapsed:.1f} s ({findings / elapsed:,.0f} findings/s)"
    )
    print(f"peak RSS streaming it: {peak / (1 << 20):,.0f} MiB ({verdict} the 1 GiB target)")
    result = measure(__name__, "--ingest", str(path))
    verdict = "under" if result["peak_rss"] < TARGET_RSS else "OVER"
    print(f"{describe('ingest_file end to end', result)} ({verdict} the 1 GiB target)")


def main(argv: list[str] | None = None) -> None:
    """Run the throughput and memory measurements."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1GB", help="memory test file size (1GB, 50MB, ...)")
    parser.add_argument("--throughput-size", default="100MB", help="throughput file size")
    parser.add_argument(
        "--samples", type=Path, default=DEFAULT_SAMPLES, help="folder of .nessus samples"
    )
    parser.add_argument("--quick", action="store_true", help="20 MB throughput, 50 MB memory")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--ingest", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        child_peak_rss(args.child)
        return
    if args.ingest is not None:
        ingest(args.ingest, "nessus")
        return
    if args.quick:
        args.throughput_size, args.size = "20MB", "50MB"
    print(f"start: {load_average()}")
    with tempfile.TemporaryDirectory(prefix="claimready-bench-") as name:
        folder = Path(name)
        throughput(folder, parse_size(args.throughput_size), args.samples)
        memory(folder, parse_size(args.size), args.samples)
    print(f"end: {load_average()}")


if __name__ == "__main__":
    main(sys.argv[1:])
