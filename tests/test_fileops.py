"""A run of file system calls: the compiled runner and the Python one agree, errors included."""

from __future__ import annotations

import errno
import os
import resource
import signal
import stat
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from claimready import fileops

RUNNERS = [
    pytest.param(True, id="native"),
    pytest.param(False, id="python"),
]


def test_the_native_runner_is_built_where_ci_runs() -> None:
    """CI installs a C compiler, so the optional extension must be there."""
    if fileops.NATIVE is None and os.environ.get("CI"):
        pytest.fail("claimready._fileops was not built: install gcc")


def _runner(native: bool) -> Callable[[list[fileops.Op]], None]:
    if native and fileops.NATIVE is None:
        pytest.skip("claimready._fileops is not built here (no C compiler)")
    return lambda ops: fileops.run(ops, native=native)


@pytest.mark.parametrize("native", RUNNERS)
def test_a_run_writes_syncs_and_renames(tmp_path: Path, native: bool) -> None:
    run = _runner(native)
    temp, target = tmp_path / ".a.tmp", tmp_path / "a"
    run([fileops.write_file(str(temp), b"hello", 0o640)])
    assert temp.read_bytes() == b"hello"
    assert stat.S_IMODE(temp.stat().st_mode) == 0o640
    run([fileops.rename(str(temp), str(target)), fileops.fsync_dir(str(tmp_path))])
    assert not temp.exists() and target.read_bytes() == b"hello"

    fd = os.open(tmp_path / "b", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        data = memoryview(b"0123456789" * 1000)
        run(
            [
                fileops.pwrite(fd, data, 5, "b"),
                fileops.fdatasync(fd, "b"),
                fileops.ftruncate(fd, 9000, "b"),
                fileops.fchmod(fd, 0o444, "b"),
                fileops.fsync(fd, "b"),
            ]
        )
    finally:
        os.close(fd)
    assert (tmp_path / "b").read_bytes() == bytes(5) + bytes(data)[:8995]
    assert stat.S_IMODE((tmp_path / "b").stat().st_mode) == 0o444


@pytest.mark.parametrize("native", RUNNERS)
def test_a_failure_names_its_file_and_stops_the_run(tmp_path: Path, native: bool) -> None:
    run = _runner(native)
    (tmp_path / "there").write_bytes(b"x")
    missing = tmp_path / "missing" / "a"
    with pytest.raises(FileNotFoundError) as caught:
        run(
            [
                fileops.write_file(str(tmp_path / "first"), b"1", 0o644),
                fileops.rename(str(tmp_path / "nope"), str(missing)),
                fileops.write_file(str(tmp_path / "never"), b"2", 0o644),
            ]
        )
    assert caught.value.filename == str(missing)
    assert (tmp_path / "first").exists() and not (tmp_path / "never").exists()
    with pytest.raises(FileExistsError) as exists:
        run([fileops.write_file(str(tmp_path / "there"), b"new", 0o644)])
    assert exists.value.errno == errno.EEXIST
    assert (tmp_path / "there").read_bytes() == b"x"  # an existing file is never written
    with pytest.raises(OSError, match="Bad file descriptor"):
        run([fileops.fsync(987_654, "gone")])
    with pytest.raises(NotADirectoryError):
        run([fileops.fsync_dir(str(tmp_path / "there"))])


@pytest.mark.parametrize("native", RUNNERS)
def test_a_file_that_cannot_be_written_is_removed(tmp_path: Path, native: bool) -> None:
    """A write that fails part way (past the file size limit) leaves no file behind."""
    run = _runner(native)
    target = tmp_path / "f"
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100, limits[1]))
    try:
        with pytest.raises(OSError) as caught:
            run([fileops.write_file(str(target), b"x" * 1000, 0o644)])
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, handler)
    assert caught.value.errno == errno.EFBIG and caught.value.filename == str(target)
    assert not target.exists()


def test_bad_ops_are_refused_before_any_call(tmp_path: Path) -> None:
    if fileops.NATIVE is None:
        pytest.skip("claimready._fileops is not built here (no C compiler)")
    first = tmp_path / "first"
    bad = [
        fileops.write_file(str(first), b"1", 0o644).args,
        (99, 1),
    ]
    with pytest.raises(ValueError, match="wrong code or arity"):
        fileops.NATIVE.run(bad)
    assert not first.exists()
    with pytest.raises(ValueError, match="null byte"):
        fileops.NATIVE.run([(fileops.fsync_dir("x").args[0], b"a\0b")])
    with pytest.raises(TypeError):
        fileops.NATIVE.run([(fileops.fsync_dir("x").args[0], "text, not bytes")])


@pytest.mark.parametrize("native", RUNNERS)
def test_groups_run_at_once_and_fail_on_their_own(tmp_path: Path, native: bool) -> None:
    _runner(native)
    groups = [
        [fileops.write_file(str(tmp_path / f"f{i}"), bytes([i]) * 100, 0o600)] for i in range(20)
    ]
    groups.insert(3, [fileops.fsync_dir(str(tmp_path / "missing"))])
    groups.insert(7, [fileops.write_file(str(tmp_path / "no" / "f"), b"x", 0o600)])
    results = fileops.attempt_parallel(groups, threads=4, native=native)
    failed = {position for position, (_done, error) in enumerate(results) if error is not None}
    assert failed == {3, 7}
    assert [
        (done, type(error), error and error.filename) for done, error in (results[3], results[7])
    ] == [
        (0, FileNotFoundError, str(tmp_path / "missing")),
        (0, FileNotFoundError, str(tmp_path / "no" / "f")),
    ]
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(f"f{i}" for i in range(20))
    assert all((tmp_path / f"f{i}").read_bytes() == bytes([i]) * 100 for i in range(20))


@pytest.mark.parametrize("native", RUNNERS)
def test_callers_on_several_threads_each_get_their_own_results(
    tmp_path: Path, native: bool
) -> None:
    """The workers are shared: calls made at once from many threads never mix up groups."""
    _runner(native)

    def call(caller: int) -> list[tuple[int, OSError | None]]:
        folder = tmp_path / f"caller{caller}"
        folder.mkdir()
        groups = [
            [fileops.write_file(str(folder / f"f{i}"), bytes([caller, i]), 0o600)]
            for i in range(12)
        ]
        groups.insert(caller % 12, [fileops.fsync_dir(str(folder / "missing"))])
        return fileops.attempt_parallel(groups, threads=3, native=native)

    with ThreadPoolExecutor(8) as executor:
        outcomes = list(executor.map(call, range(40)))
    for caller, results in enumerate(outcomes):
        assert [error is None for _done, error in results].count(False) == 1
        assert results[caller % 12][1] is not None
        folder = tmp_path / f"caller{caller}"
        assert sorted((folder / f"f{i}").read_bytes() for i in range(12)) == sorted(
            bytes([caller, i]) for i in range(12)
        )


def test_a_forked_child_runs_groups_without_the_parents_workers(tmp_path: Path) -> None:
    """Workers started before a fork do not exist in the child; its calls still complete."""
    _runner(True)
    fileops.attempt_parallel([[fileops.fsync_dir(str(tmp_path))]] * 4, threads=4)
    pid = os.fork()
    if pid == 0:  # the child: any failure shows as its exit status
        status = 1
        try:
            groups = [[fileops.write_file(str(tmp_path / f"c{i}"), b"x", 0o600)] for i in range(8)]
            results = fileops.attempt_parallel(groups, threads=4)
            status = 0 if all(error is None for _done, error in results) else 2
        finally:
            os._exit(status)
    _pid, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert sorted(path.name for path in tmp_path.iterdir()) == [f"c{i}" for i in range(8)]
