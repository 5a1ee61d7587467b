"""RFC 3161 timestamps over checkpoints, against a local timestamp authority."""

from __future__ import annotations

import datetime
import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from rfc3161_client._rust import parse_timestamp_request

from claimready.errors import ConfigError, StorageError, VerificationError
from claimready.ledger.keys import KeyRing
from claimready.ledger.log import Ledger, checkpoint_path
from claimready.ledger.storage import FileStorage
from claimready.ledger.timestamp import (
    TimestampAuthority,
    Timestamper,
    load_certificates,
    timestamp_path,
    verify_timestamp,
)
from claimready.ledger.verify import VerifyReport, verify_log
from tests.ledger.tsa_support import LocalTSA, integer, sequence

ORIGIN = "test.example/claimready/stamped"
TSA_URL = "https://tsa.test.invalid/rfc3161"


@pytest.fixture
def tsa() -> LocalTSA:
    """A fresh local timestamp authority with its own root CA."""
    return LocalTSA.create()


@pytest.fixture
def http(tsa: LocalTSA) -> Iterator[httpx.Client]:
    with tsa.client() as client:
        yield client


def authority(tsa: LocalTSA) -> TimestampAuthority:
    return TimestampAuthority(url=TSA_URL, roots=(tsa.root,))


def open_ledger(root: Path, timestamper: Timestamper | None) -> Ledger:
    return Ledger.open(
        directory=root / "log",
        origin=ORIGIN,
        keyring=KeyRing(root / "keys", name=ORIGIN),
        timestamper=timestamper,
    )


def verify(root: Path, tsa: LocalTSA | None, *, require_timestamps: bool = False) -> VerifyReport:
    return verify_log(
        storage=FileStorage(root / "log"),
        origin=ORIGIN,
        verifiers=KeyRing(root / "keys", name=ORIGIN).verifiers(),
        timestamp_roots=() if tsa is None else (tsa.root,),
        require_timestamps=require_timestamps,
    )


def build_stamped_log(root: Path, tsa: LocalTSA, http: httpx.Client) -> None:
    with open_ledger(root, Timestamper(authority=authority(tsa), client=http)) as ledger:
        for number in range(3):
            ledger.append_many([f"entry {number}-{k}".encode() for k in range(100)])
            ledger.integrate()
        assert ledger.timestamp_error is None


def test_every_checkpoint_is_timestamped_and_verifies(
    tmp_path: Path, tsa: LocalTSA, http: httpx.Client
) -> None:
    build_stamped_log(tmp_path, tsa, http)
    storage = FileStorage(tmp_path / "log")
    for size in (0, 100, 200, 300):
        assert storage.exists(timestamp_path(size))
    report = verify(tmp_path, tsa, require_timestamps=True)
    assert (report.size, report.checkpoints, report.timestamps) == (300, 4, 4)
    # What was sent: the SHA-256 of each checkpoint note, with a nonce.
    request = parse_timestamp_request(tsa.requests[-1])
    assert (
        request.message_imprint.message
        == hashlib.sha256(storage.read(checkpoint_path(300)) or b"").digest()
    )
    assert request.nonce is not None


def test_stored_timestamp_reports_its_gen_time(
    tmp_path: Path, tsa: LocalTSA, http: httpx.Client
) -> None:
    build_stamped_log(tmp_path, tsa, http)
    storage = FileStorage(tmp_path / "log")
    gen_time = verify_timestamp(
        storage.read(timestamp_path(100)) or b"",
        storage.read(checkpoint_path(100)) or b"",
        roots=[tsa.root],
    )
    assert gen_time == tsa.clock


def test_timestamp_of_another_checkpoint_is_refused(
    tmp_path: Path, tsa: LocalTSA, http: httpx.Client
) -> None:
    build_stamped_log(tmp_path, tsa, http)
    log = tmp_path / "log"
    shutil.copyfile(log / timestamp_path(100), log / timestamp_path(200))
    with pytest.raises(VerificationError, match="Mismatch between messages") as caught:
        verify(tmp_path, tsa)
    assert caught.value.subject == timestamp_path(200)


def test_timestamp_from_an_untrusted_authority_is_refused(
    tmp_path: Path, tsa: LocalTSA, http: httpx.Client
) -> None:
    build_stamped_log(tmp_path, tsa, http)
    with pytest.raises(VerificationError) as caught:
        verify(tmp_path, LocalTSA.create())
    assert caught.value.subject == timestamp_path(0)


def test_tampered_signature_is_refused(tmp_path: Path, tsa: LocalTSA, http: httpx.Client) -> None:
    build_stamped_log(tmp_path, tsa, http)
    path = tmp_path / "log" / timestamp_path(300)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01  # inside the ECDSA signature, the last field of the reply
    path.write_bytes(bytes(data))
    with pytest.raises(VerificationError) as caught:
        verify(tmp_path, tsa)
    assert caught.value.subject == timestamp_path(300)


def test_timestamps_without_a_trust_anchor_fail_verification(
    tmp_path: Path, tsa: LocalTSA, http: httpx.Client
) -> None:
    build_stamped_log(tmp_path, tsa, http)
    with pytest.raises(VerificationError, match="no timestamp trust anchor"):
        verify(tmp_path, None)


def test_missing_timestamps_fail_only_when_required(
    tmp_path: Path, tsa: LocalTSA, http: httpx.Client
) -> None:
    build_stamped_log(tmp_path, tsa, http)
    (tmp_path / "log" / timestamp_path(200)).unlink()
    assert verify(tmp_path, tsa).timestamps == 3
    with pytest.raises(VerificationError, match="has no timestamp") as caught:
        verify(tmp_path, tsa, require_timestamps=True)
    assert caught.value.subject == "checkpoint 200"


def test_timestamp_without_its_checkpoint_fails(
    tmp_path: Path, tsa: LocalTSA, http: httpx.Client
) -> None:
    build_stamped_log(tmp_path, tsa, http)
    (tmp_path / "log" / checkpoint_path(100)).unlink()
    with pytest.raises(VerificationError, match="no checkpoint beside it"):
        verify(tmp_path, tsa)


def test_log_without_timestamps_still_verifies_without_anchors(tmp_path: Path) -> None:
    with open_ledger(tmp_path, None) as ledger:
        ledger.append(b"plain")
        ledger.integrate()
    assert verify(tmp_path, None).timestamps == 0


def test_failed_timestamp_leaves_the_checkpoint_published_and_is_backfilled(
    tmp_path: Path, tsa: LocalTSA, http: httpx.Client
) -> None:
    untrusted = LocalTSA.create()
    wrong = TimestampAuthority(url=TSA_URL, roots=(untrusted.root,))
    with open_ledger(tmp_path, Timestamper(authority=wrong, client=http)) as ledger:
        ledger.append(b"evidence")
        assert ledger.integrate().size == 1
        assert isinstance(ledger.timestamp_error, VerificationError)
    assert not (tmp_path / "log" / timestamp_path(1)).exists()
    with open_ledger(tmp_path, Timestamper(authority=authority(tsa), client=http)) as ledger:
        assert ledger.timestamp_missing() == 2
        assert ledger.timestamp_missing() == 0
    assert verify(tmp_path, tsa, require_timestamps=True).timestamps == 2


def test_timestamp_missing_needs_an_authority(tmp_path: Path) -> None:
    with open_ledger(tmp_path, None) as ledger, pytest.raises(StorageError):
        ledger.timestamp_missing()


def test_authority_without_the_timestamping_eku_is_refused(http: httpx.Client) -> None:
    no_eku = LocalTSA.create(eku=False)
    with no_eku.client() as client:
        stamper = Timestamper(authority=authority(no_eku), client=client)
        with pytest.raises(VerificationError, match=r"purpose|EKU"):
            stamper.timestamp(b"note\n")


def test_replayed_reply_fails_the_nonce_check(tsa: LocalTSA, http: httpx.Client) -> None:
    stamper = Timestamper(authority=authority(tsa), client=http)
    first = stamper.timestamp(b"note\n")
    tsa.answer = first
    with pytest.raises(VerificationError, match="Nonce mismatch"):
        stamper.timestamp(b"note\n")


def test_gen_time_in_the_future_is_refused(tsa: LocalTSA, http: httpx.Client) -> None:
    tsa.clock += datetime.timedelta(days=2)
    stamper = Timestamper(authority=authority(tsa), client=http)
    with pytest.raises(VerificationError, match="in the future"):
        stamper.timestamp(b"note\n")


def test_rejection_and_garbage_replies_are_refused(tsa: LocalTSA, http: httpx.Client) -> None:
    stamper = Timestamper(authority=authority(tsa), client=http)
    tsa.answer = sequence(sequence(integer(2)))
    with pytest.raises(VerificationError, match="not granted"):
        stamper.timestamp(b"note\n")
    tsa.answer = b"\x30\x03garbage"
    with pytest.raises(VerificationError, match="not an RFC 3161"):
        stamper.timestamp(b"note\n")


def test_http_failure_is_a_storage_error(tsa: LocalTSA) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503)

    with httpx.Client(transport=httpx.MockTransport(refuse)) as client:
        stamper = Timestamper(authority=authority(tsa), client=client)
        with pytest.raises(StorageError, match="503"):
            stamper.timestamp(b"note\n")


def test_authority_settings_are_checked(tsa: LocalTSA) -> None:
    with pytest.raises(ConfigError, match="not an http"):
        TimestampAuthority(url="ftp://tsa.test.invalid", roots=(tsa.root,))
    with pytest.raises(ConfigError, match="no trust anchor"):
        TimestampAuthority(url=TSA_URL, roots=())
    pem = tsa.root.public_bytes(Encoding.PEM) + tsa.certificate.public_bytes(Encoding.PEM)
    assert load_certificates(pem) == (tsa.root, tsa.certificate)
    with pytest.raises(ConfigError):
        load_certificates(b"not a certificate")
