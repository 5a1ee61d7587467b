"""Safe XML reading for connectors: every XML byte goes through defusedxml's protections.

Two ways in, both streaming and both refusing entity declarations and external
references (the billion-laughs and XXE attacks) with an :class:`InputError`
that names the file:

- :func:`iter_elements` yields elements as they close (defusedxml's
  ``iterparse``); the caller clears what it has read, so memory stays bounded.
- :func:`stream_events` drives a fast event parser for very large files
  (Nessus reports of a gigabyte): the expat parser comes already configured by
  defusedxml's ``DefusedXMLParser``; only the content callbacks are replaced.

Malformed XML, forbidden constructs and undecodable bytes all become
``InputError(problem, file=...)`` with the line and column where expat stopped.
"""

from __future__ import annotations

import pyexpat
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as defused_etree
from defusedxml.common import (
    DefusedXmlException,
    EntitiesForbidden,
)

from claimready.errors import InputError

CHUNK_BYTES = 1 << 20
# Text of one element kept by an event handler; longer text is a malformed or hostile file.
MAX_TEXT_BYTES = 1 << 20

_PROTECTIONS = ("EntityDeclHandler", "UnparsedEntityDeclHandler", "ExternalEntityRefHandler")


class EventHandler(Protocol):
    """What :func:`stream_events` calls: element starts and ends, by plain tag name."""

    def start(self, name: str, attrs: dict[str, str]) -> None:
        """An element opened with its attributes."""

    def end(self, name: str) -> None:
        """An element closed."""


def _describe(exc: Exception) -> str:
    if isinstance(exc, DefusedXmlException):
        return (
            f"forbidden XML construct ({exc}); "
            "entity declarations and external references are refused"
        )
    if isinstance(exc, pyexpat.ExpatError):
        reason = pyexpat.ErrorString(exc.code)
        return f"not well-formed XML: {reason} at line {exc.lineno}, column {exc.offset + 1}"
    if isinstance(exc, ParseError):
        line, column = exc.position
        reason = str(exc).split(":", 1)[0]
        return f"not well-formed XML: {reason} at line {line}, column {column + 1}"
    if isinstance(exc, UnicodeError):
        return f"cannot decode the XML text: {exc}"
    return f"cannot read the XML: {exc}"


def xml_error(exc: Exception, *, file: str) -> InputError:
    """The InputError for a parser failure ``exc`` in ``file``."""
    return InputError(_describe(exc), file=file)


_PARSE_FAILURES = (DefusedXmlException, pyexpat.ExpatError, ParseError, UnicodeError)


def iter_elements(path: Path, *, file: str) -> Iterator[tuple[str, Element]]:
    """``("start"|"end", element)`` events of the XML file at ``path``, parsed by defusedxml.

    The caller clears elements it no longer needs; the tree never holds more
    than the open branch plus what the caller keeps.
    """
    try:
        with path.open("rb") as handle:
            yield from defused_etree.iterparse(handle, events=("start", "end"))
    except _PARSE_FAILURES as exc:
        raise xml_error(exc, file=file) from exc


class TextCapture:
    """Collects the character data of the element being captured, with a size limit."""

    def __init__(self, parser: pyexpat.XMLParserType, *, file: str) -> None:
        self._parser = parser
        self._file = file
        self._parts: list[str] = []
        self._size = 0

    def begin(self) -> None:
        """Start collecting the text of the element that just opened."""
        self._parts = []
        self._size = 0
        self._parser.CharacterDataHandler = self._append

    def finish(self) -> str:
        """Stop collecting; the text collected, stripped."""
        self._parser.CharacterDataHandler = None
        return "".join(self._parts).strip()

    def _append(self, text: str) -> None:
        self._size += len(text)
        if self._size > MAX_TEXT_BYTES:
            raise InputError(
                f"an element's text is longer than {MAX_TEXT_BYTES} bytes", file=self._file
            )
        self._parts.append(text)


def event_parser(handler: EventHandler) -> pyexpat.XMLParserType:
    """An expat parser carrying defusedxml's protections, calling ``handler`` for elements.

    Attributes arrive as a dict; character data is off until a
    :class:`TextCapture` turns it on, so large text costs nothing.
    """
    parser: pyexpat.XMLParserType = defused_etree.DefusedXMLParser().parser
    missing = [name for name in _PROTECTIONS if getattr(parser, name, None) is None]
    if missing:  # pragma: no cover - a defusedxml that changed its internals
        raise RuntimeError(f"defusedxml did not install {', '.join(missing)}")
    parser.ordered_attributes = False
    parser.buffer_text = True
    parser.buffer_size = 1 << 16
    parser.DefaultHandlerExpand = None
    parser.CharacterDataHandler = None
    parser.SkippedEntityHandler = _refuse_skipped_entity
    parser.StartElementHandler = handler.start
    parser.EndElementHandler = handler.end
    return parser


def _refuse_skipped_entity(name: str, is_parameter_entity: bool) -> None:
    # A reference to an entity declared only in an external DTD: never fetched, always refused.
    raise EntitiesForbidden(name, None, None, None, None, None)


def stream_events(
    parser: pyexpat.XMLParserType,
    path: Path,
    *,
    file: str,
    chunk_bytes: int = CHUNK_BYTES,
) -> Iterator[int]:
    """Feed the file to ``parser`` chunk by chunk, yielding the bytes read so far after each.

    The caller drains whatever its handler produced between chunks, so memory
    is bounded by one chunk plus the handler's own pending work.
    """
    read = 0
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(chunk_bytes):
                read += len(chunk)
                parser.Parse(chunk, False)
                yield read
        parser.Parse(b"", True)
    except _PARSE_FAILURES as exc:
        raise xml_error(exc, file=file) from exc
    yield read


def local_name(tag: str) -> str:
    """The tag without a namespace (``{uri}name`` or ``uri}name`` becomes ``name``)."""
    return tag.rsplit("}", 1)[-1]


def child_text(element: Element, name: str) -> str | None:
    """Stripped text of the first child called ``name``; None when absent or empty."""
    child = element.find(name)
    if child is None or child.text is None:
        return None
    return child.text.strip() or None
