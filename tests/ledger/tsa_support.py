"""A timestamp authority of the tests' own, answering RFC 3161 requests in process.

It builds a self-signed root CA and a TSA certificate (critical EKU
id-kp-timeStamping) with ``cryptography``, and answers each request with a
TimeStampResp whose CMS SignedData is encoded here by a small DER encoder:
the TSTInfo, signed attributes (content type, message digest, ESS
signing-certificate-v2) and an ECDSA P-256 signature over them. Served through
an ``httpx.MockTransport``, so nothing leaves the process.
"""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass, field

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from rfc3161_client._rust import parse_timestamp_request

SHA256 = "2.16.840.1.101.3.4.2.1"
ECDSA_SHA256 = "1.2.840.10045.4.3.2"
SIGNED_DATA = "1.2.840.113549.1.7.2"
TST_INFO = "1.2.840.113549.1.9.16.1.4"
CONTENT_TYPE = "1.2.840.113549.1.9.3"
MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
SIGNING_CERTIFICATE_V2 = "1.2.840.113549.1.9.16.2.47"
POLICY = "1.3.6.1.4.1.99999.1"


# -- a tiny DER encoder ------------------------------------------------------------


def tlv(tag: int, content: bytes) -> bytes:
    """One DER element: tag, definite length, content."""
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    raw = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(raw)]) + raw + content


def integer(value: int) -> bytes:
    """A DER INTEGER (two's complement, minimal)."""
    return tlv(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def oid(dotted: str) -> bytes:
    """A DER OBJECT IDENTIFIER."""
    arcs = [int(arc) for arc in dotted.split(".")]
    out = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(chunk))
    return tlv(0x06, bytes(out))


def sequence(*items: bytes) -> bytes:
    return tlv(0x30, b"".join(items))


def set_of(*items: bytes) -> bytes:
    """A DER SET OF: elements sorted by their encodings."""
    return tlv(0x31, b"".join(sorted(items)))


def octets(data: bytes) -> bytes:
    return tlv(0x04, data)


def explicit(number: int, inner: bytes) -> bytes:
    return tlv(0xA0 + number, inner)


def generalized_time(moment: datetime.datetime) -> bytes:
    return tlv(0x18, moment.strftime("%Y%m%d%H%M%SZ").encode("ascii"))


def algorithm(dotted: str, *, null: bool = True) -> bytes:
    return sequence(oid(dotted), b"\x05\x00") if null else sequence(oid(dotted))


# -- the authority -------------------------------------------------------------------


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "claimready tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def make_ca(now: datetime.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed root CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name("Test Timestamping Root")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return cert, key


def make_tsa_certificate(
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    now: datetime.datetime,
    *,
    eku: bool = True,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A TSA certificate issued by ``ca``, with the critical timeStamping EKU unless told."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name("Test TSA"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    if eku:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True
        )
    return builder.sign(ca_key, hashes.SHA256()), key


@dataclass
class LocalTSA:
    """An RFC 3161 authority answering over ``httpx.MockTransport``."""

    root: x509.Certificate
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    clock: datetime.datetime
    serial: int = 0
    requests: list[bytes] = field(default_factory=list)
    answer: bytes | None = None  # a canned reply instead of a real one

    @classmethod
    def create(cls, *, eku: bool = True) -> LocalTSA:
        now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
        root, root_key = make_ca(now)
        cert, key = make_tsa_certificate(root, root_key, now, eku=eku)
        return cls(root=root, certificate=cert, key=key, clock=now)

    def client(self) -> httpx.Client:
        """An HTTP client whose every request this authority answers."""
        return httpx.Client(transport=httpx.MockTransport(self.handle))

    def handle(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        self.requests.append(body)
        if request.headers.get("content-type") != "application/timestamp-query":
            return httpx.Response(415)
        reply = self.answer if self.answer is not None else self.respond(body)
        return httpx.Response(
            200, content=reply, headers={"content-type": "application/timestamp-reply"}
        )

    def respond(self, query: bytes) -> bytes:
        """A granted TimeStampResp for a DER TimeStampReq."""
        request = parse_timestamp_request(query)
        imprint = request.message_imprint
        self.serial += 1
        nonce = request.nonce
        tst_info = sequence(
            integer(1),
            oid(POLICY),
            sequence(algorithm(imprint.hash_algorithm.dotted_string), octets(imprint.message)),
            integer(self.serial),
            generalized_time(self.clock),
            *([] if nonce is None else [integer(nonce)]),
        )
        return sequence(sequence(integer(0)), self.token(tst_info))

    def token(self, tst_info: bytes) -> bytes:
        """A ContentInfo holding the SignedData over ``tst_info``."""
        cert_der = self.certificate.public_bytes(Encoding.DER)
        attributes = [
            sequence(oid(CONTENT_TYPE), set_of(oid(TST_INFO))),
            sequence(oid(MESSAGE_DIGEST), set_of(octets(hashlib.sha256(tst_info).digest()))),
            sequence(
                oid(SIGNING_CERTIFICATE_V2),
                set_of(sequence(sequence(sequence(octets(hashlib.sha256(cert_der).digest()))))),
            ),
        ]
        signed = set_of(*attributes)
        signature = self.key.sign(signed, ec.ECDSA(hashes.SHA256()))
        signer_info = sequence(
            integer(1),
            sequence(
                self.certificate.issuer.public_bytes(), integer(self.certificate.serial_number)
            ),
            algorithm(SHA256),
            tlv(0xA0, signed[2 if signed[1] < 0x80 else 2 + (signed[1] & 0x7F) :]),
            algorithm(ECDSA_SHA256, null=False),
            octets(signature),
        )
        signed_data = sequence(
            integer(3),
            set_of(algorithm(SHA256)),
            sequence(oid(TST_INFO), explicit(0, octets(tst_info))),
            tlv(0xA0, cert_der),
            set_of(signer_info),
        )
        return sequence(oid(SIGNED_DATA), explicit(0, signed_data))
