"""Full verification split over worker processes (logs of more than one level-1 tile)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from claimready.errors import VerificationError
from claimready.ledger.keys import KeyRing
from claimready.ledger.log import Ledger
from claimready.ledger.storage import FileStorage
from claimready.ledger.tiles import TILE_WIDTH, entries_path, tile_path
from claimready.ledger.verify import verify_log

ORIGIN = "test.example/claimready/big"
SIZE = 2 * TILE_WIDTH * TILE_WIDTH + 300


@pytest.fixture(scope="module")
def big() -> Iterator[Path]:
    """A log spanning three level-1 tiles, with checkpoints in each range."""
    root = Path(tempfile.mkdtemp(prefix="ledger-big-"))
    ring = KeyRing(root / "keys", name=ORIGIN)
    with Ledger.open(directory=root / "log", origin=ORIGIN, keyring=ring) as ledger:
        for start in range(0, SIZE, 20_000):
            stop = min(SIZE, start + 20_000)
            ledger.append_many([b'{"i":%d}' % i for i in range(start, stop)])
            ledger.integrate()
    yield root
    shutil.rmtree(root)


def _verify(root: Path, storage_root: Path | None = None) -> None:
    verify_log(
        storage=FileStorage(storage_root or root / "log"),
        origin=ORIGIN,
        verifiers=KeyRing(root / "keys", name=ORIGIN).verifiers(),
        workers=2,
    )


def test_parallel_verification_covers_every_range(big: Path) -> None:
    report = verify_log(
        storage=FileStorage(big / "log"),
        origin=ORIGIN,
        verifiers=KeyRing(big / "keys", name=ORIGIN).verifiers(),
        workers=2,
    )
    assert report.size == SIZE
    assert report.checkpoints == 8


@pytest.mark.parametrize(
    ("path", "subject"),
    [
        (entries_path(300), "entry 76835"),
        (tile_path(0, 400), f"entry {400 * TILE_WIDTH + 35}"),
    ],
)
def test_a_worker_names_the_tampered_entry(
    big: Path, tmp_path: Path, path: str, subject: str
) -> None:
    copy = tmp_path / "log"
    shutil.copytree(big / "log", copy)
    target = copy / path
    data = bytearray(target.read_bytes())
    offset = 35 * 32 + 5 if path.startswith("tile/0") else _entry_offset(bytes(data), 35) + 3
    data[offset] ^= 0x01
    target.write_bytes(bytes(data))
    with pytest.raises(VerificationError) as caught:
        _verify(big, copy)
    assert caught.value.subject == subject


def _entry_offset(bundle: bytes, position: int) -> int:
    offset = 0
    for _ in range(position):
        offset += 2 + int.from_bytes(bundle[offset : offset + 2], "big")
    return offset + 2
