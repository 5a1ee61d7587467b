"""Crash safety: SIGKILL an appending process at random points, then recover and verify."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from claimready.ledger.keys import KeyRing
from claimready.ledger.log import Ledger
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
