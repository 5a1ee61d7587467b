"""Print ledger performance figures: ``python -m bench.ledger [--entries N]``."""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from claimready.ledger import merkle
from claimready.ledger.keys import KeyRing
from claimready.ledger.log import Ledger
from claimready.ledger.proof import verify_receipt
from claimready.ledger.storage import FileStorage
from claimready.ledger.verify import verify_log

ORIGIN = "bench.example/claimready/bench"


def _entry(i: int) -> bytes:
    return (
        b'{"actor":"connector:edr","blob":{"sha256":"'
        + f"{i:064x}".encode()
        + b'","size":1234},"tenant":"bench","type":"evidence.collected","v":1}'
    )


def _per_call_us(fn: Callable[[int], object], calls: int) -> float:
    start = time.perf_counter()
    for i in range(calls):
        fn(i)
    return (time.perf_counter() - start) / calls * 1e6


def bench_proofs(leaves: int) -> None:
    store = merkle.LevelStore()
    start = time.perf_counter()
    store.extend([merkle.leaf_hash(_entry(i)) for i in range(leaves)])
    print(f"level store build, {leaves:,} leaves: {time.perf_counter() - start:.2f} s")
    root = store.root()
    rng = random.Random(1)
    picks = [rng.randrange(leaves) for _ in range(10_000)]
    proofs = [merkle.inclusion_proof(i, leaves, store) for i in picks]
    gen = _per_call_us(lambda k: merkle.inclusion_proof(picks[k], leaves, store), len(picks))
    hashes = [merkle.leaf_hash(_entry(i)) for i in picks]
    ver = _per_call_us(
        lambda k: merkle.verify_inclusion(
            index=picks[k], size=leaves, leaf=hashes[k], proof=proofs[k], root=root
        ),
        len(picks),
    )
    print(f"inclusion proof, {leaves:,} leaves: generate {gen:.1f} us, verify {ver:.1f} us")


def bench_appends(root: Path, entries: int) -> Ledger:
    ring = KeyRing(root / "keys", name=ORIGIN)
    ledger = Ledger.open(directory=root / "log", origin=ORIGIN, keyring=ring)
    data = [_entry(i) for i in range(entries)]
    start = time.perf_counter()
    for i in range(0, entries, 256):
        ledger.append_many(data[i : i + 256])
    seq = time.perf_counter() - start
    start = time.perf_counter()
    ledger.integrate()
    integ = time.perf_counter() - start
    print(f"append_many (256 per fsync): {entries / seq:,.0f} entries/s sequenced")
    print(f"integrate {entries:,} (tiles, bundles, checkpoint): {entries / integ:,.0f} entries/s")
    start = time.perf_counter()
    for i in range(2000):
        ledger.append(data[i])
    print(f"append one at a time: {2000 / (time.perf_counter() - start):,.0f} entries/s")
    start = time.perf_counter()
    for i in range(0, 25_600, 256):
        ledger.append_many(data[i : i + 256])
        ledger.integrate()
    rate = 25_600 / (time.perf_counter() - start)
    print(f"append_many + integrate per 256 (checkpoint each): {rate:,.0f} entries/s")
    return ledger


def bench_ledger_reads(ledger: Ledger, root: Path) -> None:
    size = ledger.size
    rng = random.Random(2)
    picks = [rng.randrange(size) for _ in range(10_000)]
    for i in picks[:2000]:
        ledger.inclusion_proof(i, size)
    gen = _per_call_us(lambda k: ledger.inclusion_proof(picks[k], size), len(picks))
    print(f"inclusion proof from tiles (warm cache), {size:,} leaves: {gen:.1f} us")
    vkeys = KeyRing(root / "keys", name=ORIGIN).verifiers()
    receipts = [ledger.receipt(i) for i in picks[:1000]]
    us = _per_call_us(lambda k: verify_receipt(receipts[k], None, vkeys), len(receipts))
    print(f"receipt check incl. Ed25519 signature: {us / 1000:.3f} ms")


def bench_verify(root: Path, size: int) -> None:
    vkeys = KeyRing(root / "keys", name=ORIGIN).verifiers()
    for workers in (1, os.cpu_count() or 1):
        start = time.perf_counter()
        verify_log(
            storage=FileStorage(root / "log"), origin=ORIGIN, verifiers=vkeys, workers=workers
        )
        rate = size / (time.perf_counter() - start)
        print(f"full verification, {workers} worker(s): {rate:,.0f} entries/s")


def main() -> None:
    """Run every benchmark and print the figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=1_000_000)
    args = parser.parse_args()
    bench_proofs(args.entries)
    root = Path(tempfile.mkdtemp(prefix="ledger-bench-"))
    try:
        ledger = bench_appends(root, args.entries)
        bench_ledger_reads(ledger, root)
        size = ledger.size
        ledger.close()
        bench_verify(root, size)
    finally:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
