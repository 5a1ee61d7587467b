"""Signed notes, checkpoints and the key ring."""

from __future__ import annotations

from pathlib import Path

import pytest

from claimready.errors import InputError, VerificationError
from claimready.ledger.checkpoint import Checkpoint, make_origin, open_checkpoint, sign_checkpoint
from claimready.ledger.keys import KeyRing
from claimready.ledger.merkle import EMPTY_ROOT
from claimready.ledger.note import Signer, Verifier, open_note, sign_note

# The reference vector of Go's golang.org/x/mod/sumdb/note.
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT + "\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2"
    "pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def test_go_reference_note_round_trip() -> None:
    signer = Signer.from_skey(GO_SKEY)
    assert signer.verifier.vkey == GO_VKEY
    assert signer.skey == GO_SKEY
    assert sign_note(GO_TEXT, [signer]).decode() == GO_NOTE
    text, signed = open_note(GO_NOTE.encode(), [Verifier.from_vkey(GO_VKEY)])
    assert text == GO_TEXT
    assert [v.vkey for v in signed] == [GO_VKEY]


def test_wrong_key_and_tampered_text_are_rejected() -> None:
    other = Signer.generate("PeterNeumann").verifier
    with pytest.raises(VerificationError, match="not signed by a trusted key"):
        open_note(GO_NOTE.encode(), [other])
    tampered = GO_NOTE.replace("cryptography", "cryptographY").encode()
    with pytest.raises(VerificationError, match="does not verify"):
        open_note(tampered, [Verifier.from_vkey(GO_VKEY)])


def test_malformed_keys_are_rejected() -> None:
    with pytest.raises(InputError):
        Verifier.from_vkey(GO_VKEY.replace("c74f20a3", "c74f20a4"))
    with pytest.raises(InputError):
        Signer.generate("has space")


def test_checkpoint_round_trip() -> None:
    signer = Signer.generate("example.com/claimready/acme")
    checkpoint = Checkpoint("example.com/claimready/acme", 0, EMPTY_ROOT, ("ext line",))
    note = sign_checkpoint(checkpoint, [signer])
    assert note.startswith(
        b"example.com/claimready/acme\n0\n"
        b"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\next line\n\n"
    )
    assert open_checkpoint(note, verifiers=[signer.verifier]) == checkpoint
    with pytest.raises(VerificationError, match="expected"):
        open_checkpoint(note, verifiers=[signer.verifier], origin="other/claimready/x")


@pytest.mark.parametrize("size_line", ["01", "-1", "1.0", ""])
def test_checkpoint_size_must_be_plain_decimal(size_line: str) -> None:
    text = f"o\n{size_line}\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"
    with pytest.raises(VerificationError):
        Checkpoint.parse(text)


def test_origin() -> None:
    assert make_origin(deployment="ins.example", tenant="acme") == "ins.example/claimready/acme"
    with pytest.raises(InputError):
        make_origin(deployment="ins.example", tenant="a b")


def test_key_ring_rotation_keeps_old_verifiers(tmp_path: Path) -> None:
    ring = KeyRing(tmp_path / "keys", name="ins.example/claimready/acme")
    first = ring.signer()
    assert ring.signing_key_mode() == 0o600
    assert ring.signer().skey == first.skey
    old_note = sign_checkpoint(Checkpoint("o", 0, EMPTY_ROOT), [first])
    second = ring.rotate()
    assert second.key_id != first.key_id
    assert ring.signer().key_id == second.key_id
    assert sorted(ring.vkeys()) == sorted([first.verifier.vkey, second.verifier.vkey])
    assert ring.current_vkey() == second.verifier.vkey
    open_checkpoint(old_note, verifiers=ring.verifiers())


def test_a_key_ring_signs_with_a_key_another_process_rotated_in(tmp_path: Path) -> None:
    """The signing key is kept between checkpoints but read again once its file is replaced."""
    service = KeyRing(tmp_path / "keys", name="ins.example/claimready/acme")
    first = service.signer()
    assert service.signer() is first  # not read again while the file is unchanged
    second = KeyRing(tmp_path / "keys", name="ins.example/claimready/acme").rotate()
    assert service.signer().key_id == second.key_id != first.key_id
