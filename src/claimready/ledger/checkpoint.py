"""C2SP tlog-checkpoint: the signed tree head of a log.

The note text is the origin line, the tree size in decimal, the base64 root
hash, then optional extension lines.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass, field

from claimready.errors import InputError, VerificationError
from claimready.ledger.merkle import HASH_SIZE
from claimready.ledger.note import Signer, Verifier, b64decode_strict, open_note, sign_note

__all__ = ["Checkpoint", "make_origin", "open_checkpoint", "sign_checkpoint"]


def make_origin(*, deployment: str, tenant: str) -> str:
    """The log origin of a tenant: ``<deployment>/claimready/<tenant>``."""
    for label, value in (("deployment", deployment), ("tenant", tenant)):
        if not value or any(ch.isspace() or ch == "+" for ch in value):
            raise InputError(f"{label} {value!r} is empty or contains a space or '+'")
    return f"{deployment.rstrip('/')}/claimready/{tenant}"


@dataclass(frozen=True)
class Checkpoint:
    """A tree head: origin, size, root hash and optional extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = field(default=())

    def text(self) -> str:
        """The checkpoint note text."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode()]
        lines.extend(self.extensions)
        return "\n".join(lines) + "\n"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Parse checkpoint note text (signatures already stripped)."""
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "":
            raise VerificationError("checkpoint has fewer than three lines")
        origin, size_text, root_text, *extensions = lines[:-1]
        if not origin:
            raise VerificationError("checkpoint origin is empty")
        # 2. ASCII decimal, no leading zeroes.
        if (
            not size_text.isascii()
            or not size_text.isdigit()
            or (size_text != "0" and size_text.startswith("0"))
        ):
            raise VerificationError(f"checkpoint size {size_text!r} is not a decimal number")
        try:
            root = b64decode_strict(root_text)
        except binascii.Error as exc:
            raise VerificationError(f"checkpoint root {root_text!r} is not base64") from exc
        if len(root) != HASH_SIZE:
            raise VerificationError(f"checkpoint root is {len(root)} bytes")
        if any(not line for line in extensions):
            raise VerificationError("checkpoint has an empty extension line")
        return cls(origin, int(size_text), root, tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, signers: Iterable[Signer]) -> bytes:
    """The signed checkpoint note."""
    return sign_note(checkpoint.text(), signers)


def open_checkpoint(
    data: bytes, *, verifiers: Iterable[Verifier], origin: str | None = None
) -> Checkpoint:
    """Verify a signed checkpoint and parse it; ``origin``, if given, must match."""
    text, _signed = open_note(data, verifiers)
    checkpoint = Checkpoint.parse(text)
    if origin is not None and checkpoint.origin != origin:
        raise VerificationError(f"checkpoint is for log {checkpoint.origin!r}, expected {origin!r}")
    return checkpoint
