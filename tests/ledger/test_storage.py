"""Local object storage: grouped atomic writes, and the order in which they become visible."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from claimready.errors import StorageError
from claimready.ledger import storage as storage_module
from claimready.ledger.storage import FileStorage


def _record_renames_and_syncs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Path]]:
    """Log every file sync, rename into place and directory sync, in order."""
    events: list[tuple[str, Path]] = []
    rename, fsync_dir, fsync = storage_module._rename, storage_module._fsync_dir, os.fsync

    def recording_fsync(fd: int) -> None:
        fsync(fd)
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            events.append(("data", Path()))

    def recording_rename(tmp: Path, target: Path) -> None:
        rename(tmp, target)
        events.append(("rename", target))

    def recording_fsync_dir(directory: Path) -> None:
        fsync_dir(directory)
        events.append(("sync", directory))

    monkeypatch.setattr(os, "fsync", recording_fsync)
    monkeypatch.setattr(storage_module, "_rename", recording_rename)
    monkeypatch.setattr(storage_module, "_fsync_dir", recording_fsync_dir)
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
