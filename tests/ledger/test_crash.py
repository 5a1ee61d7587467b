"""Crash safety: SIGKILL an appending process at random points, or stop the object
writes of an integration at any point; then recover and verify."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from claimready.ledger.keys import KeyRing
from claimready.ledger.log import CHECKPOINT_PATH, Ledger, checkpoint_path
from claimready.ledger.storage import FileStorage
from claimready.ledger.verify import verify_log

ORIGIN = "test.example/claimready/crash"
TRIALS = 50

CHILD = """
import sys, random
from pathlib import Path
from claimready.ledger.keys import KeyRing
from claimready.ledger.log import Ledger
root, seed = Path(sys.argv[1]), int(sys.argv[2])
rng = random.Random(seed)
ledger = Ledger.open(directory=root / "log", origin=sys.argv[3],
                     keyring=KeyRing(root / "keys", name=sys.argv[3]), batch_size=7)
print("ready", flush=True)
n = 0
while True:
    n += 1
    body = f"{seed}-{n}-".encode() + bytes(rng.randrange(256) for _ in range(rng.randrange(300)))
    if rng.random() < 0.2:
        batch = [body + bytes([k]) for k in range(rng.randrange(1, 20))]
        for index, entry in zip(ledger.append_many(batch), batch):
            print(index, entry.hex(), flush=True)
    else:
        print(ledger.append(body), body.hex(), flush=True)
    if rng.random() < 0.1:
        ledger.integrate()
"""


def _run_child(root: Path, seed: int, rng: random.Random) -> list[tuple[int, bytes]]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, str(root), str(seed), ORIGIN],
        stdout=subprocess.PIPE,
        env=env,
    ) as child:
        assert child.stdout is not None
        assert child.stdout.readline() == b"ready\n"
        time.sleep(rng.uniform(0.0, 0.15))
        child.send_signal(signal.SIGKILL)
        out = child.stdout.read()
    acked = []
    # Only newline-terminated lines were fully reported; the kill may cut the last one.
    for line in out.decode().split("\n")[:-1]:
        index, body = line.split(" ")
        acked.append((int(index), bytes.fromhex(body)))
    return acked


@pytest.mark.slow
def test_sigkill_during_appends_loses_nothing_acknowledged(tmp_path: Path) -> None:
    rng = random.Random(20240601)  # noqa: S311 - timing jitter, not secrets
    ring = KeyRing(tmp_path / "keys", name=ORIGIN)
    acknowledged: dict[int, bytes] = {}
    for trial in range(TRIALS):
        for index, body in _run_child(tmp_path, trial, rng):
            acknowledged[index] = body
        with Ledger.open(directory=tmp_path / "log", origin=ORIGIN, keyring=ring) as ledger:
            size = ledger.size
            assert size >= len(acknowledged)
            for index, body in acknowledged.items():
                assert ledger.entry(index) == body, f"trial {trial}: entry {index}"
        verify_log(storage=FileStorage(tmp_path / "log"), origin=ORIGIN, verifiers=ring.verifiers())
    assert len(acknowledged) > TRIALS


def _verify_as_left(root: Path, ring: KeyRing) -> None:
    """Neither the latest pointer nor the newest kept checkpoint names a missing object."""
    published = FileStorage(root / "log")
    if published.exists(CHECKPOINT_PATH):
        verify_log(storage=published, origin=ORIGIN, verifiers=ring.verifiers())
    kept = [int(path.rsplit("/", 1)[1]) for path in published.list("checkpoints")]
    if kept:
        as_if = root / "as-if-latest"
        shutil.copytree(root / "log", as_if)
        (as_if / CHECKPOINT_PATH).write_bytes(
            as_if.joinpath(checkpoint_path(max(kept))).read_bytes()
        )
        verify_log(storage=FileStorage(as_if), origin=ORIGIN, verifiers=ring.verifiers())
        shutil.rmtree(as_if)


class _Crash(Exception):
    """The simulated crash: no object is written after it."""


class _CrashingStorage(FileStorage):
    """Writes objects one at a time, as a crash may leave them, and stops after ``budget``.

    ``write_many`` may leave any subset of its objects, so they are written in
    a random order; objects of ``then`` follow, in turn, as promised.
    """

    def __init__(self, root: Path, *, budget: int, rng: random.Random) -> None:
        super().__init__(root)
        self.budget = budget
        self.rng = rng

    def write(self, path: str, data: bytes) -> None:
        if self.budget == 0:
            raise _Crash(path)
        self.budget -= 1
        super().write(path, data)

    def write_many(
        self, objects: Sequence[tuple[str, bytes]], *, then: Sequence[tuple[str, bytes]] = ()
    ) -> None:
        for path, data in self.rng.sample(list(objects), len(objects)):
            self.write(path, data)
        for path, data in then:
            self.write(path, data)


@settings(max_examples=40, deadline=None)
@given(
    batches=st.lists(st.integers(min_value=1, max_value=600), min_size=1, max_size=5),
    budget=st.integers(min_value=0, max_value=40),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_a_crash_at_any_object_write_leaves_a_log_that_verifies_and_recovers(
    batches: list[int], budget: int, seed: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ring = KeyRing(root / "keys", name=ORIGIN)
        crashing = _CrashingStorage(root / "log", budget=budget, rng=random.Random(seed))  # noqa: S311
        sequenced: list[bytes] = []
        try:
            ledger = Ledger.open(
                directory=root / "log", origin=ORIGIN, keyring=ring, storage=crashing
            )
            for number, count in enumerate(batches):
                batch = [f"{number}-{i}".encode() for i in range(count)]
                ledger.append_many(batch)
                sequenced.extend(batch)
                ledger.integrate()
            ledger.close()
        except _Crash:
            pass
        _verify_as_left(root, ring)
        published = FileStorage(root / "log")
        with Ledger.open(directory=root / "log", origin=ORIGIN, keyring=ring) as reopened:
            assert reopened.size == len(sequenced)
            assert [reopened.entry(i) for i in range(len(sequenced))] == sequenced
        verify_log(storage=published, origin=ORIGIN, verifiers=ring.verifiers())
