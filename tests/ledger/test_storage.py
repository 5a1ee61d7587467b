"""Local object storage: grouped atomic writes, and the order in which they become visible."""

from __future__ import annotations

import resource
import signal
from collections.abc import Sequence
from pathlib import Path

import pytest

from claimready import fileops
from claimready.errors import StorageError
from claimready.ledger.storage import FileStorage


def _record_renames_and_syncs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Path]]:
    """Log every file written and synced, rename into place and directory sync, in order."""
    events: list[tuple[str, Path]] = []
    real_attempt, real_parallel = fileops.attempt, fileops.attempt_parallel
    kinds = {
        fileops.write_file("x", b"", 0).args[0]: "data",
        fileops.rename("x", "y").args[0]: "rename",
        fileops.fsync_dir("x").args[0]: "sync",
    }

    def record(ops: Sequence[fileops.Op], done: int) -> None:
        for op in ops[:done]:
            kind = kinds[op.args[0]]
            events.append((kind, Path() if kind == "data" else Path(op.name)))

    def recording_attempt(ops: Sequence[fileops.Op]) -> tuple[int, OSError | None]:
        done, error = real_attempt(ops)
        record(ops, done)
        return done, error

    def recording_parallel(
        groups: Sequence[Sequence[fileops.Op]], *, threads: int
    ) -> list[tuple[int, OSError | None]]:
        results = real_parallel(groups, threads=threads)
        for group, (done, _error) in zip(groups, results, strict=True):
            record(group, done)
        return results

    monkeypatch.setattr(fileops, "attempt", recording_attempt)
    monkeypatch.setattr(fileops, "attempt_parallel", recording_parallel)
    return events


def test_write_many_stores_everything_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    store = FileStorage(tmp_path)
    objects = [(f"tile/{level}/000.p/{width}", bytes([width]) * width) for level in range(3)
               for width in range(1, 4)]  # fmt: skip
    store.write_many(objects, then=[("checkpoints/9", b"nine"), ("checkpoint", b"nine")])
    for path, data in [*objects, ("checkpoints/9", b"nine"), ("checkpoint", b"nine")]:
        assert store.read(path) == data
    assert not list(tmp_path.rglob(".*"))


def test_then_objects_appear_only_after_every_directory_is_synced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "tile" / "0").mkdir(parents=True)
    events = _record_renames_and_syncs(monkeypatch)
    FileStorage(tmp_path).write_many(
        [("tile/0/001", b"a"), ("tile/0/002.p/3", b"b"), ("tile/entries/002.p/3", b"c")],
        then=[("checkpoints/515", b"cp"), ("checkpoint", b"cp")],
    )
    first_rename = next(i for i, (kind, _path) in enumerate(events) if kind == "rename")
    assert [kind for kind, _path in events[:first_rename]] == ["data"] * 5
    first_then = events.index(("rename", tmp_path / "checkpoints" / "515"))
    synced_before = {path for kind, path in events[:first_then] if kind == "sync"}
    # Every directory renamed into, and the parent of every directory created.
    assert synced_before == {
        tmp_path / "tile",
        tmp_path / "tile" / "0",
        tmp_path / "tile" / "0" / "002.p",
        tmp_path / "tile" / "entries",
        tmp_path / "tile" / "entries" / "002.p",
    }
    kept, pointer = events[first_then : first_then + 3], events[first_then + 3 :]
    assert kept[0] == ("rename", tmp_path / "checkpoints" / "515")
    # The new directory, and its parent for the directory's own name (at once).
    assert set(kept[1:]) == {("sync", tmp_path / "checkpoints"), ("sync", tmp_path)}
    assert pointer == [("rename", tmp_path / "checkpoint"), ("sync", tmp_path)]


def test_a_failed_write_publishes_no_then_object(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileStorage(tmp_path)
    (tmp_path / "tile").mkdir()
    (tmp_path / "tile" / "1").write_bytes(b"a file where a directory is needed")
    with pytest.raises(StorageError):
        store.write_many([("tile/0/001", b"a"), ("tile/1/000", b"b")], then=[("checkpoint", b"cp")])
    assert store.read("checkpoint") is None
    assert not list(tmp_path.rglob(".*"))


def test_a_write_that_fails_leaves_no_temporary_file_and_names_its_object(tmp_path: Path) -> None:
    """One object past the file size limit: none is written, no temporary file is left."""
    store = FileStorage(tmp_path)
    objects = [(f"tile/0/00{i}", b"a" * 10) for i in range(6)]
    objects.insert(2, ("tile/0/big", b"b" * 10_000))
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1000, limits[1]))
    try:
        with pytest.raises(StorageError, match=r"tile/0/big: cannot write: File too large"):
            store.write_many(objects, then=[("checkpoint", b"cp")])
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, handler)
    assert [path.name for path in (tmp_path / "tile" / "0").iterdir()] == []
    assert store.read("checkpoint") is None


def test_a_directory_that_cannot_be_made_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Directories are made only once a write finds one missing; if that fails, the objects
    already written to temporary files are removed and nothing is published."""
    (tmp_path / "tile" / "0").mkdir(parents=True)

    def refuse(self: Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(StorageError, match=r"tile/entries: cannot create the directory"):
        FileStorage(tmp_path).write_many(
            [("tile/0/001", b"a"), ("tile/entries/001", b"b")], then=[("checkpoint", b"cp")]
        )
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "tile",
        "tile/0",
    ]
