"""RFC 3161 timestamps over checkpoints, from a configured timestamp authority (TSA).

Each published checkpoint note is sent, as the SHA-256 of its bytes, to the
TSA in a TimeStampReq (with a nonce, asking for the TSA's certificate). The
reply is verified before it is kept:

1. status granted, and a SignedData whose signature checks against the TSA
   certificate it carries;
2. that certificate chains to one of the configured trust anchors (through
   the configured intermediates), valid at the token's genTime, with the
   critical extended key usage id-kp-timeStamping;
3. the nonce is the one sent, and the message imprint is SHA-256 over the
   note bytes;
4. genTime is not later than the verifier's clock allows.

The DER TimeStampResp is stored beside the checkpoint as
``checkpoints/<size>.tsr``. :func:`verify_timestamp` repeats steps 1 to 4
(without the nonce) for a stored reply.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
from cryptography import x509
from rfc3161_client import (
    HashAlgorithm,
    PKIStatus,
    TimestampRequestBuilder,
    TimeStampResponse,
    VerifierBuilder,
    decode_timestamp_response,
)
from rfc3161_client import VerificationError as TimestampVerificationError

from claimready.errors import ConfigError, StorageError, VerificationError
from claimready.timeutil import ensure_utc, utcnow

__all__ = [
    "TIMESTAMP_SUFFIX",
    "TimestampAuthority",
    "Timestamper",
    "load_certificates",
    "timestamp_path",
    "verify_timestamp",
]

TIMESTAMP_SUFFIX = ".tsr"
_SHA256_OID = x509.ObjectIdentifier("2.16.840.1.101.3.4.2.1")
_QUERY_TYPE = "application/timestamp-query"
_REPLY_TYPE = "application/timestamp-reply"
#: How far a genTime may lie ahead of the verifier's clock.
CLOCK_SKEW = datetime.timedelta(minutes=5)


def timestamp_path(size: int) -> str:
    """Where the timestamp of the checkpoint of ``size`` is kept."""
    return f"checkpoints/{size}{TIMESTAMP_SUFFIX}"


def load_certificates(pem: bytes) -> tuple[x509.Certificate, ...]:
    """Every certificate in a PEM bundle; an empty or malformed bundle is a config error."""
    try:
        certificates = tuple(x509.load_pem_x509_certificates(pem))
    except ValueError as exc:
        raise ConfigError(f"timestamp authority certificates are not PEM: {exc}") from exc
    return certificates


@dataclass(frozen=True)
class TimestampAuthority:
    """A TSA: where to send requests, and what its certificate must chain to."""

    url: str
    roots: tuple[x509.Certificate, ...]
    intermediates: tuple[x509.Certificate, ...] = ()

    def __post_init__(self) -> None:
        if not self.url.startswith(("https://", "http://")):
            raise ConfigError(f"timestamp authority URL {self.url!r} is not an http(s) URL")
        if not self.roots:
            raise ConfigError(f"timestamp authority {self.url}: no trust anchor configured")


def _decode(data: bytes, *, subject: str) -> TimeStampResponse:
    try:
        response = decode_timestamp_response(data)
        status = response.status
    except ValueError as exc:
        raise VerificationError(
            f"is not an RFC 3161 TimeStampResp: {exc}", subject=subject
        ) from exc
    if status != PKIStatus.GRANTED:
        detail = "; ".join(response.status_string) or "no reason given"
        raise VerificationError(
            f"timestamp was not granted (status {status}: {detail})", subject=subject
        )
    return response


def verify_timestamp(
    data: bytes,
    note: bytes,
    *,
    roots: Sequence[x509.Certificate],
    intermediates: Sequence[x509.Certificate] = (),
    nonce: int | None = None,
    now: datetime.datetime | None = None,
    subject: str = "timestamp",
) -> datetime.datetime:
    """Verify a DER TimeStampResp over ``note``; return its genTime (UTC).

    Raises :class:`~claimready.errors.VerificationError` naming ``subject``.
    """
    if not roots:
        raise ConfigError("no timestamp trust anchor configured")
    response = _decode(data, subject=subject)
    try:
        info = response.tst_info
        imprint = info.message_imprint
        gen_time = ensure_utc(info.gen_time)
    except ValueError as exc:
        raise VerificationError(f"has no readable TSTInfo: {exc}", subject=subject) from exc
    if imprint.hash_algorithm != _SHA256_OID:
        raise VerificationError(
            f"message imprint uses {imprint.hash_algorithm.dotted_string}, not SHA-256",
            subject=subject,
        )
    builder = VerifierBuilder(roots=list(roots), intermediates=list(intermediates))
    if nonce is not None:
        builder = builder.nonce(nonce)
    try:
        builder.build().verify(response, hashlib.sha256(note).digest())
    except (TimestampVerificationError, ValueError) as exc:
        raise VerificationError(str(exc), subject=subject) from exc
    limit = (now or utcnow()) + CLOCK_SKEW
    if gen_time > limit:
        raise VerificationError(f"genTime {gen_time.isoformat()} is in the future", subject=subject)
    return gen_time


class Timestamper:
    """Fetches verified timestamps from one TSA through the HTTP client given."""

    def __init__(self, *, authority: TimestampAuthority, client: httpx.Client) -> None:
        self.authority = authority
        self.client = client

    def timestamp(self, note: bytes) -> bytes:
        """The TSA's verified DER TimeStampResp over ``note``.

        Raises :class:`~claimready.errors.StorageError` when the TSA cannot be
        reached or answers with an HTTP error, and
        :class:`~claimready.errors.VerificationError` when its reply does not
        verify.
        """
        request = (
            TimestampRequestBuilder()
            .data(note)
            .hash_algorithm(HashAlgorithm.SHA256)
            .nonce(nonce=True)
            .cert_request(cert_request=True)
            .build()
        )
        url = self.authority.url
        try:
            reply = self.client.post(
                url,
                content=request.as_bytes(),
                headers={"Content-Type": _QUERY_TYPE, "Accept": _REPLY_TYPE},
            )
            reply.raise_for_status()
        except httpx.HTTPError as exc:
            raise StorageError(f"timestamp authority {url}: {exc}") from exc
        verify_timestamp(
            reply.content,
            note,
            roots=self.authority.roots,
            intermediates=self.authority.intermediates,
            nonce=request.nonce,
            subject=f"reply of timestamp authority {url}",
        )
        return reply.content
