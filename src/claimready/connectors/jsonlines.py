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
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from claimready.connectors.base import Normalized, RecordWarning
from claimready.errors import InputError
from claimready.timeutil import parse_utc

MAX_LINE_BYTES = 4 * 1024 * 1024
_BOM = b"\xef\xbb\xbf"


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


def iter_raw_lines(
    path: Path, *, file: str, max_line_bytes: int = MAX_LINE_BYTES
) -> Iterator[tuple[int, bytes]]:
    """Yield ``(line number, bytes)`` for every non-blank line, without its line ending.

    Raises InputError naming the line when it is longer than ``max_line_bytes``.
    """
    try:
        with path.open("rb") as handle:
            number = 0
            while True:
                line = handle.readline(max_line_bytes + 1)
                if not line:
                    return
                number += 1
                if len(line) > max_line_bytes and not line.endswith(b"\n"):
                    raise InputError(
                        f"line is longer than {max_line_bytes} bytes",
                        file=file,
                        record=line_record(number),
                    )
                if number == 1 and line.startswith(_BOM):
                    line = line[len(_BOM) :]
                stripped = line.strip()
                if stripped:
                    yield number, stripped
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror}", file=file) from exc


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
