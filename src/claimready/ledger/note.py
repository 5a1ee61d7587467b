"""C2SP signed notes with Ed25519 signatures.

A note is UTF-8 text ending in a newline, a blank line, then signature lines
``— <key name> <base64(key ID || signature)>``. The key ID is
``SHA-256(name || 0x0A || 0x01 || public key)[:4]``; a verifier key is written
``<name>+<hex key ID>+<base64(0x01 || public key)>``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from claimready.errors import InputError, VerificationError

__all__ = [
    "ED25519_TYPE",
    "MAX_SIGNATURES",
    "NoteSignature",
    "Signer",
    "Verifier",
    "key_id",
    "open_note",
    "parse_note",
    "sign_note",
]

ED25519_TYPE = 0x01
MAX_SIGNATURES = 100
_DASH = "\u2014 "
_PRIVATE_PREFIX = "PRIVATE+KEY+"
_CONTROL = re.compile("[\x00-\x09\x0b-\x1f]")


def key_id(name: str, public_key: bytes) -> bytes:
    """First four bytes of SHA-256(name || 0x0A || 0x01 || public key)."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([ED25519_TYPE]) + public_key).digest()[:4]


def b64decode_strict(text: str) -> bytes:
    """Decode standard base64, rejecting any non-canonical encoding of the bytes."""
    if not text.isascii():
        raise binascii.Error("base64 text is not ASCII")
    encoded = text.encode("ascii")
    raw = binascii.a2b_base64(encoded, strict_mode=True)
    if binascii.b2a_base64(raw, newline=False) != encoded:
        raise binascii.Error("non-canonical base64")
    return raw


def _check_name(name: str) -> None:
    if not name or any(ch.isspace() or ch == "+" for ch in name):
        raise InputError(f"key name {name!r} is empty or contains a space or '+'")


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True)
class Verifier:
    """A trusted Ed25519 note verifier key."""

    name: str
    key_id: bytes
    public_key: Ed25519PublicKey

    @classmethod
    def from_vkey(cls, vkey: str) -> Verifier:
        """Parse ``<name>+<hex key ID>+<base64(0x01 || public key)>``.

        Parsed keys are cached: a reviewer checking many receipts passes the
        same key text each time.
        """
        return _parse_vkey(vkey)

    @classmethod
    def _parse(cls, vkey: str) -> Verifier:
        parts = vkey.strip().split("+", 2)
        if len(parts) != 3:
            raise InputError(f"verifier key {vkey!r} is not name+keyid+key")
        name, hex_id, b64 = parts
        _check_name(name)
        try:
            raw = b64decode_strict(b64)
            wanted = bytes.fromhex(hex_id)
        except (binascii.Error, ValueError) as exc:
            raise InputError(f"verifier key {vkey!r}: {exc}") from exc
        if len(hex_id) != 8 or len(raw) != 33 or raw[0] != ED25519_TYPE:
            raise InputError(f"verifier key {vkey!r} is not an Ed25519 note key")
        if key_id(name, raw[1:]) != wanted:
            raise InputError(f"verifier key {vkey!r}: key ID does not match the key")
        return cls(name, wanted, Ed25519PublicKey.from_public_bytes(raw[1:]))

    @property
    def vkey(self) -> str:
        """The verifier key text."""
        raw = bytes([ED25519_TYPE]) + _raw_public(self.public_key)
        return f"{self.name}+{self.key_id.hex()}+{base64.b64encode(raw).decode()}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is this key's Ed25519 signature over ``message``."""
        try:
            self.public_key.verify(signature, message)
        except InvalidSignature:
            return False
        return True


@functools.lru_cache(maxsize=1024)
def _parse_vkey(vkey: str) -> Verifier:
    return Verifier._parse(vkey)


@dataclass(frozen=True)
class Signer:
    """An Ed25519 note signing key."""

    name: str
    private_key: Ed25519PrivateKey

    @classmethod
    def generate(cls, name: str) -> Signer:
        """A fresh random key named ``name``."""
        _check_name(name)
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def from_skey(cls, skey: str) -> Signer:
        """Parse ``PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 || seed)>``."""
        if not skey.startswith(_PRIVATE_PREFIX):
            raise InputError("signing key does not start with PRIVATE+KEY+")
        parts = skey.strip()[len(_PRIVATE_PREFIX) :].split("+", 2)
        if len(parts) != 3:
            raise InputError("signing key is not PRIVATE+KEY+name+keyid+key")
        name, hex_id, b64 = parts
        _check_name(name)
        try:
            raw = b64decode_strict(b64)
        except binascii.Error as exc:
            raise InputError(f"signing key: {exc}") from exc
        if len(raw) != 33 or raw[0] != ED25519_TYPE:
            raise InputError("signing key is not an Ed25519 note key")
        signer = cls(name, Ed25519PrivateKey.from_private_bytes(raw[1:]))
        if signer.key_id.hex() != hex_id:
            raise InputError("signing key: key ID does not match the key")
        return signer

    @property
    def public_bytes(self) -> bytes:
        """The raw 32-byte public key."""
        return _raw_public(self.private_key.public_key())

    @property
    def key_id(self) -> bytes:
        """The 4-byte key ID."""
        return key_id(self.name, self.public_bytes)

    @property
    def skey(self) -> str:
        """The signing key text (secret)."""
        seed = self.private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        b64 = base64.b64encode(bytes([ED25519_TYPE]) + seed).decode()
        return f"{_PRIVATE_PREFIX}{self.name}+{self.key_id.hex()}+{b64}"

    @property
    def verifier(self) -> Verifier:
        """The matching verifier."""
        return Verifier(self.name, self.key_id, self.private_key.public_key())

    def signature_line(self, text: bytes) -> str:
        """``— <name> <base64(key ID || signature)>`` over ``text``."""
        sig = self.private_key.sign(text)
        return f"{_DASH}{self.name} {base64.b64encode(self.key_id + sig).decode()}\n"


@dataclass(frozen=True)
class NoteSignature:
    """One signature line of a note."""

    name: str
    key_id: bytes
    signature: bytes


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise InputError("note text must end with a newline")
    if _CONTROL.search(text):
        raise InputError("note text contains a control character")


def sign_note(text: str, signers: Iterable[Signer]) -> bytes:
    """Sign ``text`` with every signer and return the note bytes."""
    _check_text(text)
    raw = text.encode()
    lines = [signer.signature_line(raw) for signer in signers]
    if not lines:
        raise InputError("a note needs at least one signer")
    return raw + b"\n" + "".join(lines).encode()


def _parse_signature(line: str) -> NoteSignature:
    if not line.startswith(_DASH):
        raise VerificationError(f"signature line {line!r} does not start with an em dash")
    name, sep, b64 = line[len(_DASH) :].partition(" ")
    try:
        _check_name(name)
        blob = b64decode_strict(b64)
    except (InputError, binascii.Error) as exc:
        raise VerificationError(f"malformed signature line {line!r}") from exc
    if not sep or len(blob) < 5:
        raise VerificationError(f"malformed signature line {line!r}")
    return NoteSignature(name, blob[:4], blob[4:])


def parse_note(data: bytes) -> tuple[str, list[NoteSignature]]:
    """Split a note into its text and signature lines (nothing is verified)."""
    try:
        whole = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise VerificationError("note is not valid UTF-8") from exc
    split = whole.rfind("\n\n")
    if split < 0 or not whole.endswith("\n"):
        raise VerificationError("note has no blank line before its signatures")
    text, block = whole[: split + 1], whole[split + 2 :]
    try:
        _check_text(text)
    except InputError as exc:
        raise VerificationError(exc.message) from exc
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise VerificationError(f"note has more than {MAX_SIGNATURES} signatures")
    return text, [_parse_signature(line) for line in lines]


def open_note(data: bytes, verifiers: Iterable[Verifier]) -> tuple[str, list[Verifier]]:
    """Verify a note and return its text and the known keys that signed it.

    Signatures from unknown keys are ignored; a known key whose signature does
    not verify rejects the note; at least one known key must have signed.
    """
    text, signatures = parse_note(data)
    known = {(v.name, v.key_id): v for v in verifiers}
    raw = text.encode()
    signed: list[Verifier] = []
    for sig in signatures:
        verifier = known.get((sig.name, sig.key_id))
        if verifier is None:
            continue
        if not verifier.verify(raw, sig.signature):
            raise VerificationError(f"signature by {sig.name}+{sig.key_id.hex()} does not verify")
        signed.append(verifier)
    if not signed:
        names = ", ".join(f"{s.name}+{s.key_id.hex()}" for s in signatures)
        raise VerificationError(f"note is not signed by a trusted key (signed by: {names})")
    return text, signed
