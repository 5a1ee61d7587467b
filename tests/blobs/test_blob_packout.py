"""Pack writing: the compiled reader and direct writes give exactly what plain Python gives."""

from __future__ import annotations

import errno
import hashlib
import os
import random
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claimready import fileops
from claimready.blobs import packout, packs
from claimready.blobs.local import LocalBlobStore
from claimready.blobs.packout import BUFFER_SIZE
from claimready.blobs.packs import PackMeta, PackWriter, read_pack_index
from claimready.errors import StorageError

META = PackMeta(stored_at=datetime(2026, 1, 2, tzinfo=UTC), retain_until=None)

#: Sizes around the places where a run of files meets a buffer's end.
SIZES = st.sampled_from(
    [0, 1, 2047, 2048, 4095, 4096, 4097, 16384, BUFFER_SIZE - 1, BUFFER_SIZE, BUFFER_SIZE + 1]
) | st.integers(0, 70_000)


def test_the_native_reader_is_built_where_ci_runs() -> None:
    """CI installs a C compiler and OpenSSL's headers, so the optional extension must be there."""
    if packs.NATIVE_READER is None and os.environ.get("CI"):
        pytest.fail("claimready.blobs._readhash was not built: install gcc and libssl-dev")


def native_or_skip() -> None:
    if packs.NATIVE_READER is None:
        pytest.skip("claimready.blobs._readhash is not built here (no C compiler or OpenSSL)")


def write_pack(
    directory: Path, paths: list[str], *, native: bool, known: Callable[[bytes], bool]
) -> tuple[list[tuple[str, int]], bytes]:
    """Add ``paths`` to a fresh pack; return what ``add_paths`` said and the pack's bytes."""
    writer = PackWriter(directory, native=native)
    try:
        found = writer.add_paths(paths, known)
        writer.install(META)
        return found, writer.path.read_bytes()
    finally:
        writer.close(remove=True)


def blobs_of(directory: Path, data: bytes) -> dict[bytes, bytes]:
    """Every blob of the pack ``data``, by digest, read through its checked index."""
    path = directory / "copy.pack"
    path.write_bytes(data)
    return {
        digest: data[offset : offset + size]
        for digest, offset, size in read_pack_index(path).live()
    }


@st.composite
def sources(draw: st.DrawFn) -> tuple[list[bytes | None], set[int]]:
    """File contents (None: a directory), some repeated, and which of them count as stored."""
    bodies: list[bytes | None] = []
    for _ in range(draw(st.integers(1, 12))):
        if bodies and draw(st.integers(0, 5)) == 0:
            bodies.append(draw(st.sampled_from(bodies)))
        elif draw(st.integers(0, 30)) == 0:
            bodies.append(None)
        else:
            seeded = random.Random(draw(st.integers(0, 1000)))  # noqa: S311 - test data
            bodies.append(seeded.randbytes(draw(SIZES)))
    known = draw(st.sets(st.integers(0, len(bodies) - 1), max_size=2))
    return bodies, known


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=sources())
def test_native_and_python_packs_are_identical(case: tuple[list[bytes | None], set[int]]) -> None:
    native_or_skip()
    bodies, known_positions = case
    stored = {
        hashlib.sha256(body).digest()
        for i, body in enumerate(bodies)
        if i in known_positions and body is not None
    }
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        (root / "src").mkdir()
        paths = []
        for number, body in enumerate(bodies):
            path = root / "src" / f"{number:02d}.json"
            if body is None:
                path.mkdir()
            else:
                path.write_bytes(body)
            paths.append(str(path))
        outcomes: list[object] = []
        for native in (True, False):
            try:
                outcomes.append(
                    write_pack(
                        root / f"packs-{native}", paths, native=native, known=stored.__contains__
                    )
                )
            except OSError as exc:
                outcomes.append((exc.errno, exc.filename))
        assert outcomes[0] == outcomes[1]
        if None in bodies:
            assert outcomes[0] == (errno.EISDIR, paths[bodies.index(None)])
            return
        found, data = write_pack(root / "again", paths, native=True, known=stored.__contains__)
        assert found == [(hashlib.sha256(b).hexdigest(), len(b)) for b in bodies if b is not None]
        kept = {hashlib.sha256(b).digest(): b for b in bodies if b is not None}
        assert blobs_of(root, data) == {d: b for d, b in kept.items() if d not in stored}


def test_a_file_larger_than_the_buffer_is_streamed(tmp_path: Path) -> None:
    native_or_skip()
    big = tmp_path / "big.json"
    big.write_bytes(os.urandom(BUFFER_SIZE + 12345))
    small = tmp_path / "small.json"
    small.write_bytes(b"{}")
    paths = [str(small), str(big), str(small)]
    found, data = write_pack(tmp_path / "packs", paths, native=True, known=lambda _d: False)
    assert found == [
        (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_size) for p in (small, big, small)
    ]
    assert sorted(blobs_of(tmp_path, data).values(), key=len) == [b"{}", big.read_bytes()]


def test_a_duplicate_spanning_written_blocks_is_taken_back(tmp_path: Path) -> None:
    """A repeated file larger than a buffer is found repeated after part of it was written."""
    body = os.urandom(2 * BUFFER_SIZE + 999)
    first, second, tail = tmp_path / "a.bin", tmp_path / "b.bin", tmp_path / "c.bin"
    first.write_bytes(b"x" * 1000)
    second.write_bytes(body)
    tail.write_bytes(b"after")
    paths = [str(first), str(second), str(second), str(tail)]
    for native in (False, True):
        if native and packs.NATIVE_READER is None:
            continue
        found, data = write_pack(
            tmp_path / f"packs-{native}", paths, native=native, known=lambda _d: False
        )
        assert [size for _digest, size in found] == [1000, len(body), len(body), 5]
        assert sorted(blobs_of(tmp_path, data).values(), key=len) == [b"after", b"x" * 1000, body]


@pytest.mark.parametrize("size", [300_000, 3_000], ids=["in-the-background", "at-the-end"])
def test_direct_writes_refused_fall_back_to_ordinary_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    """Refused in a background write of a full buffer, or in the pack's last run of calls."""
    monkeypatch.setattr(fileops, "NATIVE", None)  # the calls go through os.pwrite, refused below
    paths = []
    for number in range(8):
        (tmp_path / f"{number}.bin").write_bytes(os.urandom(size))
        paths.append(str(tmp_path / f"{number}.bin"))
    expected = write_pack(tmp_path / "plain", paths, native=False, known=lambda _d: False)
    direct: set[int] = set()
    refused: list[int] = []
    real_open_direct, real_pwrite = packout._open_direct, os.pwrite

    def open_direct(path: Path) -> int | None:
        fd = real_open_direct(path)
        if fd is None:  # no direct writes on this filesystem: pretend there are
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        direct.add(fd)
        return fd

    def pwrite(fd: int, data: bytes | memoryview, offset: int) -> int:
        if fd in direct:
            refused.append(fd)
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(packout, "_open_direct", open_direct)
    monkeypatch.setattr(os, "pwrite", pwrite)
    assert write_pack(tmp_path / "refused", paths, native=False, known=lambda _d: False) == expected
    assert refused


def test_a_failed_background_write_names_the_pack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(3 * BUFFER_SIZE))

    def full(ops: list[fileops.Op], *, native: bool = True) -> tuple[int, OSError | None]:
        return 0, OSError(errno.ENOSPC, "No space left on device", ops[0].name)

    monkeypatch.setattr(fileops, "attempt", full)
    writer = PackWriter(tmp_path / "packs")
    try:
        with pytest.raises(StorageError, match=r"cannot write .*\.pack: No space left on device"):
            writer.add_path(str(source), lambda _d: False)
            writer.install(META)
    finally:
        writer.close(remove=True)
    assert list((tmp_path / "packs").iterdir()) == []


@pytest.mark.parametrize("native", [True, False])
def test_a_failure_not_of_the_source_is_a_storage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, native: bool
) -> None:
    """Running out of memory for a buffer is not blamed on the file being read."""
    if native:
        native_or_skip()
    else:
        monkeypatch.setattr(packs, "NATIVE_READER", None)
    source = tmp_path / "big.json"
    source.write_bytes(os.urandom(2 * BUFFER_SIZE))

    def no_memory(_self: packout.PackOutput) -> None:
        raise OSError(errno.ENOMEM, "Cannot allocate memory")

    monkeypatch.setattr(packout.PackOutput, "flush", no_memory)
    store = LocalBlobStore(tmp_path / "blobs", default_retention_days=1)
    with pytest.raises(StorageError, match="Cannot allocate memory"):
        store.put_files([source, source])
    assert list(store.iter_hashes()) == []
