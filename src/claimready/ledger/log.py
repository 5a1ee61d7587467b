"""The write path of one tenant's ledger, and its read API.

Appends are sequenced durably first (:mod:`claimready.ledger.sequencer`),
then integrated in batches: entry bundles and hash tiles are written, then a
new signed checkpoint, kept both as ``checkpoints/<size>`` and as the latest
``checkpoint``. Every object is written atomically. On open, whatever was
sequenced but not integrated is integrated.

Local directory layout (the published objects may live on another
:class:`~claimready.ledger.storage.Storage`)::

    sequence            sequencing file (local, fsync'd)
    sequence.lock       serialises appends across processes
    integrate.lock      serialises integration across processes
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from claimready.errors import (
    ClaimreadyError,
    ConflictError,
    InputError,
    NotFoundError,
    StorageError,
    VerificationError,
)
from claimready.filelock import FileLock
from claimready.ledger import merkle
from claimready.ledger.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from claimready.ledger.keys import KeyRing
from claimready.ledger.merkle import HASH_SIZE
from claimready.ledger.proof import format_receipt
from claimready.ledger.sequencer import SequenceFile
from claimready.ledger.storage import FileStorage, Storage
from claimready.ledger.tiles import (
    MAX_ENTRY_SIZE,
    TILE_BYTES,
    TILE_HEIGHT,
    TILE_WIDTH,
    TileCache,
    TileHashReader,
    decode_bundle,
    encode_bundle,
    entries_path,
    tile_path,
)
from claimready.ledger.timestamp import TIMESTAMP_SUFFIX, Timestamper, timestamp_path

__all__ = ["CHECKPOINT_PATH", "Ledger", "checkpoint_path"]

CHECKPOINT_PATH = "checkpoint"
_ROTATE_BYTES = 64 << 20
_READ_LIMIT = 65536
#: Entries this process appended and has not integrated yet, kept to integrate
#: without reading them back; more are read back from the sequencing file.
_KEEP_LIMIT = 65536


def checkpoint_path(size: int) -> str:
    """Where the checkpoint of ``size`` is kept beside the latest one."""
    return f"checkpoints/{size}"


class _TreeState:
    """The right edge of the tree: the partial tile of every level and the partial bundle.

    ``tiles[L]`` holds the hashes of the level-``L`` tile still being filled;
    together they are the tree's compact range, from which :meth:`root` is
    computed (at most 255 hashes a level).
    """

    def __init__(self, cache: TileCache) -> None:
        self.size = 0
        self.tiles: list[bytearray] = [bytearray()]
        self.bundle: list[bytes] = []
        self._cache = cache

    @classmethod
    def load(cls, size: int, cache: TileCache) -> _TreeState:
        state = cls(cache)
        state.size = size
        level, count = 0, size
        while count:
            width = count % TILE_WIDTH
            hashes = cache.levels(level, count // TILE_WIDTH, width)[0] if width else b""
            if level == len(state.tiles):
                state.tiles.append(bytearray())
            state.tiles[level] = bytearray(hashes)
            level, count = level + 1, count >> TILE_HEIGHT
        width = size % TILE_WIDTH
        if width:
            path = entries_path(size // TILE_WIDTH, width)
            data = cache.store.read(path)
            if data is None:
                raise StorageError(f"{path}: entry bundle is missing")
            state.bundle = decode_bundle(data, path=path)
        return state

    def root(self) -> bytes:
        """RFC 9162 root: the compact range's subtrees, highest first, folded from the right."""
        parts: list[bytes] = []
        for level in reversed(range(len(self.tiles))):
            width = len(self.tiles[level]) // HASH_SIZE
            if not width:
                continue
            index = (self.size >> (TILE_HEIGHT * level)) // TILE_WIDTH
            levels = self._cache.levels(level, index, width)
            start = 0
            for height in reversed(range(width.bit_length())):
                if width >> height & 1:
                    offset = (start >> height) * HASH_SIZE
                    parts.append(levels[height][offset : offset + HASH_SIZE])
                    start += 1 << height
        if not parts:
            return merkle.EMPTY_ROOT
        acc = parts[-1]
        for node in reversed(parts[:-1]):
            acc = merkle.node_hash(node, acc)
        return acc


class _Batch:
    """Objects produced by one integration, written in order."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, bytes]] = []
        self.touched: set[int] = set()
        self.bundle_touched = False


class Ledger:
    """One tenant's append-only log."""

    def __init__(
        self,
        *,
        directory: Path,
        origin: str,
        keyring: KeyRing,
        storage: Storage,
        batch_size: int,
        batch_interval: float,
        timestamper: Timestamper | None = None,
    ) -> None:
        self.directory = directory
        self.origin = origin
        self.keyring = keyring
        self.storage = storage
        self.batch_size = batch_size
        self.batch_interval = batch_interval
        self._seq = SequenceFile(directory / "sequence")
        self._seq_lock = FileLock(directory / "sequence.lock")
        self._integrate_lock = FileLock(directory / "integrate.lock")
        self._cache = TileCache(storage)
        self._state = _TreeState(self._cache)
        #: This process's latest appends, not yet integrated: indexes
        #: ``[_kept_from, _kept_from + len(_kept))``. Guarded by ``_kept_lock``.
        self._kept: list[bytes] = []
        self._kept_from = 0
        self._kept_lock = threading.Lock()
        #: Set when an integration failed: the right edge is read back before the next.
        self._edge_stale = False
        self._checkpoint: Checkpoint | None = None
        self._checkpoint_note = b""
        self._published = threading.Condition()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: ClaimreadyError | None = None
        self.timestamper = timestamper
        self._unstamped: dict[int, bytes] = {}
        #: Why the last timestamp request failed (None once one succeeds again).
        self.timestamp_error: ClaimreadyError | None = None

    # -- opening and closing -------------------------------------------------

    @classmethod
    def open(
        cls,
        *,
        directory: Path,
        origin: str,
        keyring: KeyRing,
        storage: Storage | None = None,
        batch_size: int = 256,
        batch_interval: float = 0.25,
        timestamper: Timestamper | None = None,
    ) -> Ledger:
        """Open (creating if needed) the log in ``directory`` and recover it.

        ``storage`` holds the published objects (tiles, bundles, checkpoints);
        it defaults to the same directory. A torn tail of the sequencing file
        is cut off, and anything sequenced but not integrated is integrated.
        With a ``timestamper``, every checkpoint published from now on gets an
        RFC 3161 timestamp (see :meth:`timestamp_missing` for older ones).
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        ledger = cls(
            directory=directory,
            origin=origin,
            keyring=keyring,
            storage=storage if storage is not None else FileStorage(directory),
            batch_size=batch_size,
            batch_interval=batch_interval,
            timestamper=timestamper,
        )
        with ledger._integrate_lock:
            with ledger._seq_lock:
                ledger._seq.open()
            ledger._sync_published()
            if ledger._checkpoint is None:
                ledger._publish(_Batch())
        ledger.integrate()
        return ledger

    def close(self) -> None:
        """Stop the background integrator (integrating what is pending) and close files."""
        self.stop_integrator()
        self._seq.close()
        self._seq_lock.close()
        self._integrate_lock.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- sequencing ----------------------------------------------------------

    def append(self, entry: bytes) -> int:
        """Sequence one entry durably and return its index."""
        return self.append_many([entry])[0]

    def append_many(self, entries: Sequence[bytes]) -> list[int]:
        """Sequence entries durably (one fsync) and return their indexes."""
        if not entries:
            return []
        for position, entry in enumerate(entries):
            if len(entry) > MAX_ENTRY_SIZE:
                raise InputError(
                    f"entry is {len(entry)} bytes; at most {MAX_ENTRY_SIZE} fit the ledger",
                    record=position,
                )
        with self._seq_lock:
            first = self._seq.append(entries)
            pending = self._seq.base + self._seq.count - self._state.size
            with self._kept_lock:
                self._keep(first, entries)
        if pending >= self.batch_size:
            self._wake.set()
        return list(range(first, first + len(entries)))

    def _keep(self, first: int, entries: Sequence[bytes]) -> None:
        """Remember appended entries for integration; start afresh after a gap."""
        if first != self._kept_from + len(self._kept) or len(self._kept) >= _KEEP_LIMIT:
            self._kept, self._kept_from = [], first
        self._kept += entries

    def _take_kept(self, start: int) -> list[bytes]:
        """The kept entries from ``start`` on, if this process appended entry ``start``."""
        end = self._kept_from + len(self._kept)
        if not self._kept_from <= start < end:
            return []
        taken = self._kept[start - self._kept_from :]
        self._kept, self._kept_from = [], end
        return taken

    @property
    def sequenced(self) -> int:
        """How many entries this process knows to be durably sequenced."""
        return self._seq.base + self._seq.count

    # -- integration ---------------------------------------------------------

    def integrate(self) -> Checkpoint:
        """Integrate every sequenced entry and publish a checkpoint covering it."""
        with self._integrate_lock:
            self._sync_published()
            with self._seq_lock:
                self._seq.refresh(truncate=True)
            try:
                while self._state.size < self.sequenced:
                    # What this process appended comes from memory, the rest from the file;
                    # entries appended while a batch is integrated are taken on the next turn.
                    with self._kept_lock:
                        batch = self._take_kept(self._state.size)
                    if not batch:
                        batch = self._seq.read_from(self._state.size, limit=_READ_LIMIT)
                    self._integrate_batch(batch)
            except BaseException:
                # The right edge ran ahead of what was published: read it back
                # from the latest checkpoint before integrating again.
                self._state, self._edge_stale = _TreeState(self._cache), True
                raise
            self._maybe_restart_sequence()
            return self.latest()[0]

    def _integrate_batch(self, entries: list[bytes]) -> None:
        batch = _Batch()
        self._add_entries(entries, batch)
        self._publish(batch)

    def _sync_published(self) -> None:
        """Reload the right edge if another process published a newer checkpoint."""
        note = self.storage.read(CHECKPOINT_PATH)
        if note is None:
            return
        if note == self._checkpoint_note and not self._edge_stale:
            return
        checkpoint = open_checkpoint(note, verifiers=self.keyring.verifiers(), origin=self.origin)
        if checkpoint.size < self._state.size:
            raise ConflictError(
                f"published checkpoint size {checkpoint.size} is behind {self._state.size}"
            )
        if checkpoint.size != self._state.size:
            self._state = _TreeState.load(checkpoint.size, self._cache)
        self._edge_stale = False
        if self._state.root() != checkpoint.root:
            raise ConflictError(f"stored tiles do not match checkpoint {checkpoint.size}")
        self._set_checkpoint(checkpoint, note)

    def _set_checkpoint(self, checkpoint: Checkpoint, note: bytes) -> None:
        with self._published:
            self._checkpoint = checkpoint
            self._checkpoint_note = note
            self._published.notify_all()

    def _add_entries(self, entries: list[bytes], batch: _Batch) -> None:
        """Bundle ``entries`` and push their leaf hashes into the tiles."""
        state = self._state
        first = state.size
        position = 0
        while position < len(entries):
            room = TILE_WIDTH - len(state.bundle)
            state.bundle += entries[position : position + room]
            position += room
            if len(state.bundle) == TILE_WIDTH:
                index = (first + position) // TILE_WIDTH - 1
                batch.writes.append((entries_path(index), encode_bundle(state.bundle)))
                state.bundle = []
        batch.bundle_touched = True
        self._push_hashes(0, merkle.leaf_hashes(entries), batch)
        state.size += len(entries)

    def _push_hashes(self, tile_level: int, hashes: bytes, batch: _Batch) -> None:
        """Append hashes to the tile of ``tile_level``; a tile filled is written and its
        root pushed to the level above (every node at a multiple of the tile height)."""
        tiles = self._state.tiles
        if tile_level == len(tiles):
            tiles.append(bytearray())
        batch.touched.add(tile_level)
        index = (self._state.size >> (TILE_HEIGHT * tile_level)) // TILE_WIDTH
        tile, roots, position = tiles[tile_level], [], 0
        while position < len(hashes):
            room = TILE_BYTES - len(tile)
            tile += hashes[position : position + room]
            position += room
            if len(tile) == TILE_BYTES:
                data = bytes(tile)
                batch.writes.append((tile_path(tile_level, index), data))
                roots.append(self._cache.put(tile_level, index, data)[-1])
                tile = bytearray()
                index += 1
        tiles[tile_level] = tile
        if roots:
            self._push_hashes(tile_level + 1, b"".join(roots), batch)

    def _publish(self, batch: _Batch) -> None:
        state = self._state
        for level in sorted(batch.touched):
            hashes = bytes(state.tiles[level])
            if hashes:
                count = state.size >> (TILE_HEIGHT * level)
                index, width = divmod(count, TILE_WIDTH)
                batch.writes.append((tile_path(level, index, width), hashes))
                self._cache.put(level, index, hashes)
        if batch.bundle_touched and state.bundle:
            index, width = divmod(state.size, TILE_WIDTH)
            batch.writes.append((entries_path(index, width), encode_bundle(state.bundle)))
        checkpoint = Checkpoint(self.origin, state.size, state.root())
        note = sign_checkpoint(checkpoint, [self.keyring.signer()])
        # Tiles and bundles are durable before the checkpoint that names them is
        # kept, and the kept checkpoint before the latest pointer moves to it.
        self.storage.write_many(
            batch.writes, then=[(checkpoint_path(state.size), note), (CHECKPOINT_PATH, note)]
        )
        self._set_checkpoint(checkpoint, note)
        if self.timestamper is not None:
            self._unstamped[state.size] = note
            self._stamp_pending()

    def _stamp_pending(self) -> None:
        """Timestamp checkpoints still without one, oldest first; stop at the first failure.

        A checkpoint is published whether or not its timestamp can be had;
        one that fails is retried when the next checkpoint is published.
        """
        if self.timestamper is None:
            return
        for size in sorted(self._unstamped):
            try:
                reply = self.timestamper.timestamp(self._unstamped[size])
                self.storage.write(timestamp_path(size), reply)
            except (StorageError, VerificationError) as exc:
                self.timestamp_error = exc
                return
            del self._unstamped[size]
        self.timestamp_error = None

    def timestamp_missing(self) -> int:
        """Timestamp every published checkpoint that has none; return how many were added.

        Raises the first failure (the TSA unreachable, or a reply that does
        not verify). Needs a ``timestamper``.
        """
        if self.timestamper is None:
            raise StorageError("the ledger has no timestamp authority configured")
        with self._integrate_lock:
            names = {path.rsplit("/", 1)[1] for path in self.storage.list("checkpoints")}
            missing = sorted(
                int(name)
                for name in names
                if name.isdigit() and name + TIMESTAMP_SUFFIX not in names
            )
            for size in missing:
                self._unstamped[size] = self.checkpoint_note(size)
            self._stamp_pending()
            if self.timestamp_error is not None:
                raise self.timestamp_error
        return len(missing)

    def _maybe_restart_sequence(self) -> None:
        if self._seq.end < _ROTATE_BYTES:
            return  # not due, as far as this handle knows (the next integration looks again)
        with self._seq_lock:
            self._seq.refresh(truncate=True)
            if self._seq.end >= _ROTATE_BYTES and self.sequenced == self._state.size:
                self._seq.restart(self._state.size)

    # -- background integration ----------------------------------------------

    def start_integrator(self) -> None:
        """Integrate in a background thread: every ``batch_size`` entries or ``batch_interval``."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="ledger-integrator", daemon=True)
        self._thread.start()

    def stop_integrator(self) -> None:
        """Stop the background integrator after a final integration."""
        if self._thread is None:
            return
        self._stop.set()
        self._wake.set()
        self._thread.join()
        self._thread = None

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._wake.wait(self.batch_interval)
                self._wake.clear()
                self.integrate()
            self.integrate()
        except ClaimreadyError as exc:
            self._error = exc
            with self._published:
                self._published.notify_all()

    def wait_for(self, index: int, *, timeout: float | None = None) -> Checkpoint:
        """Block until a published checkpoint covers ``index``; return it.

        Without a background integrator, this integrates synchronously.
        """
        if self._thread is None:
            checkpoint = self.integrate()
            if index < checkpoint.size:
                return checkpoint
            raise NotFoundError(f"entry {index} has not been sequenced")
        deadline = None if timeout is None else time.monotonic() + timeout
        self._wake.set()
        with self._published:
            while self._checkpoint is None or self._checkpoint.size <= index:
                if self._error is not None:
                    raise self._error
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise StorageError(f"entry {index} was not integrated within {timeout} s")
                self._published.wait(remaining)
            return self._checkpoint

    # -- reading -------------------------------------------------------------

    @property
    def size(self) -> int:
        """Size of the latest checkpoint this process has seen."""
        return 0 if self._checkpoint is None else self._checkpoint.size

    def checkpoint(self) -> Checkpoint:
        """The latest published checkpoint (reloaded from storage)."""
        with self._integrate_lock:
            self._sync_published()
            return self.latest()[0]

    def latest(self) -> tuple[Checkpoint, bytes]:
        """The latest checkpoint this process has seen and its signed note, together."""
        with self._published:
            if self._checkpoint is None:
                raise NotFoundError("the log has no checkpoint yet")
            return self._checkpoint, self._checkpoint_note

    def checkpoint_note(self, size: int) -> bytes:
        """The signed checkpoint note of tree ``size``."""
        note = self.storage.read(checkpoint_path(size))
        if note is None:
            raise NotFoundError(f"no checkpoint of size {size}")
        return note

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= self.size:
            raise NotFoundError(f"tree size {size} is not published (latest is {self.size})")

    def entry(self, index: int) -> bytes:
        """The integrated entry at ``index``."""
        size = self.size
        if not 0 <= index < size:
            raise NotFoundError(f"entry {index} is not integrated (size {size})")
        bundle_index = index // TILE_WIDTH
        width = min(TILE_WIDTH, size - bundle_index * TILE_WIDTH)
        path = entries_path(bundle_index, width)
        data = self.storage.read(path)
        if data is None and width < TILE_WIDTH:
            path = entries_path(bundle_index)
            data = self.storage.read(path)
        if data is None:
            raise StorageError(f"{path}: entry bundle is missing")
        return decode_bundle(data, path=path)[index % TILE_WIDTH]

    def reader(self, size: int) -> TileHashReader:
        """A hash reader over the stored tiles at tree ``size``."""
        return TileHashReader(self._cache, size)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """RFC 9162 inclusion proof of entry ``index`` in the tree of ``size``."""
        self._check_size(size)
        return merkle.inclusion_proof(index, size, TileHashReader(self._cache, size))

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        """RFC 9162 consistency proof from tree ``old_size`` to ``new_size``."""
        self._check_size(new_size)
        return merkle.consistency_proof(old_size, new_size, TileHashReader(self._cache, new_size))

    def receipt(self, index: int, *, size: int | None = None, include_entry: bool = True) -> bytes:
        """A C2SP tlog-proof for entry ``index`` against the checkpoint of ``size``.

        The default is the latest checkpoint. With ``include_entry`` the entry
        travels in the proof's extra data, so the receipt checks on its own.
        """
        if size is None:
            checkpoint, note = self.latest()
            size = checkpoint.size
        else:
            note = self.checkpoint_note(size)
        proof = self.inclusion_proof(index, size)
        extra = self.entry(index) if include_entry else None
        return format_receipt(index=index, proof=proof, checkpoint=note, extra=extra)
