"""Per-entry receipts in the C2SP tlog-proof format (``c2sp.org/tlog-proof@v1``).

A receipt is the entry's index, its RFC 6962 inclusion proof and the signed
checkpoint, optionally with opaque extra data; claimready puts the entry
itself there, so a receipt checks offline on its own.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from claimready.errors import VerificationError
from claimready.ledger import merkle
from claimready.ledger.checkpoint import Checkpoint, open_checkpoint
from claimready.ledger.note import Verifier, b64decode_strict

__all__ = [
    "HEADER",
    "Receipt",
    "VerifiedReceipt",
    "format_receipt",
    "parse_receipt",
    "verify_receipt",
]

HEADER = "c2sp.org/tlog-proof@v1"


@dataclass(frozen=True)
class Receipt:
    """A parsed (not yet verified) tlog-proof."""

    index: int
    proof: tuple[bytes, ...]
    checkpoint: bytes
    extra: bytes | None


@dataclass(frozen=True)
class VerifiedReceipt:
    """What a verified receipt establishes: this entry is at this index under this checkpoint."""

    index: int
    entry: bytes
    checkpoint: Checkpoint


def format_receipt(
    *, index: int, proof: Sequence[bytes], checkpoint: bytes, extra: bytes | None = None
) -> bytes:
    """Serialise a tlog-proof."""
    lines = [HEADER]
    # 2. Optional extra data.
    if extra is not None:
        lines.append("extra " + base64.b64encode(extra).decode())
    # 3. The index, ASCII decimal.
    lines.append(f"index {index}")
    # 4. The inclusion proof, one base64 hash per line, leaf sibling first.
    lines.extend(base64.b64encode(h).decode() for h in proof)
    # 5. An empty line, then the checkpoint verbatim.
    return ("\n".join(lines) + "\n\n").encode() + checkpoint


def _decimal(text: str) -> int:
    if not text.isascii() or not text.isdigit() or (text != "0" and text.startswith("0")):
        raise VerificationError(f"receipt index {text!r} is not a decimal number")
    return int(text)


def _b64(text: str, what: str) -> bytes:
    try:
        return b64decode_strict(text)
    except binascii.Error as exc:
        raise VerificationError(f"receipt {what} is not base64") from exc


def parse_receipt(data: bytes) -> Receipt:
    """Parse a tlog-proof (nothing is verified)."""
    split = data.find(b"\n\n")
    if split < 0:
        raise VerificationError("receipt has no checkpoint")
    try:
        head = data[:split].decode("ascii").split("\n")
    except UnicodeDecodeError as exc:
        raise VerificationError("receipt header is not ASCII") from exc
    # 1. The first line.
    if head[0] != HEADER:
        raise VerificationError(f"receipt does not start with {HEADER}")
    position, extra = 1, None
    if position < len(head) and head[position].startswith("extra "):
        extra = _b64(head[position][len("extra ") :], "extra data")
        position += 1
    if position >= len(head) or not head[position].startswith("index "):
        raise VerificationError("receipt has no index line")
    index = _decimal(head[position][len("index ") :])
    proof = tuple(_b64(line, "proof hash") for line in head[position + 1 :])
    return Receipt(index, proof, data[split + 2 :], extra)


def verify_receipt(
    receipt: bytes,
    entry: bytes | None,
    vkeys: Iterable[str | Verifier],
    *,
    origin: str | None = None,
) -> VerifiedReceipt:
    """Verify a receipt offline against trusted verifier keys.

    ``entry`` is the entry the caller holds; if None, the entry carried in the
    receipt's extra data is checked instead (and returned). Raises
    VerificationError if the checkpoint signature, origin, or inclusion fails.
    """
    parsed = parse_receipt(receipt)
    verifiers = [v if isinstance(v, Verifier) else Verifier.from_vkey(v) for v in vkeys]
    checkpoint = open_checkpoint(parsed.checkpoint, verifiers=verifiers, origin=origin)
    if entry is None:
        if parsed.extra is None:
            raise VerificationError("receipt carries no entry and none was given")
        entry = parsed.extra
    elif parsed.extra is not None and parsed.extra != entry:
        raise VerificationError("receipt carries a different entry than the one given")
    try:
        merkle.verify_inclusion(
            index=parsed.index,
            size=checkpoint.size,
            leaf=merkle.leaf_hash(entry),
            proof=parsed.proof,
            root=checkpoint.root,
        )
    except VerificationError as exc:
        raise VerificationError(exc.problem, subject=f"entry {parsed.index}") from exc
    return VerifiedReceipt(parsed.index, entry, checkpoint)
