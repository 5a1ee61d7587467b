"""Packed blobs: one file per batch, read back exactly, retained, disposed of, checked."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claimready.blobs.local import LocalBlobStore
from claimready.blobs.packs import read_pack_index
from claimready.blobs.verify import rehash_blobs
from claimready.errors import ConflictError, NotFoundError, VerificationError
from claimready.timeutil import utcnow


def files(directory: Path, bodies: list[bytes]) -> list[Path]:
    directory.mkdir(exist_ok=True)
    paths = []
    for number, body in enumerate(bodies):
        path = directory / f"{number}.bin"
        path.write_bytes(body)
        paths.append(path)
    return paths


def packs_of(store: LocalBlobStore) -> list[Path]:
    return sorted(p for p in (store.root / "packs").iterdir() if p.suffix == ".pack")


BODIES = [b"", b"a", b"evidence " * 300, os.urandom(3 << 20), b"a"]


def test_packed_blobs_read_back_exactly(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs", default_retention_days=1)
    refs = store.put_files(files(tmp_path / "src", BODIES))
    assert refs[1] == refs[4]
    for ref, body in zip(refs, BODIES, strict=True):
        assert ref.sha256 == hashlib.sha256(body).hexdigest() and ref.size == len(body)
        assert store.get_bytes(ref.sha256) == body
        assert store.exists(ref.sha256)
        store.rehash(ref.sha256)
    (pack,) = packs_of(store)
    assert stat.S_IMODE(pack.stat().st_mode) == 0o444
    assert read_pack_index(pack).count == 4
    assert list(store.iter_hashes()) == sorted({ref.sha256 for ref in refs})
    assert not (store.root / "sha256").exists()


def test_duplicates_are_stored_once_loose_or_packed(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs", default_retention_days=1)
    loose = store.put_bytes(b"old layout")
    paths = files(tmp_path / "src", [b"old layout", b"new"])
    store.put_files(paths)
    store.put_files(paths)
    (pack,) = packs_of(store)
    assert read_pack_index(pack).count == 1
    assert store.path_for(loose.sha256).is_file()
    assert rehash_blobs(store, workers=2).blobs == 2
    store.put_bytes(b"new")
    assert not store.path_for(hashlib.sha256(b"new").hexdigest()).exists()


def test_a_packed_blob_has_its_pack_retention_until_extended(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs", default_retention_days=30)
    ref = store.put_files(files(tmp_path / "src", [b"x"]))[0]
    until = store.retention(ref.sha256)
    assert until is not None and until > utcnow() + timedelta(days=29)
    with pytest.raises(ConflictError):
        store.set_retention(ref.sha256, until=utcnow() + timedelta(days=2))
    store.set_retention(ref.sha256, until=until + timedelta(days=1))
    assert store.retention(ref.sha256) == until + timedelta(days=1)
    store.set_legal_hold(ref.sha256, on=True)
    assert store.stat(ref.sha256).legal_hold
    with pytest.raises(ConflictError, match="legal hold"):
        store.delete(ref.sha256)


def test_disposal_waits_for_the_pack_and_then_drops_the_bytes(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs", default_retention_days=0)
    secret, kept = b"dispose of me " * 50, b"still retained"
    refs = store.put_files(files(tmp_path / "src", [secret, kept]))
    store.set_retention(refs[1].sha256, until=utcnow() + timedelta(days=1))
    store.delete(refs[0].sha256)
    with pytest.raises(NotFoundError):
        store.get_bytes(refs[0].sha256)
    assert not store.exists(refs[0].sha256)
    (pack,) = packs_of(store)
    assert secret in pack.read_bytes()  # the other blob is retained: no rewrite yet
    assert store.reclaim() == 0
    assert rehash_blobs(store, workers=1).blobs == 1
    store.set_legal_hold(refs[1].sha256, on=True)
    assert store.get_bytes(refs[1].sha256) == kept


def test_disposal_rewrites_a_pack_nothing_else_holds(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs", default_retention_days=0)
    secret = b"dispose of me " * 50
    refs = store.put_files(files(tmp_path / "src", [secret, b"a", b"b"]))
    store.delete(refs[0].sha256)
    (pack,) = packs_of(store)
    assert secret not in pack.read_bytes()
    assert [store.get_bytes(ref.sha256) for ref in refs[1:]] == [b"a", b"b"]
    assert sorted(p.name for p in (store.root / "packs").iterdir()) == [pack.name]
    store.delete(refs[1].sha256)
    store.delete(refs[2].sha256)
    assert list((store.root / "packs").iterdir()) == []


@pytest.fixture(scope="module")
def packed_store() -> tuple[Path, list[str]]:
    root = Path(tempfile.mkdtemp(prefix="packed-"))
    store = LocalBlobStore(root / "blobs", default_retention_days=0)
    bodies = [bytes([i]) * (100 + 37 * i) for i in range(6)]
    refs = store.put_files(files(root / "src", bodies))
    return root / "blobs", [ref.sha256 for ref in refs]


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_any_flipped_byte_in_a_pack_is_named(
    packed_store: tuple[Path, list[str]], data: st.DataObject
) -> None:
    root, digests = packed_store
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "blobs"
        shutil.copytree(root, copy)
        (pack,) = (copy / "packs").iterdir()
        raw = bytearray(pack.read_bytes())
        offset = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
        raw[offset] ^= data.draw(st.integers(min_value=1, max_value=255))
        pack.chmod(0o644)
        pack.write_bytes(bytes(raw))
        store = LocalBlobStore(copy, default_retention_days=0)
        with pytest.raises(VerificationError) as caught:
            rehash_blobs(store, digests=digests, workers=1)
        subject = caught.value.subject or ""
        assert subject == f"pack {pack.name}" or subject.removeprefix("blob ") in digests


CHILD = """
import os, sys, random
from pathlib import Path
from claimready.blobs.local import LocalBlobStore
root, seed = Path(sys.argv[1]), int(sys.argv[2])
rng = random.Random(seed)
store = LocalBlobStore(root / "blobs", default_retention_days=1)
source = root / f"src-{seed}"
source.mkdir()
print("ready", flush=True)
n = 0
while True:
    paths = []
    for k in range(rng.randrange(1, 40)):
        n += 1
        path = source / f"{n}.bin"
        path.write_bytes(f"{seed}-{n}-".encode() + os.urandom(rng.randrange(5000)))
        paths.append(path)
    for path, ref in zip(paths, store.put_files(paths)):
        print(ref.sha256, path, flush=True)
"""


@pytest.mark.slow
def test_sigkill_during_put_files_loses_nothing_acknowledged(tmp_path: Path) -> None:
    rng = random.Random(20240602)  # noqa: S311 - timing jitter, not secrets
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    acknowledged: dict[str, Path] = {}
    for trial in range(25):
        with subprocess.Popen(
            [sys.executable, "-c", CHILD, str(tmp_path), str(trial)],
            stdout=subprocess.PIPE,
            env=env,
        ) as child:
            assert child.stdout is not None
            assert child.stdout.readline() == b"ready\n"
            time.sleep(rng.uniform(0.0, 0.3))
            child.send_signal(signal.SIGKILL)
            out = child.stdout.read()
        for line in out.decode().split("\n")[:-1]:
            digest, name = line.split(" ")
            acknowledged[digest] = Path(name)
        store = LocalBlobStore(tmp_path / "blobs", default_retention_days=1)
        for digest, source in acknowledged.items():
            assert store.get_bytes(digest) == source.read_bytes(), f"trial {trial}: {digest}"
        rehash_blobs(store, workers=2)
    assert len(acknowledged) > 25
    an_hour_ago = time.time() - 3600  # a sweep leaves files younger than a minute alone
    for leftover in (tmp_path / "blobs" / "packs").glob(".tmp-*"):
        os.utime(leftover, (an_hour_ago, an_hour_ago))
    store.put_files(files(tmp_path / "last", [b"after the crashes"]))
    leftovers = [p for p in (tmp_path / "blobs" / "packs").iterdir() if p.name.startswith(".")]
    assert leftovers == []
