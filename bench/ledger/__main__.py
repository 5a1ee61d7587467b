"""Ledger performance figures, side by side with the alternatives, in one run.

``python -m bench.ledger`` runs the full sizes; ``--quick`` runs small sizes
as a smoke test (its figures are not comparable); ``--only=locker`` (or
``core``, ``big``, ``blobs``, comma-separated) runs some parts alone. Each
figure is printed with its target and, where there is one, the ratio to the
alternative.

pymerkle (GPL) is never a dependency: it is installed into a throwaway
virtual environment under ``bench/ledger/.cache`` and run there in a subprocess.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.common import cpu_seconds
from claimready.blobs.base import BlobRef
from claimready.blobs.local import LocalBlobStore
from claimready.blobs.verify import rehash_blobs
from claimready.ledger import merkle
from claimready.ledger.keys import KeyRing
from claimready.ledger.log import Ledger
from claimready.ledger.proof import verify_receipt
from claimready.ledger.records import encode_record, evidence_collected
from claimready.ledger.storage import FileStorage
from claimready.ledger.verify import verify_log
from claimready.timeutil import utcnow

ORIGIN = "bench.example/claimready/bench"
CACHE = Path(__file__).resolve().parent / ".cache"
PYMERKLE = "pymerkle==7.0.0"
GIT = shutil.which("git") or "git"


@dataclass(frozen=True)
class Sizes:
    """How big each benchmark runs."""

    entries: int
    big_log: int
    locker_files: int
    blob_bytes: int


FULL = Sizes(entries=1_000_000, big_log=10_000_000, locker_files=10_000, blob_bytes=2 << 30)
QUICK = Sizes(entries=20_000, big_log=200_000, locker_files=512, blob_bytes=64 << 20)


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


def report(name: str, figure: str, target: str = "", met: bool | None = None) -> None:
    """Print one figure with its target and whether it is met."""
    verdict = "" if met is None else ("  [met]" if met else "  [MISSED]")
    suffix = f"  (target {target})" if target else ""
    print(f"{name}: {figure}{suffix}{verdict}", flush=True)


@contextmanager
def scratch(prefix: str) -> Iterator[Path]:
    """A temporary directory, removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


# -- in-memory tree, and pymerkle side by side ------------------------------------


def bench_proofs(leaves: int) -> tuple[float, float]:
    """Build an in-memory tree over ``leaves`` entries; return (build s, proof us)."""
    data = [_entry(i) for i in range(leaves)]
    start = time.perf_counter()
    store = merkle.LevelStore()
    store.extend([merkle.leaf_hash(e) for e in data])
    build = time.perf_counter() - start
    root = store.root()
    rng = random.Random(1)
    picks = [rng.randrange(leaves) for _ in range(10_000)]
    gen = _per_call_us(lambda k: merkle.inclusion_proof(picks[k], leaves, store), len(picks))
    proofs = [merkle.inclusion_proof(i, leaves, store) for i in picks]
    hashes = [merkle.leaf_hash(data[i]) for i in picks]
    ver = _per_call_us(
        lambda k: merkle.verify_inclusion(
            index=picks[k], size=leaves, leaf=hashes[k], proof=proofs[k], root=root
        ),
        len(picks),
    )
    report(f"in-memory build, {leaves:,} leaves (leaf hashes + tree)", f"{build:.2f} s")
    report("inclusion proof, generate", f"{gen:.1f} us", "<= 20 us", gen <= 20)
    report("inclusion proof, verify", f"{ver:.1f} us", "<= 15 us", ver <= 15)
    return build, gen


def _pymerkle_python() -> Path:
    venv = CACHE / "pymerkle-venv"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", PYMERKLE],
            check=True,
            capture_output=True,
        )
    return python


def bench_pymerkle(leaves: int, ours: tuple[float, float]) -> None:
    """The same build and 10,000 proofs with pymerkle, in its own interpreter."""
    try:
        python = _pymerkle_python()
    except (OSError, subprocess.CalledProcessError) as exc:
        report("pymerkle", f"not measured: cannot install {PYMERKLE} ({exc})")
        return
    side = Path(__file__).with_name("pymerkle_side.py")
    out = subprocess.run(
        [str(python), str(side), str(leaves)], check=True, capture_output=True, text=True
    )
    theirs = json.loads(out.stdout)
    build_ratio = theirs["build_s"] / ours[0]
    proof_ratio = theirs["proof_us"] / ours[1]
    report(
        f"pymerkle {theirs['version']} build, {leaves:,} leaves",
        f"{theirs['build_s']:.2f} s vs ours {ours[0]:.2f} s: {build_ratio:.1f}x",
        ">= 5x",
        build_ratio >= 5,
    )
    report(
        f"pymerkle {theirs['version']} inclusion proof",
        f"{theirs['proof_us']:.1f} us vs ours {ours[1]:.1f} us: {proof_ratio:.1f}x",
        ">= 5x",
        proof_ratio >= 5,
    )


# -- the ledger on disk --------------------------------------------------------


def _batches(count: int, size: int) -> Iterator[list[bytes]]:
    for start in range(0, count, size):
        yield [_entry(i) for i in range(start, min(count, start + size))]


def raw_sync_rate(root: Path, *, prezero: bool, calls: int = 500) -> float:
    """Raw 200-byte records synced one by one: ``O_APPEND`` or overwriting pre-zeroed space."""
    record = bytes(200)
    path = root / "disk-probe"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | (0 if prezero else os.O_APPEND), 0o644)
    try:
        if prezero:
            os.pwrite(fd, bytes(calls * len(record)), 0)
            os.fsync(fd)
        start = time.perf_counter()
        for i in range(calls):
            if prezero:
                os.pwrite(fd, record, i * len(record))
            else:
                os.write(fd, record)
            os.fdatasync(fd)
        return calls / (time.perf_counter() - start)
    finally:
        os.close(fd)
        path.unlink()


def bench_disk(root: Path) -> None:
    """Reference figures: what the disk gives raw right now."""
    for label, prezero in (("append (O_APPEND)", False), ("overwrite of pre-zeroed space", True)):
        rate = raw_sync_rate(root, prezero=prezero, calls=1000)
        report(f"disk reference: raw {label} + fdatasync", f"{rate:,.0f}/s")


def _rates(rates: list[float]) -> str:
    return (
        f"{sorted(rates)[len(rates) // 2]:,.0f}/s (rounds {', '.join(f'{r:,.0f}' for r in rates)})"
    )


def bench_one_at_a_time(ledger: Ledger, root: Path, entry: bytes) -> None:
    """One-at-a-time appends, each round right after a raw probe of the disk.

    The disk is shared, so its sync rate drifts; the probe next to each round
    shows what the disk itself gave at that moment.
    """
    ours: list[float] = []
    disk: list[float] = []
    for _round in range(5):
        disk.append(raw_sync_rate(root, prezero=True))
        start = time.perf_counter()
        for _ in range(1000):
            ledger.append(entry)
        ours.append(1000 / (time.perf_counter() - start))
    rate = sorted(ours)[len(ours) // 2]
    report(
        "append one at a time, fdatasync each (median of 5 x 1,000)",
        _rates(ours),
        ">= 3,000/s",
        rate >= 3000,
    )
    report("  raw pre-zeroed overwrite + fdatasync just before each round", _rates(disk))


def bench_appends(root: Path, entries: int) -> Ledger:
    """Sequencing, integration and one-at-a-time appends."""
    ring = KeyRing(root / "keys", name=ORIGIN)
    ledger = Ledger.open(directory=root / "log", origin=ORIGIN, keyring=ring)
    data = list(_batches(entries, 256))
    start = time.perf_counter()
    for batch in data:
        ledger.append_many(batch)
    rate = entries / (time.perf_counter() - start)
    report("append_many, 256 entries per fdatasync", f"{rate:,.0f}/s", ">= 100,000/s", rate >= 1e5)
    start = time.perf_counter()
    ledger.integrate()
    rate = entries / (time.perf_counter() - start)
    report(f"integrate {entries:,} pending entries", f"{rate:,.0f}/s")
    bench_one_at_a_time(ledger, root, data[0][0])
    start = time.perf_counter()
    for batch in data[:100]:
        ledger.append_many(batch)
        ledger.integrate()
    rate = 256 * min(100, len(data)) / (time.perf_counter() - start)
    report("append_many + integrate per 256 (a checkpoint each)", f"{rate:,.0f}/s")
    return ledger


def bench_reads(ledger: Ledger, root: Path) -> None:
    """Proofs from tiles and receipt checks."""
    size = ledger.size
    rng = random.Random(2)
    picks = [rng.randrange(size) for _ in range(10_000)]
    gen = _per_call_us(lambda k: ledger.inclusion_proof(picks[k], size), len(picks))
    report(f"inclusion proof from tiles, random leaves over {size:,}", f"{gen:.1f} us")
    vkeys = KeyRing(root / "keys", name=ORIGIN).vkeys()
    receipts = [ledger.receipt(i) for i in picks[:1000]]
    ms = _per_call_us(lambda k: verify_receipt(receipts[k], None, vkeys), len(receipts)) / 1000
    report("receipt check incl. Ed25519 signature", f"{ms:.3f} ms", "<= 0.2 ms", ms <= 0.2)


def bench_verify(root: Path, size: int) -> None:
    """Full verification with one worker and with every core."""
    vkeys = KeyRing(root / "keys", name=ORIGIN).verifiers()
    for workers in sorted({1, len(os.sched_getaffinity(0))}):
        start = time.perf_counter()
        verify_log(
            storage=FileStorage(root / "log"), origin=ORIGIN, verifiers=vkeys, workers=workers
        )
        rate = size / (time.perf_counter() - start)
        target = ">= 1,000,000/s" if workers > 1 else ""
        report(
            f"full verification, {size:,} entries, {workers} worker(s)",
            f"{rate:,.0f}/s",
            target,
            rate >= 1e6 if workers > 1 else None,
        )


def build_big_log(root: Path, entries: int) -> None:
    """A log of ``entries`` entries written by append_many (4,096 per call)."""
    ring = KeyRing(root / "keys", name=ORIGIN)
    start = time.perf_counter()
    with Ledger.open(directory=root / "log", origin=ORIGIN, keyring=ring) as ledger:
        for number, batch in enumerate(_batches(entries, 4096), 1):
            ledger.append_many(batch)
            if number % 64 == 0:
                ledger.integrate()
        ledger.integrate()
    report(f"build a {entries:,}-entry log (append_many + integrate)", _took(start))


def _took(start: float) -> str:
    return f"{time.perf_counter() - start:.1f} s"


def bench_verify_big(root: Path, entries: int) -> None:
    """Verify a large log in a fresh process and report its peak memory."""
    build_big_log(root, entries)
    out = subprocess.run(
        [sys.executable, "-m", "bench.ledger", "--verify-child", str(root)],
        check=True,
        capture_output=True,
        text=True,
    )
    found = json.loads(out.stdout)
    rate = found["size"] / found["seconds"]
    report(
        f"full verification, {found['size']:,} entries, {found['workers']} workers",
        f"{rate:,.0f}/s",
        ">= 1,000,000/s",
        rate >= 1e6,
    )
    peak = found["main_mib"] + found["workers"] * found["worker_mib"]
    report(
        "peak RSS while verifying (main + workers, each at its peak)",
        f"{found['main_mib']:.0f} + {found['workers']} x {found['worker_mib']:.0f} MiB"
        f" = {peak:.0f} MiB",
        "< 512 MiB",
        peak < 512,
    )


def _peak_rss_kib() -> int:
    """This process's peak RSS (VmHWM). Unlike ru_maxrss it is not inherited across exec."""
    for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def verify_child(root: Path) -> None:
    """Entry point of the subprocess that verifies a log and measures its memory."""
    vkeys = KeyRing(root / "keys", name=ORIGIN).verifiers()
    workers = len(os.sched_getaffinity(0))
    start = time.perf_counter()
    found = verify_log(
        storage=FileStorage(root / "log"), origin=ORIGIN, verifiers=vkeys, workers=workers
    )
    seconds = time.perf_counter() - start
    main_kib = _peak_rss_kib()
    worker_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(
        json.dumps(
            {
                "size": found.size,
                "seconds": seconds,
                "workers": workers,
                "main_mib": main_kib / 1024,
                "worker_mib": worker_kib / 1024,
            }
        )
    )


# -- an evidence locker in git versus the blob store and the ledger -------------


def _evidence_files(directory: Path, count: int, size: int) -> list[Path]:
    """``count`` JSON evidence files of ``size`` bytes: rows of hosts, states and numbers."""
    directory.mkdir()
    rng = random.Random(3)
    states = ("compliant", "missing", "stale", "unknown")
    paths = []
    for i in range(count):
        head = f'{{"page": {i}, "rows": ['
        rows: list[str] = []
        length = len(head) + 2
        while True:
            row = json.dumps(
                {
                    "host": f"host-{rng.randrange(100_000):05d}.corp.example",
                    "state": rng.choice(states),
                    "checked": 1_700_000_000 + rng.randrange(10_000_000),
                    "value": rng.getrandbits(48),
                }
            )
            if length + len(row) + 1 > size:
                break
            rows.append(row)
            length += len(row) + 1
        path = directory / f"evidence-{i:05d}.json"
        path.write_bytes((head + ",".join(rows) + "]}").encode().ljust(size))
        paths.append(path)
    return paths


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        [
            GIT,
            "-C",
            str(repo),
            "-c",
            "user.name=bench",
            "-c",
            "user.email=b@example.invalid",
            # No automatic gc: it would pack the loose objects now and then, in a
            # background process that runs into the next side's time. Without it
            # git does less work than a long-lived locker would.
            "-c",
            "gc.auto=0",
            *args,
        ],
        check=True,
        capture_output=True,
    )


#: git's own durable mode: fsync objects, index and refs, objects in one batch per command.
GIT_DURABLE = ("-c", "core.fsync=all", "-c", "core.fsyncMethod=batch")


class GitLocker:
    """Auditree-style locker: copy each batch into a git repo, ``git add``, ``git commit``.

    With no ``config``, git runs with its defaults, which fsync neither loose
    objects, the index nor refs.
    """

    def __init__(self, repo: Path, config: tuple[str, ...] = ()) -> None:
        _git(repo.parent, "init", "-q", str(repo))
        self.repo = repo
        self.config = config

    def store_all(self, batches: list[list[Path]]) -> None:
        """Store each batch as one commit, in turn."""
        for number, batch in enumerate(batches):
            self.store(number, batch)

    def store(self, number: int, batch: list[Path]) -> None:
        """Store batch ``number`` as one commit."""
        folder = self.repo / "raw" / f"batch-{number:04d}"
        folder.mkdir(parents=True)
        for path in batch:
            shutil.copyfile(path, folder / path.name)
        _git(self.repo, *self.config, "add", "-A", str(folder))
        _git(self.repo, *self.config, "commit", "-q", "-m", f"evidence batch {number}")


class BlobLedgerLocker:
    """Our path: a pack per batch (``put_batches``), a record per file, ``append_many``.

    Batch *k* is entered in the ledger as soon as its blobs are durable,
    while the next two batches are being read, hashed and synced
    (``put_batches``, ``ahead=2``): no entry names a blob before it is
    stored. With ``background``, the ledger's integrator publishes
    checkpoints on its own (every 256 entries or 250 ms, the defaults);
    without it, each batch is also integrated and a checkpoint covering it
    published before the next batch is entered. :meth:`finish` returns once
    a published checkpoint covers every entry, so both are timed to the
    same end.
    """

    def __init__(self, root: Path, *, background: bool) -> None:
        self.blobs = LocalBlobStore(root / "blobs", default_retention_days=0)
        ring = KeyRing(root / "keys", name=ORIGIN)
        self.ledger = Ledger.open(directory=root / "log", origin=ORIGIN, keyring=ring)
        self.now = utcnow()
        self.background = background
        self.last = -1
        if background:
            self.ledger.start_integrator()

    def store_all(self, batches: list[list[Path]]) -> None:
        """Store every batch's blobs as one pack and sequence an entry per file."""
        for batch, refs in zip(batches, self.blobs.put_batches(batches), strict=True):
            records = [self._record(path, ref) for path, ref in zip(batch, refs, strict=True)]
            self.last = self.ledger.append_many(records)[-1]
            if not self.background:
                self.ledger.integrate()

    def _record(self, path: Path, ref: BlobRef) -> bytes:
        return encode_record(
            evidence_collected(
                actor="connector:bench",
                tenant="bench",
                blob_sha256=ref.sha256,
                size=ref.size,
                media_type="application/json",
                source_kind="bench",
                source_name=path.name,
                tool="bench",
                tool_version="1",
                collector="bench",
                observed_from=self.now,
                observed_to=None,
                collected_at=self.now,
            )
        )

    def finish(self) -> None:
        """Wait until a published checkpoint covers every entry; close the ledger."""
        if self.ledger.wait_for(self.last).size <= self.last:
            raise AssertionError("the last checkpoint does not cover every entry")
        self.ledger.close()


#: The sides of the locker comparison: how each is made in a fresh directory.
LOCKERS: dict[str, Callable[[Path], GitLocker | BlobLedgerLocker]] = {
    "git": GitLocker,
    "durable git": lambda root: GitLocker(root, GIT_DURABLE),
    "ours, a checkpoint per batch": lambda root: BlobLedgerLocker(root, background=False),
    "ours": lambda root: BlobLedgerLocker(root, background=True),
}


#: Evidence file sizes of the locker comparison. 2 KiB shows the cost per file
#: alone; 16 KiB is nearer real evidence (the real tool outputs in the test
#: samples have a median of about 10 KiB; one page of an API listing or a
#: scanner report is larger still), where git also compresses every object.
LOCKER_FILE_SIZES = (2048, 16384)


def bench_locker(root: Path, count: int, size: int, *, rounds: int = 2) -> None:
    """The same evidence files into git lockers and into the blob store + ledger.

    Each side stores every batch in turn, timed from the first batch until
    its last write is durable (for ours, until a published checkpoint covers
    every entry); the sides take turns, in reverse order on every other
    round, each starting after a ``sync`` so that none waits behind data
    another left unwritten, and wall and CPU time (git's processes included)
    are summed per side over the rounds.
    """
    files = _evidence_files(root / f"source-{size}", count, size)
    load = os.getloadavg()[0]
    wall = dict.fromkeys(LOCKERS, 0.0)
    cpu = dict.fromkeys(LOCKERS, 0.0)
    for number in range(rounds):
        order = list(LOCKERS) if number % 2 == 0 else list(reversed(LOCKERS))
        for side in order:
            os.sync()  # no side starts behind another's unwritten data (git's default leaves it)
            cpu_start, start = cpu_seconds(), time.perf_counter()
            locker = LOCKERS[side](root / f"{side.replace(' ', '-')}-{size}-{number}")
            locker.store_all([files[first : first + 256] for first in range(0, len(files), 256)])
            if isinstance(locker, BlobLedgerLocker):
                locker.finish()
            wall[side] += time.perf_counter() - start
            cpu[side] += cpu_seconds() - cpu_start
    stored = count * rounds
    ratio = wall["git"] / wall["ours"]
    report(
        f"git locker (git defaults: no fsync), {count:,} files of {size // 1024} KiB,"
        f" a commit per 256, {rounds} rounds",
        f"{stored / wall['git']:,.0f} files/s vs blob store (packs) + ledger"
        f" {stored / wall['ours']:,.0f} files/s: {ratio:.1f}x",
        ">= 20x",
        ratio >= 20,
    )
    per_batch = "ours, a checkpoint per batch"
    report(
        "  ours with a checkpoint published before each batch returns",
        f"{stored / wall[per_batch]:,.0f} files/s: {wall['git'] / wall[per_batch]:.1f}x",
    )
    report(
        "  CPU time, git locker vs ours",
        f"{cpu['git']:.2f} s vs {cpu['ours']:.2f} s: {cpu['git'] / cpu['ours']:.1f}x"
        f" (load average {load:.2f} before, {os.getloadavg()[0]:.2f} after)",
    )
    report(
        "git locker with core.fsync=all, core.fsyncMethod=batch",
        f"{stored / wall['durable git']:,.0f} files/s: blob store + ledger"
        f" {wall['durable git'] / wall['ours']:.1f}x faster",
    )


# -- blob re-hashing -------------------------------------------------------------


def bench_rehash(root: Path, total: int) -> None:
    """Re-hash ``total`` bytes of 8 MiB blobs: loose files, packs of 32 (page cache warm), and
    the packs again read from the disk."""
    block = 8 << 20
    seed = os.urandom(block)
    loose = LocalBlobStore(root / "loose", default_retention_days=0)
    packed = LocalBlobStore(root / "packed", default_retention_days=0)
    source = root / "source"
    source.mkdir()
    batch: list[Path] = []
    for i in range(max(1, total // block)):
        data = i.to_bytes(8, "big") + seed[8:]
        loose.put_bytes(data)
        batch.append(source / f"{i}.bin")
        batch[-1].write_bytes(data)
        if len(batch) == 32:
            packed.put_files(batch)
            for path in batch:
                path.unlink()
            batch = []
    if batch:
        packed.put_files(batch)
    workers = len(os.sched_getaffinity(0))
    sides = (
        ("loose files", loose, True),
        ("packs of 32", packed, True),
        ("packs of 32, read from the disk", packed, False),
    )
    for label, store, warm in sides:
        _page_cache(store.root, warm=warm)
        start, cpu = time.perf_counter(), cpu_seconds()
        found = rehash_blobs(store, workers=workers)
        wall = time.perf_counter() - start
        rate = found.bytes / wall / 1e9
        report(
            f"blob re-hash, {label}, {found.blobs:,} blobs, {found.bytes / 2**20:,.0f} MiB,"
            f" {workers} workers",
            f"{rate:.2f} GB/s (CPU {cpu_seconds() - cpu:.2f} s in {wall:.2f} s)",
            ">= 1 GB/s" if warm else "",
            rate >= 1 if warm else None,
        )


def _page_cache(directory: Path, *, warm: bool) -> None:
    """Read every file under ``directory`` into the page cache, or drop it from there.

    Packs are written past the page cache, loose blobs through it: without
    this the two re-hash figures would compare a warm cache with the disk.
    """
    for path in directory.rglob("*"):
        if not path.is_file():
            continue
        fd = os.open(path, os.O_RDONLY)
        try:
            if warm:
                while os.read(fd, 1 << 20):
                    pass
            else:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


# -- runner --------------------------------------------------------------------


def _machine() -> str:
    model = "unknown CPU"
    with Path("/proc/cpuinfo").open(encoding="utf-8") as info:
        for line in info:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    cores = len(os.sched_getaffinity(0))
    return f"{cores} CPUs ({model}), Python {platform.python_version()}, {platform.system()}"


def bench_core(sizes: Sizes) -> None:
    """The tree, pymerkle, appends, reads and verification."""
    ours = bench_proofs(sizes.entries)
    bench_pymerkle(sizes.entries, ours)
    with scratch("ledger-bench-") as root:
        bench_disk(root)
        ledger = bench_appends(root, sizes.entries)
        bench_reads(ledger, root)
        size = ledger.size
        ledger.close()
        bench_verify(root, size)


def bench_big(sizes: Sizes) -> None:
    """Verification of a large log, and its memory."""
    with scratch("ledger-bench-big-") as root:
        bench_verify_big(root, sizes.big_log)


def bench_locker_part(sizes: Sizes) -> None:
    """The git evidence locker against the blob store and ledger."""
    with scratch("ledger-bench-locker-") as root:
        bench_disk(root)  # ours syncs and git (by default) does not: the disk's pace, for reference
        for size in LOCKER_FILE_SIZES:
            bench_locker(root, sizes.locker_files, size)


def bench_blobs(sizes: Sizes) -> None:
    """Blob re-hashing."""
    with scratch("ledger-bench-blobs-") as root:
        bench_rehash(root, sizes.blob_bytes)


#: Parts of the run, in order, by the name ``--only`` takes.
PARTS: dict[str, Callable[[Sizes], None]] = {
    "core": bench_core,
    "big": bench_big,
    "locker": bench_locker_part,
    "blobs": bench_blobs,
}


def run(sizes: Sizes, parts: list[str]) -> None:
    """The benchmarks of ``parts``, in order."""
    print(f"machine: {_machine()}; load average {os.getloadavg()[0]:.2f}", flush=True)
    for name in parts:
        PARTS[name](sizes)


def main() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(prog="python -m bench.ledger")
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument(
        "--only",
        default=",".join(PARTS),
        help=f"parts to run, comma-separated, of {', '.join(PARTS)} (default: all);"
        " through ./run bench, write --only=locker",
    )
    parser.add_argument("--verify-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.verify_child is not None:
        verify_child(args.verify_child)
        return
    parts = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in parts if name not in PARTS]
    if unknown:
        parser.error(f"unknown part {unknown[0]!r}; known: {', '.join(PARTS)}")
    run(QUICK if args.quick else FULL, parts)


if __name__ == "__main__":
    main()
