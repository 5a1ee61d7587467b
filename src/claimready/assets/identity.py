"""Asset identifiers and how they are normalized (pure functions).

The reconciliation rule (see docs/assets.md):

1. Identifiers are normalized first: host names and FQDNs are lower-cased and
   lose a trailing dot; an FQDN also yields its short host name (its first
   label); serials are upper-cased; MACs become ``aa:bb:cc:dd:ee:ff``; UPNs
   and cloud ids are lower-cased. Placeholder serials and null MACs are dropped.
2. An observation is matched to an existing asset by the strongest identifier
   that resolves to exactly one asset, in this order: the source's own id,
   cloud id, serial, FQDN, UPN, short host name.
3. A match is refused when the two disagree on an identifier of which an asset
   has only one (serial, FQDN, cloud id, UPN, or the same source's own id):
   ``ws-12.corp.example.com`` and ``ws-12.lab.example.com`` stay two assets.
4. MAC addresses never merge assets on their own (docking stations, virtual
   adapters and cloned VMs share them); they are kept as supporting identifiers.

So ``WS-12`` seen by one tool and ``ws-12.corp.example.com`` seen by another
become one asset, whose identifiers are then the union of both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import NamedTuple

SOURCE_ID = "source_id"
CLOUD_ID = "cloud_id"
SERIAL = "serial"
FQDN = "fqdn"
UPN = "upn"
HOSTNAME = "hostname"
MAC = "mac"

# Strongest first. MAC is deliberately absent: it never merges on its own.
MATCH_ORDER: tuple[str, ...] = (SOURCE_ID, CLOUD_ID, SERIAL, FQDN, UPN, HOSTNAME)
# An asset has at most one of these; disagreement means two different assets.
SINGLE_VALUED: frozenset[str] = frozenset({CLOUD_ID, SERIAL, FQDN, UPN})
ALL_KINDS: frozenset[str] = frozenset({*MATCH_ORDER, MAC})

_PLACEHOLDER_SERIALS = frozenset(
    {
        "",
        "0",
        "DEFAULT STRING",
        "NONE",
        "NOT SPECIFIED",
        "SYSTEM SERIAL NUMBER",
        "TO BE FILLED BY O.E.M.",
        "UNKNOWN",
    }
)
NULL_GUID = "00000000-0000-0000-0000-000000000000"
_HEX = re.compile(r"[0-9a-f]{12}")


class Identifier(NamedTuple):
    """A normalized identifier: its kind and value (a tuple: cheap to build, hash and sort)."""

    kind: str
    value: str


@dataclass(frozen=True, slots=True)
class AssetObservation:
    """One source's view of one asset, as a connector reports it."""

    key: str
    kind: str
    display_name: str
    identifiers: tuple[Identifier, ...] = field(default_factory=tuple)


def normalize_hostname(name: str) -> str | None:
    """Lower-case short host name (the first label), or None for an empty name."""
    short = name.strip().rstrip(".").split(".", 1)[0].lower()
    return short or None


def normalize_fqdn(name: str) -> str | None:
    """Lower-case FQDN without a trailing dot; None unless it has a domain part."""
    fqdn = name.strip().rstrip(".").lower()
    return fqdn if "." in fqdn and not fqdn.startswith(".") else None


_MAC_SEPARATORS = str.maketrans("", "", ":-. ")


def normalize_mac(mac: str) -> str | None:
    """``aa:bb:cc:dd:ee:ff`` from any common spelling; None for null or broadcast MACs."""
    digits = mac.translate(_MAC_SEPARATORS).lower()
    if not _HEX.fullmatch(digits) or digits in ("000000000000", "ffffffffffff"):
        return None
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def normalize_serial(serial: str) -> str | None:
    """Upper-cased serial, or None for BIOS placeholders."""
    value = serial.strip().upper()
    return None if value in _PLACEHOLDER_SERIALS else value


def host_identifiers(name: str | None) -> list[Identifier]:
    """Identifiers from a host name that may or may not be fully qualified."""
    if not name:
        return []
    found: list[Identifier] = []
    fqdn = normalize_fqdn(name)
    if fqdn is not None:
        found.append(Identifier(FQDN, fqdn))
    short = normalize_hostname(name)
    if short is not None:
        found.append(Identifier(HOSTNAME, short))
    return found


def identifier(kind: str, raw: str | None) -> Identifier | None:
    """One normalized identifier of ``kind`` from ``raw``; None when nothing usable is left."""
    if raw is None:
        return None
    if kind == MAC:
        value = normalize_mac(raw)
    elif kind == SERIAL:
        value = normalize_serial(raw)
    elif kind == HOSTNAME:
        value = normalize_hostname(raw)
    elif kind == FQDN:
        value = normalize_fqdn(raw)
    elif kind == SOURCE_ID:
        value = raw.strip() or None
    elif kind in (CLOUD_ID, UPN):
        value = raw.strip().lower() or None
        if value == NULL_GUID:  # what Intune and Entra report for "not registered"
            value = None
    else:
        raise ValueError(f"unknown identifier kind {kind!r}")
    return Identifier(kind, value) if value else None


def source_identifier(source_kind: str, native_id: str) -> Identifier:
    """The identifier a source gives an asset, qualified by the source kind."""
    return Identifier(SOURCE_ID, f"{source_kind}:{native_id.strip()}")


def conflicts(existing: set[Identifier], incoming: tuple[Identifier, ...]) -> bool:
    """True when the two sets disagree on a single-valued identifier (rule 3)."""
    for ident in incoming:
        if ident.kind in SINGLE_VALUED:
            same_kind = {e.value for e in existing if e.kind == ident.kind}
            if same_kind and ident.value not in same_kind:
                return True
        elif ident.kind == SOURCE_ID:
            prefix = ident.value.split(":", 1)[0] + ":"
            same_source = {
                e.value for e in existing if e.kind == SOURCE_ID and e.value.startswith(prefix)
            }
            if same_source and ident.value not in same_source:
                return True
    return False
