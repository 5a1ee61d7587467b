"""A streaming reader for JSON-lines evidence (one JSON value per line).

Tools such as Wazuh (``alerts.json``) and osquery (result logs) write one JSON
object per line, and their files grow to gigabytes. This reader:

* reads one line at a time with a maximum line length, so memory stays
  bounded whatever the file holds (a file with no newline at all is refused
  once its first line passes the limit, not read whole);
* numbers lines from 1 and names the line in every error (``record`` is
  ``"line 12"``), so a user can open the file at the bad record;
* skips blank lines and tolerates ``\\r\\n`` line endings and a UTF-8 byte
  order mark at the start of the file.

``first_json_line`` helps ``detect``: it parses the first complete line of a
file's head, returning None when there is none or it is not a JSON object.

Fast connectors read whole blocks of lines (:func:`iter_line_blocks`) and
decode them with a typed ``msgspec`` decoder (:func:`decode_lines`,
:func:`decode_each`); a line that does not decode that way is read again
through :func:`parse_line`, so every error still names its line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any, TypeVar

import msgspec

from claimready.connectors.base import Normalized, RecordWarning
from claimready.errors import InputError
from claimready.timeutil import parse_utc

MAX_LINE_BYTES = 4 * 1024 * 1024
BLOCK_BYTES = 1 << 20
_BOM = b"\xef\xbb\xbf"
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class JsonLine:
    """One parsed line: its 1-based line number and its JSON value."""

    number: int
    value: Any

    @property
    def record(self) -> str:
        """How errors and warnings name this line."""
        return f"line {self.number}"


def line_record(number: int) -> str:
    """The record label for line ``number`` (``"line 12"``)."""
    return f"line {number}"


@dataclass(frozen=True, slots=True)
class LineBlock:
    """Consecutive complete lines of a file, each without its line ending's ``\\n``.

    ``first`` is the number of ``lines[0]``; blank lines are included, so the
    line at index ``i`` is line ``first + i``. ``utf8`` is True when every
    line is valid UTF-8.
    """

    first: int
    lines: list[bytes]
    utf8: bool

    def numbered(self) -> Iterator[tuple[int, bytes]]:
        """``(line number, stripped bytes)`` for every non-blank line."""
        for number, line in enumerate(self.lines, self.first):
            stripped = line.strip()
            if stripped:
                yield number, stripped


def iter_line_blocks(
    path: Path,
    *,
    file: str,
    max_line_bytes: int = MAX_LINE_BYTES,
    block_bytes: int = BLOCK_BYTES,
) -> Iterator[LineBlock]:
    """Yield the file's lines in blocks of about ``block_bytes``, streaming.

    A UTF-8 byte order mark at the start of the file is dropped. Raises
    InputError naming the line when one is longer than ``max_line_bytes``
    (after yielding the lines before it, as a line-by-line reader would).
    """
    try:
        with path.open("rb") as handle:
            yield from _blocks(handle, file=file, max_line_bytes=max_line_bytes, size=block_bytes)
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror}", file=file) from exc


def _blocks(handle: IO[bytes], *, file: str, max_line_bytes: int, size: int) -> Iterator[LineBlock]:
    number = 1
    carry = b""
    while chunk := handle.read(size):
        data = carry + chunk if carry else chunk
        lines = data.split(b"\n")
        carry = lines.pop()
        if lines:
            yield from _checked_block(data, lines, number, file=file, max_line_bytes=max_line_bytes)
            number += len(lines)
        if len(carry) > max_line_bytes:
            raise _too_long(number, max_line_bytes, file=file)
    if carry:
        yield from _checked_block(carry, [carry], number, file=file, max_line_bytes=max_line_bytes)


def _checked_block(
    data: bytes, lines: list[bytes], first: int, *, file: str, max_line_bytes: int
) -> Iterator[LineBlock]:
    """``lines`` (split from ``data``) as a block, checked for length and UTF-8."""
    too_long: int | None = None
    if len(data) > max_line_bytes:
        too_long = next((i for i, line in enumerate(lines) if len(line) > max_line_bytes), None)
        if too_long is not None:
            lines = lines[:too_long]
    if first == 1 and lines and lines[0].startswith(_BOM):
        lines[0] = lines[0][len(_BOM) :]
    if lines:
        utf8 = data.isascii() or all(map(_is_utf8, lines))
        yield LineBlock(first, lines, utf8)
    if too_long is not None:
        raise _too_long(first + too_long, max_line_bytes, file=file)


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _too_long(number: int, max_line_bytes: int, *, file: str) -> InputError:
    return InputError(
        f"line is longer than {max_line_bytes} bytes", file=file, record=line_record(number)
    )


def iter_raw_lines(
    path: Path, *, file: str, max_line_bytes: int = MAX_LINE_BYTES
) -> Iterator[tuple[int, bytes]]:
    """Yield ``(line number, bytes)`` for every non-blank line, stripped of surrounding space.

    Raises InputError naming the line when it is longer than ``max_line_bytes``.
    """
    for block in iter_line_blocks(path, file=file, max_line_bytes=max_line_bytes):
        yield from block.numbered()


def decode_lines(decoder: msgspec.json.Decoder[T], block: LineBlock) -> list[T] | None:
    """Every line of ``block`` decoded by ``decoder``, or None when any one does not decode.

    None means "read this block line by line": a blank line, bytes that are
    not UTF-8, JSON that ``decoder`` refuses or a record of another shape
    all take that path, which gives the exact error or result for each line.
    """
    if not block.utf8:
        return None
    try:
        return list(map(decoder.decode, block.lines))
    except (msgspec.DecodeError, RecursionError):  # a ValidationError is a DecodeError
        return None


def decode_each(decoder: msgspec.json.Decoder[T], block: LineBlock) -> list[T | None] | None:
    """Every line of ``block`` decoded by ``decoder``, None for each line that does not decode.

    Unlike :func:`decode_lines`, one odd line costs only itself: the caller
    reads just the lines given as None line by line (through :func:`parse_line`).
    A block that is not all UTF-8 gives None as a whole.
    """
    if not block.utf8:
        return None
    try:
        return list(map(decoder.decode, block.lines))
    except (msgspec.DecodeError, RecursionError):  # a ValidationError is a DecodeError
        return [_decoded_or_none(decoder, line) for line in block.lines]


def _decoded_or_none(decoder: msgspec.json.Decoder[T], line: bytes) -> T | None:
    try:
        return decoder.decode(line)
    except (msgspec.DecodeError, RecursionError):
        return None


def parse_line(data: bytes, *, file: str, number: int) -> Any:
    """Parse one line as JSON; InputError naming the line and column otherwise."""
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InputError(
            f"not UTF-8 text (byte {exc.start})", file=file, record=line_record(number)
        ) from exc
    except json.JSONDecodeError as exc:
        raise InputError(
            f"not valid JSON: {exc.msg} at column {exc.colno}",
            file=file,
            record=line_record(number),
        ) from exc
    except RecursionError as exc:
        raise InputError("JSON nesting is too deep", file=file, record=line_record(number)) from exc


def iter_json_lines(
    path: Path, *, file: str, max_line_bytes: int = MAX_LINE_BYTES
) -> Iterator[JsonLine]:
    """Yield every non-blank line of ``path`` parsed as JSON, streaming."""
    for number, data in iter_raw_lines(path, file=file, max_line_bytes=max_line_bytes):
        yield JsonLine(number, parse_line(data, file=file, number=number))


def iter_json_objects(
    path: Path, *, file: str, max_line_bytes: int = MAX_LINE_BYTES
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Like :func:`iter_json_lines`, but every line must be a JSON object."""
    for line in iter_json_lines(path, file=file, max_line_bytes=max_line_bytes):
        if not isinstance(line.value, dict):
            raise InputError(
                f"expected a JSON object, found {json_type_name(line.value)}",
                file=file,
                record=line.record,
            )
        yield line.number, line.value


def first_json_line(head: bytes) -> dict[str, Any] | None:
    """The first line of ``head`` as a JSON object, or None (for ``detect``).

    Only a complete line is parsed: a head that ends inside its first line
    gives None, and callers fall back to looking for field names.
    """
    text = head[len(_BOM) :] if head.startswith(_BOM) else head
    text = text.lstrip()
    if not text.startswith(b"{"):
        return None
    end = text.find(b"\n")
    if end == -1:
        return None
    try:
        value = json.loads(text[:end])
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def looks_like_json_lines(head: bytes) -> bool:
    """True when the head starts with a JSON object followed by a line break."""
    return first_json_line(head) is not None


# Typed access to the fields of one JSON record -----------------------------------------


_JSON_TYPE_NAMES = {
    dict: "object",
    list: "array",
    str: "text",
    bool: "boolean",
    int: "number",
    float: "number",
    type(None): "null",
}


def json_type_name(value: Any) -> str:
    """The JSON name of a value's type, for "expected X, found Y" messages."""
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


class Fields:
    """Typed access to one JSON object's fields; errors name file, record and field path.

    A field of the wrong type rejects the file (InputError); a missing optional
    field or a JSON null gives None.
    """

    __slots__ = ("file", "prefix", "raw", "record")

    def __init__(self, raw: Any, *, file: str, record: str | int, prefix: str = "") -> None:
        if not isinstance(raw, dict):
            raise InputError(
                f"expected an object, found {json_type_name(raw)}",
                file=file,
                record=record,
                field=prefix or None,
            )
        self.raw: dict[str, Any] = raw
        self.file = file
        self.record = record
        self.prefix = prefix

    def path(self, name: str) -> str:
        """The dotted path of field ``name`` within the record."""
        return f"{self.prefix}.{name}" if self.prefix else name

    def error(self, name: str, problem: str) -> InputError:
        """An InputError about field ``name`` of this record."""
        return InputError(problem, file=self.file, record=self.record, field=self.path(name))

    def _value(self, name: str, *, required: bool) -> Any:
        value = self.raw.get(name)
        if value is None and required:
            raise self.error(name, "missing required field")
        return value

    def text(self, name: str, *, required: bool = False) -> str | None:
        """A text field; numbers are not accepted as text."""
        value = self._value(name, required=required)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.error(name, f"expected text, found {json_type_name(value)}")
        if required and not value.strip():
            raise self.error(name, "expected text, found empty text")
        return value

    def id_text(self, name: str, *, required: bool = False) -> str | None:
        """An identifier given as text or as a whole number (``"001"`` or ``17``)."""
        value = self._value(name, required=required)
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return self.text(name, required=required)

    def number(self, name: str, *, required: bool = False) -> float | None:
        """A number field (a boolean is not a number)."""
        value = self._value(name, required=required)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(name, f"expected a number, found {json_type_name(value)}")
        return float(value)

    def boolean(self, name: str, *, required: bool = False) -> bool | None:
        """A JSON boolean field."""
        value = self._value(name, required=required)
        if value is None:
            return None
        if not isinstance(value, bool):
            raise self.error(name, f"expected true or false, found {json_type_name(value)}")
        return value

    def obj(self, name: str, *, required: bool = False) -> Fields | None:
        """A nested object, as Fields whose paths continue this one's."""
        value = self._value(name, required=required)
        if value is None:
            return None
        return Fields(value, file=self.file, record=self.record, prefix=self.path(name))

    def need(self, name: str) -> Fields:
        """A required nested object."""
        found = self.obj(name, required=True)
        if found is None:  # pragma: no cover - required=True raises first
            raise self.error(name, "missing required field")
        return found

    def need_array(self, name: str) -> list[Any]:
        """A required array."""
        found = self.array(name, required=True)
        if found is None:  # pragma: no cover - required=True raises first
            raise self.error(name, "missing required field")
        return found

    def need_number(self, name: str) -> float:
        """A required number."""
        found = self.number(name, required=True)
        if found is None:  # pragma: no cover - required=True raises first
            raise self.error(name, "missing required field")
        return found

    def array(self, name: str, *, required: bool = False) -> list[Any] | None:
        """An array field."""
        value = self._value(name, required=required)
        if value is None:
            return None
        if not isinstance(value, list):
            raise self.error(name, f"expected an array, found {json_type_name(value)}")
        return value

    def objects(self, name: str, *, required: bool = False) -> list[Fields]:
        """An array of objects, each as Fields with an indexed path (``resources[2]``)."""
        items = self.array(name, required=required) or []
        return [
            Fields(item, file=self.file, record=self.record, prefix=f"{self.path(name)}[{i}]")
            for i, item in enumerate(items)
        ]


def read_time(
    fields: Fields, name: str, *, warnings: list[RecordWarning], label: str | None = None
) -> datetime | None:
    """A timestamp field with a zone; an unreadable value becomes a warning and None.

    A value of the wrong JSON type is still an InputError: the file is not
    in the format, rather than one value being unusable.
    """
    text = fields.text(name)
    if text is None:
        return None
    try:
        return parse_utc(text)
    except ValueError:
        record = label if label is not None else str(fields.record)
        warnings.append(RecordWarning(record, fields.path(name), f"unreadable timestamp {text!r}"))
        return None


def merge_normalized(batches: Iterable[Normalized], *, media_type: str) -> Normalized:
    """One result from the batches of :meth:`Connector.normalize_batches`."""
    observations: dict[str, Any] = {}
    facts: list[Any] = []
    warnings: list[RecordWarning] = []
    notes: list[str] = []
    records = 0
    starts: list[datetime] = []
    ends: list[datetime] = []
    for batch in batches:
        for observation in batch.observations:
            observations.setdefault(observation.key, observation)
        facts.extend(batch.facts)
        warnings.extend(batch.warnings)
        notes.extend(n for n in batch.notes if n not in notes)
        records += batch.record_count
        if batch.observed_from is not None:
            starts.append(batch.observed_from)
        if batch.observed_to is not None:
            ends.append(batch.observed_to)
    return Normalized(
        observations=tuple(observations.values()),
        facts=tuple(facts),
        record_count=records,
        observed_from=min(starts) if starts else None,
        observed_to=max(ends) if ends else None,
        media_type=media_type,
        warnings=tuple(warnings),
        notes=tuple(notes),
    )
