"""The streaming JSON-lines reader, and the mutation strategy the connector fuzz tests share."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from claimready.assets.identity import AssetObservation
from claimready.connectors.base import Connector, EvidenceFile, Normalized
from claimready.connectors.jsonlines import (
    Fields,
    decode_lines,
    first_json_line,
    iter_json_lines,
    iter_json_objects,
    iter_line_blocks,
    iter_raw_lines,
    merge_normalized,
)
from claimready.errors import InputError
from claimready.facts.models import Fact

COLLECTED = datetime(2026, 1, 1, tzinfo=UTC)
FUZZ = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
_SWAPS: tuple[Any, ...] = (None, 0, -1, 1.5, "x", "", [], {}, True, "2025-13-45T99:00:00Z")


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found: list[tuple[Any, ...]] = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found.extend(_paths(item, (*prefix, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value[:5]):
            found.extend(_paths(item, (*prefix, index)))
    return found


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> None:
    for part in path[:-1]:
        value = value[part]
    value[path[-1]] = new


@st.composite
def _swap(draw: st.DrawFn, data: bytes) -> bytes:
    try:
        documents = [json.loads(data)]
        lines = False
    except ValueError:
        try:
            documents = [json.loads(line) for line in data.splitlines() if line.strip()]
        except ValueError:
            return draw(_swap_csv_cell(data))
        lines = True
    target = draw(st.integers(0, len(documents) - 1))
    paths = _paths(documents[target])
    if paths:
        _replace(documents[target], draw(st.sampled_from(paths)), draw(st.sampled_from(_SWAPS)))
    if lines:
        return b"\n".join(json.dumps(d).encode() for d in documents) + b"\n"
    return json.dumps(documents[0]).encode()


@st.composite
def _swap_csv_cell(draw: st.DrawFn, data: bytes) -> bytes:
    rows = [line.split(b",") for line in data.splitlines()]
    row = draw(st.integers(0, len(rows) - 1))
    cell = draw(st.integers(0, len(rows[row]) - 1))
    rows[row][cell] = str(draw(st.sampled_from(_SWAPS))).encode()
    return b"\n".join(b",".join(r) for r in rows) + b"\n"


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """Byte flips, a truncation or a JSON value of another type, applied to real bytes."""
    how = draw(st.sampled_from(("flip", "truncate", "swap")))
    if how == "truncate":
        return data[: draw(st.integers(0, len(data)))]
    if how == "swap":
        return draw(_swap(data))
    out = bytearray(data)
    for position in draw(st.lists(st.integers(0, len(data) - 1), min_size=1, max_size=8)):
        out[position] = draw(st.integers(0, 255))
    return bytes(out)


def only_input_errors(connector: Connector, data: bytes, name: str) -> None:
    """Normalize ``data`` as a file called ``name``; anything but success or InputError fails."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(data)
        evidence = EvidenceFile(path=path, display_name=name, size=len(data))
        try:
            result = connector.normalize(evidence, observed_at=None, collected_at=COLLECTED)
        except InputError as exc:
            assert exc.file is not None and exc.file.startswith(name)
            return
    keys = {o.key for o in result.observations}
    assert {f.asset_key for f in result.facts} <= keys


def normalize_file(
    connector: Connector, path: Path, observed_at: datetime | None = None, name: str | None = None
) -> Normalized:
    """Normalize a fixture or sample file."""
    evidence = EvidenceFile(path=path, display_name=name or path.name, size=path.stat().st_size)
    return connector.normalize(evidence, observed_at=observed_at, collected_at=COLLECTED)


def facts_by(result: Normalized, signal: str) -> dict[str, list[Any]]:
    """Fact values of one signal, by asset key."""
    found: dict[str, list[Any]] = {}
    for fact in result.facts:
        if fact.signal == signal:
            found.setdefault(fact.asset_key, []).append(fact.value)
    return found


Writer = Callable[[str], Path]


@pytest.fixture
def write(tmp_path: Path) -> Writer:
    """A factory writing text to a file in a temporary folder."""

    def make(text: str) -> Path:
        path = tmp_path / "data.jsonl"
        path.write_text(text, encoding="utf-8")
        return path

    return make


def test_lines_are_numbered_from_one_and_blank_lines_skipped(write: Writer) -> None:
    path = write('\ufeff{"a": 1}\n\n  \r\n{"a": 2}\r\n[3]')
    lines = list(iter_json_lines(path, file="f"))
    assert [(line.number, line.value) for line in lines] == [(1, {"a": 1}), (4, {"a": 2}), (5, [3])]


def test_bad_json_names_the_line(write: Writer) -> None:
    path = write('{"a": 1}\n{"a": \n')
    with pytest.raises(InputError, match="not valid JSON") as caught:
        list(iter_json_lines(path, file="log.json"))
    assert (caught.value.file, caught.value.record) == ("log.json", "line 2")


def test_non_objects_are_refused_where_objects_are_expected(write: Writer) -> None:
    path = write('{"a": 1}\n[1]\n')
    with pytest.raises(InputError, match="expected a JSON object, found array") as caught:
        list(iter_json_objects(path, file="f"))
    assert caught.value.record == "line 2"


def test_line_length_is_bounded(write: Writer) -> None:
    path = write('{"a": 1}\n{"b": "' + "x" * 300 + '"}\n')
    with pytest.raises(InputError, match="longer than 100 bytes") as caught:
        list(iter_json_lines(path, file="f", max_line_bytes=100))
    assert caught.value.record == "line 2"
    # A line of exactly the limit plus its newline is fine.
    exact = write('{"b": "' + "x" * 91 + '"}\n')
    assert len(list(iter_json_lines(exact, file="f", max_line_bytes=100))) == 1


def test_invalid_utf8_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"a": "\xff"}\n')
    with pytest.raises(InputError, match="not UTF-8"):
        list(iter_json_lines(path, file="bad.jsonl"))


def test_first_json_line_for_detection() -> None:
    assert first_json_line(b'{"a": 1}\n{"b"') == {"a": 1}
    assert first_json_line(b'{"a": 1, "cut') is None
    assert first_json_line(b"[1, 2]\n") is None
    assert first_json_line(b"{\n") is None


def test_fields_name_the_path_of_a_wrong_type() -> None:
    fields = Fields({"rule": {"level": "high"}}, file="f", record="line 3")
    rule = fields.obj("rule")
    assert rule is not None
    with pytest.raises(InputError, match="expected a number, found text") as caught:
        rule.number("level")
    assert caught.value.field == "rule.level"
    with pytest.raises(InputError, match="missing required field"):
        fields.text("timestamp", required=True)


def test_merge_normalized_combines_batches() -> None:
    moment = datetime(2025, 1, 1, tzinfo=UTC)
    later = datetime(2025, 1, 2, tzinfo=UTC)
    one = Normalized(
        (AssetObservation("a", "server", "a"),),
        (Fact("a", "log.last_event", moment, moment),),
        2,
        moment,
        moment,
        "x",
        notes=("n",),
    )
    two = Normalized(
        (AssetObservation("a", "server", "a"), AssetObservation("b", "server", "b")),
        (Fact("b", "log.last_event", later, later),),
        3,
        later,
        later,
        "x",
        notes=("n",),
    )
    merged = merge_normalized([one, two], media_type="x")
    assert [o.key for o in merged.observations] == ["a", "b"]
    assert merged.record_count == 5
    assert (merged.observed_from, merged.observed_to) == (moment, later)
    assert merged.notes == ("n",)
    assert len(merged.facts) == 2


FUZZ_SETTINGS = FUZZ


def test_blocks_number_lines_across_block_boundaries(write: Writer) -> None:
    text = "\ufeff" + "".join(f'{{"n": {i}}}\n' if i % 7 else "\r\n" for i in range(1, 60))
    path = write(text + '{"n": 60}')
    blocks = list(iter_line_blocks(path, file="f", block_bytes=16))
    numbered = [pair for block in blocks for pair in block.numbered()]
    assert numbered == list(iter_raw_lines(path, file="f"))
    assert [n for n, _ in numbered] == [i for i in range(1, 61) if i % 7]
    assert len(blocks) > 10 and all(block.utf8 for block in blocks)


def test_block_reader_reports_the_long_line_after_the_lines_before_it(write: Writer) -> None:
    path = write('{"a": 1}\n{"a": 2}\n{"b": "' + "x" * 300 + '"}\n{"a": 3}\n')
    seen: list[int] = []
    with pytest.raises(InputError, match="longer than 100 bytes") as caught:
        for block in iter_line_blocks(path, file="f", max_line_bytes=100, block_bytes=1 << 20):
            seen.extend(number for number, _ in block.numbered())
    assert (seen, caught.value.record) == ([1, 2], "line 3")


class _Shape(msgspec.Struct):
    a: int


def test_decode_lines_gives_none_for_any_line_it_cannot_read(write: Writer) -> None:
    decoder = msgspec.json.Decoder(_Shape)
    good = next(iter_line_blocks(write('{"a": 1, "x": [1]}\n{"a": 2}\n'), file="f"))
    assert decode_lines(decoder, good) == [_Shape(1), _Shape(2)]
    for text in ('{"a": 1}\n\n', '{"a": "1"}\n', '{"a": 1}{"a": 2}\n', '{"a": 1, "x": NaN}\n'):
        assert decode_lines(decoder, next(iter_line_blocks(write(text), file="f"))) is None


def test_decode_lines_refuses_bytes_that_are_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"a": 1, "skipped": "\xff"}\n')  # a typed decoder skips the field unread
    block = next(iter_line_blocks(path, file="f"))
    assert not block.utf8
    assert decode_lines(msgspec.json.Decoder(_Shape), block) is None
