"""What the filesystem store puts on disk, and how it fails."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from claimready import fileops
from claimready.blobs import local
from claimready.blobs.local import LocalBlobStore
from claimready.blobs.packs import PackMeta, PackWriter, read_pack_index
from claimready.blobs.verify import rehash_blobs
from claimready.errors import InputError, StorageError
from claimready.timeutil import parse_utc, utcnow


@pytest.fixture
def unwritable_dir() -> Iterator[Path]:
    """A directory this process cannot create files in.

    Permission bits do not stop root, so as root the directory is made
    immutable instead; where neither works the test is skipped.
    """
    path = Path(tempfile.mkdtemp(prefix="claimready-ro-"))
    if os.geteuid() != 0:
        path.chmod(0o555)
        undo = ["chmod", "0755", str(path)]
    elif (
        shutil.which("chattr")
        and subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False).returncode
        == 0
    ):
        undo = ["chattr", "-i", str(path)]
    else:
        path.rmdir()
        pytest.skip("cannot make a directory unwritable for this user")
    try:
        yield path
    finally:
        subprocess.run(undo, check=True)
        shutil.rmtree(path)


def test_layout_is_sharded_and_read_only(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs", default_retention_days=1)
    ref = store.put_bytes(b"firewall config backup")
    path = tmp_path / "blobs" / "sha256" / ref.sha256[:2] / ref.sha256[2:4] / ref.sha256
    assert store.path_for(ref.sha256) == path
    assert path.read_bytes() == b"firewall config backup"
    assert stat.S_IMODE(path.stat().st_mode) == 0o444


def test_sidecar_records_retention_and_hold(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path, default_retention_days=2)
    ref = store.put_bytes(b"sidecar")
    store.set_legal_hold(ref.sha256, on=True)
    sidecar = store.path_for(ref.sha256).with_suffix(".json")
    meta = json.loads(sidecar.read_bytes())
    assert meta["sha256"] == ref.sha256
    assert meta["size"] == ref.size
    assert meta["legal_hold"] is True
    assert parse_utc(meta["retain_until"]) > utcnow() + timedelta(days=1)
    assert stat.S_IMODE(sidecar.stat().st_mode) == 0o444


def test_no_temporary_files_are_left_behind(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path, default_retention_days=1)
    ref = store.put_bytes(b"clean")
    store.put_bytes(b"clean")
    store.set_retention(ref.sha256, until=utcnow() + timedelta(days=9))
    leftovers = [p for p in tmp_path.rglob(".*") if p.name != ".lock"]
    assert leftovers == []
    assert list((tmp_path / "tmp").iterdir()) == []


def test_iter_hashes_skips_foreign_files(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path, default_retention_days=0)
    ref = store.put_bytes(b"real")
    shard = store.path_for(ref.sha256).parent
    (shard / "notes.txt").write_text("not a blob")
    (shard / ("f" * 64)).write_text("wrong shard")
    assert list(store.iter_hashes()) == [ref.sha256]


def test_empty_store_lists_nothing(tmp_path: Path) -> None:
    assert list(LocalBlobStore(tmp_path / "absent", default_retention_days=0).iter_hashes()) == []


def test_unwritable_root_names_the_path(unwritable_dir: Path) -> None:
    store = LocalBlobStore(unwritable_dir / "blobs", default_retention_days=1)
    with pytest.raises(StorageError, match=re.escape(str(unwritable_dir))):
        store.put_bytes(b"nowhere to go")


def test_unwritable_existing_root_names_the_path(unwritable_dir: Path) -> None:
    store = LocalBlobStore(unwritable_dir, default_retention_days=1)
    with pytest.raises(StorageError, match=re.escape(str(unwritable_dir))):
        store.put_bytes(b"nowhere to go")


def test_root_under_a_file_names_the_path(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    store = LocalBlobStore(blocker / "blobs", default_retention_days=1)
    with pytest.raises(StorageError, match=re.escape(str(blocker))):
        store.put_bytes(b"blocked")


def test_malformed_sidecar_names_the_file(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path, default_retention_days=1)
    ref = store.put_bytes(b"bad sidecar")
    sidecar = store.path_for(ref.sha256).with_suffix(".json")
    sidecar.chmod(0o644)
    sidecar.write_text("{not json")
    with pytest.raises(StorageError, match=re.escape(str(sidecar))):
        store.stat(ref.sha256)


def test_missing_sidecar_is_restored_on_put(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path, default_retention_days=1)
    ref = store.put_bytes(b"lost sidecar")
    store.path_for(ref.sha256).with_suffix(".json").unlink()
    assert store.retention(ref.sha256) is None
    store.put_bytes(b"lost sidecar")
    assert store.retention(ref.sha256) is not None


@pytest.mark.parametrize("days", [-1, 36501])
def test_default_retention_out_of_range_is_rejected(tmp_path: Path, days: int) -> None:
    with pytest.raises(InputError, match="default retention"):
        LocalBlobStore(tmp_path, default_retention_days=days)


def test_large_put_uses_bounded_memory(tmp_path: Path) -> None:
    source = tmp_path / "large.bin"
    with source.open("wb") as out:
        for _ in range(20):
            out.write(os.urandom(1024 * 1024))
    store = LocalBlobStore(tmp_path / "blobs", default_retention_days=1)
    tracemalloc.start()
    try:
        store.put_file(source)
        store.rehash(store.put_file(source).sha256)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024


def sources(directory: Path, count: int) -> list[Path]:
    directory.mkdir()
    paths = []
    for number in range(count):
        path = directory / f"{number}.json"
        path.write_bytes(f'{{"row":{number}}}'.encode())
        paths.append(path)
    return paths


@pytest.mark.parametrize("native", [True, False])
def test_put_files_fsyncs_the_pack_and_its_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, native: bool
) -> None:
    """Two syncs per batch whatever its size, in two runs of calls; no syncfs of the filesystem."""
    if native and fileops.NATIVE is None:
        pytest.skip("claimready._fileops is not built here")
    fsynced: list[int] = []
    runs: list[list[tuple[int, str]]] = []
    real_fsync, real_attempt = os.fsync, fileops.attempt

    def counting_fsync(fd: int) -> None:
        fsynced.append(fd)
        real_fsync(fd)

    def recording_attempt(
        ops: list[fileops.Op], *, native: bool = True
    ) -> tuple[int, OSError | None]:
        runs.append([(op.args[0], op.name) for op in ops])
        return real_attempt(ops, native=chosen)

    def no_syncfs(root: Path) -> bool:
        raise AssertionError("put_files must not sync the whole filesystem")

    monkeypatch.setattr(local, "_syncfs", no_syncfs)
    monkeypatch.setattr(os, "fsync", counting_fsync)
    chosen = native  # whichever runner the caller asks for
    monkeypatch.setattr(fileops, "attempt", recording_attempt)
    store = LocalBlobStore(tmp_path / "blobs", default_retention_days=1)
    refs = store.put_files(sources(tmp_path / "src", 40))
    assert len(set(refs)) == 40
    (pack,) = (tmp_path / "blobs" / "packs").iterdir()
    assert stat.S_IMODE(pack.stat().st_mode) == 0o444
    # The pack's last writes and its sync (before the store lock), then its rename (under it).
    (*writes, truncate, chmod, sync), (rename, sync_dir) = runs
    assert {code for code, _name in writes} == {4}
    assert [code for code, _name in (truncate, chmod, sync, rename, sync_dir)] == [6, 7, 0, 2, 3]
    assert sync[1] != str(pack) and rename[1] == str(pack) and sync_dir[1] == str(pack.parent)
    assert len(fsynced) == (0 if native else 2)


def test_put_files_leaves_no_temporary_files(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path, default_retention_days=1)
    paths = sources(tmp_path / "src", 10)
    store.put_files([*paths, paths[0]])
    names = [path.name for path in (tmp_path / "packs").iterdir()]
    assert len(names) == 1 and names[0].startswith("pack-") and names[0].endswith(".pack")


def test_put_files_removes_a_crashed_writers_temporary_pack(tmp_path: Path) -> None:
    packs = tmp_path / "blobs" / "packs"
    packs.mkdir(parents=True)
    crashed = packs / ".tmp-crashed.pack"  # nobody holds its lock: its writer is gone
    crashed.write_bytes(b"CRPACK1\npartial")
    an_hour_ago = time.time() - 3600
    os.utime(crashed, (an_hour_ago, an_hour_ago))
    live = packs / ".tmp-live.pack"
    live.write_bytes(b"CRPACK1\n")
    os.utime(live, (an_hour_ago, an_hour_ago))
    fresh = packs / ".tmp-fresh.pack"  # just created: its writer may not hold its lock yet
    fresh.write_bytes(b"CRPACK1\n")
    with live.open("rb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        store = LocalBlobStore(tmp_path / "blobs", default_retention_days=1)
        store.put_files(sources(tmp_path / "src", 2))
        assert not crashed.exists()
        assert live.exists()  # a writer still at work keeps its file
        assert fresh.exists()


def test_put_files_installs_nothing_when_a_source_is_unreadable(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs", default_retention_days=1)
    paths = [*sources(tmp_path / "src", 3), tmp_path / "missing.json"]
    with pytest.raises(InputError, match=r"missing\.json"):
        store.put_files(paths)
    assert list(store.iter_hashes()) == []
    assert list((tmp_path / "blobs" / "packs").iterdir()) == []


@pytest.mark.parametrize("step", ["finish", "publish"])
def test_put_files_that_fails_to_install_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    """A pack whose sync (outside the lock) or rename (under it) fails is removed, and named."""
    store = LocalBlobStore(tmp_path / "blobs", default_retention_days=1)
    paths = sources(tmp_path / "src", 3)

    def fail(writer: PackWriter, *args: object) -> None:
        raise OSError(errno.EIO, "Input/output error", str(writer.path))

    with monkeypatch.context() as patched:
        patched.setattr(PackWriter, step, fail)
        with pytest.raises(StorageError, match=r"blobs.*packs.*Input/output error"):
            store.put_files(paths)
    assert list((tmp_path / "blobs" / "packs").iterdir()) == []
    assert list(store.iter_hashes()) == []
    refs = store.put_files(paths)  # the store takes the batch again
    assert [store.get_bytes(ref.sha256) for ref in refs] == [p.read_bytes() for p in paths]


def test_put_files_restores_a_missing_sidecar(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path, default_retention_days=1)
    ref = store.put_bytes(b'{"row":0}')
    store.path_for(ref.sha256).with_suffix(".json").unlink()
    store.put_files(sources(tmp_path / "src", 1))
    assert store.retention(ref.sha256) is not None


def test_a_blob_stored_meanwhile_is_left_out_of_the_pack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer stores a blob of the batch after its pack was synced, before the lock."""
    first = LocalBlobStore(tmp_path / "blobs", default_retention_days=1)
    other = LocalBlobStore(tmp_path / "blobs", default_retention_days=1)
    paths = sources(tmp_path / "src", 5)
    real_finish = PackWriter.finish
    raced: list[bool] = []

    def finish_then_race(writer: PackWriter, meta: PackMeta) -> bytes:
        tail = real_finish(writer, meta)
        if not raced:  # the race, once: the other writer's own pack goes through untouched
            raced.append(True)
            other.put_files(paths[1:3])
        return tail

    monkeypatch.setattr(PackWriter, "finish", finish_then_race)
    refs = first.put_files(paths)
    assert [ref.sha256 for ref in refs] == [
        hashlib.sha256(path.read_bytes()).hexdigest() for path in paths
    ]
    packs = sorted((tmp_path / "blobs" / "packs").iterdir())
    assert [p.name[:5] for p in packs] == ["pack-", "pack-"]  # no temporary file is left
    counts = sorted(read_pack_index(pack).count for pack in packs)
    assert counts == [2, 3]  # each blob in one pack only
    fresh = LocalBlobStore(tmp_path / "blobs", default_retention_days=1)
    for ref, path in zip(refs, paths, strict=True):
        assert fresh.get_bytes(ref.sha256) == path.read_bytes()
    assert rehash_blobs(fresh, workers=2).blobs == 5


@pytest.fixture
def frequent_switches() -> Iterator[None]:
    """Threads take turns between almost every bytecode, so races show."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(interval)


@pytest.mark.usefixtures("frequent_switches")
def test_threads_of_one_store_put_batches_at_once(tmp_path: Path) -> None:
    """Workers of one store refresh and adopt packs at the same time as they look blobs up."""
    store = LocalBlobStore(tmp_path / "blobs", default_retention_days=1)
    paths = sources(tmp_path / "src", 400)
    batches = [paths[first : first + 5] for first in range(0, len(paths), 5)]
    errors: list[BaseException] = []

    def work(mine: list[list[Path]]) -> None:
        try:
            for batch in mine:
                store.put_files(batch)
                store.exists(hashlib.sha256(batch[0].read_bytes()).hexdigest())
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(batches[k::4],)) for k in range(4)]
    for worker in workers:
        worker.start()
    while any(worker.is_alive() for worker in workers):
        list(store.iter_hashes())
    for worker in workers:
        worker.join()
    assert errors == []
    assert len(list(store.iter_hashes())) == 400
