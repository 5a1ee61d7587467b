"""A log's key ring: the current signing key and every verifier key it ever had.

Layout of the key ring directory (mode 0700)::

    signing.key          current signing key, mode 0600
    vkeys/<keyid>.vkey   every verifier key, current and retired

Rotation writes the new verifier key first, then replaces the signing key,
so checkpoints signed by any earlier key keep verifying.
"""

from __future__ import annotations

from pathlib import Path

from claimready.errors import StorageError
from claimready.ledger.note import Signer, Verifier
from claimready.ledger.storage import atomic_write

__all__ = ["KeyRing"]

_SIGNING = "signing.key"
_VKEYS = "vkeys"


def _identity(path: Path) -> tuple[int, int, int]:
    """What tells one version of a file from the next: inode, modification time, size."""
    status = path.stat()
    return status.st_ino, status.st_mtime_ns, status.st_size


class KeyRing:
    """Signing and verifier keys of one log, kept in a directory."""

    def __init__(self, directory: Path, *, name: str) -> None:
        self.directory = Path(directory)
        self.name = name
        #: The signing key last read, and the identity of the file it came from.
        self._loaded: tuple[tuple[int, int, int], Signer] | None = None

    def _ensure_dir(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        (self.directory / _VKEYS).mkdir(exist_ok=True, mode=0o700)

    def signer(self) -> Signer:
        """The current signing key, generated and stored on first use."""
        path = self.directory / _SIGNING
        try:
            # Read again only when the file changed: every checkpoint is signed, and a
            # rotation (here or in another process) replaces the file with a new one.
            identity = _identity(path)
            if self._loaded is not None and self._loaded[0] == identity:
                return self._loaded[1]
            signer = Signer.from_skey(path.read_text(encoding="ascii"))
        except FileNotFoundError:
            return self._install(Signer.generate(self.name))
        except OSError as exc:
            raise StorageError(f"{path}: cannot read signing key: {exc}") from exc
        self._loaded = (identity, signer)
        return signer

    def _install(self, signer: Signer) -> Signer:
        self._ensure_dir()
        vkey = signer.verifier.vkey
        atomic_write(self.directory / _VKEYS / f"{signer.key_id.hex()}.vkey", vkey.encode() + b"\n")
        path = self.directory / _SIGNING
        atomic_write(path, signer.skey.encode() + b"\n", mode=0o600)
        self._loaded = (_identity(path), signer)
        return signer

    def rotate(self) -> Signer:
        """Replace the signing key with a new one; the old verifier key is kept."""
        self.signer()
        return self._install(Signer.generate(self.name))

    def verifiers(self) -> list[Verifier]:
        """Every verifier key in the ring, current and retired."""
        folder = self.directory / _VKEYS
        if not folder.is_dir():
            return []
        return [
            Verifier.from_vkey(path.read_text(encoding="utf-8"))
            for path in sorted(folder.glob("*.vkey"))
        ]

    def vkeys(self) -> list[str]:
        """Every verifier key as text (for export to reviewers)."""
        return [v.vkey for v in self.verifiers()]

    def current_vkey(self) -> str:
        """The current verifier key as text."""
        return self.signer().verifier.vkey

    def signing_key_mode(self) -> int:
        """Permission bits of the stored signing key file."""
        return (self.directory / _SIGNING).stat().st_mode & 0o777
