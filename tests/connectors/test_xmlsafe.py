"""The safe XML helpers refuse entity tricks and name the file in every error."""

from __future__ import annotations

from pathlib import Path

import pytest

from claimready.connectors import xmlsafe
from claimready.errors import InputError

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<NessusClientData_v2>&lol3;</NessusClientData_v2>
"""
EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<report>&xxe;</report>
"""
EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE r SYSTEM "http://example.invalid/evil.dtd">
<report><x>&ent;</x></report>
"""


class _Recorder:
    def __init__(self) -> None:
        self.started: list[str] = []
        self.ended: list[str] = []

    def start(self, name: str, attrs: dict[str, str]) -> None:
        self.started.append(name)

    def end(self, name: str) -> None:
        self.ended.append(name)


def _write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "input.xml"
    path.write_bytes(data)
    return path


def _stream(path: Path) -> _Recorder:
    recorder = _Recorder()
    parser = xmlsafe.event_parser(recorder)
    for _ in xmlsafe.stream_events(parser, path, file="input.xml", chunk_bytes=7):
        pass
    return recorder


@pytest.mark.parametrize("data", [BILLION_LAUGHS, EXTERNAL, EXTERNAL_DTD])
def test_entity_tricks_are_refused_by_both_readers(tmp_path: Path, data: bytes) -> None:
    path = _write(tmp_path, data)
    with pytest.raises(InputError) as streamed:
        _stream(path)
    assert streamed.value.file == "input.xml"
    with pytest.raises(InputError) as iterated:
        list(xmlsafe.iter_elements(path, file="input.xml"))
    assert iterated.value.file == "input.xml"


def test_entity_declarations_are_reported_as_forbidden(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="forbidden XML construct"):
        _stream(_write(tmp_path, BILLION_LAUGHS))


def test_malformed_xml_names_line_and_column(tmp_path: Path) -> None:
    path = _write(tmp_path, b"<a>\n<b></a>")
    with pytest.raises(InputError, match=r"not well-formed XML: .* line 2") as caught:
        _stream(path)
    assert caught.value.file == "input.xml"
    with pytest.raises(InputError, match=r"not well-formed XML"):
        list(xmlsafe.iter_elements(path, file="input.xml"))


def test_events_arrive_in_order_across_tiny_chunks(tmp_path: Path) -> None:
    recorder = _stream(_write(tmp_path, b"<a><b x='1'>text</b><c/></a>"))
    assert recorder.started == ["a", "b", "c"]
    assert recorder.ended == ["b", "c", "a"]


def test_text_capture_has_a_limit(tmp_path: Path) -> None:
    class Capturing(_Recorder):
        def __init__(self) -> None:
            super().__init__()
            self.parser = xmlsafe.event_parser(self)
            self.capture = xmlsafe.TextCapture(self.parser, file="input.xml")
            self.texts: list[str] = []

        def start(self, name: str, attrs: dict[str, str]) -> None:
            self.capture.begin()

        def end(self, name: str) -> None:
            self.texts.append(self.capture.finish())

    handler = Capturing()
    path = _write(tmp_path, b"<a> short </a>")
    list(xmlsafe.stream_events(handler.parser, path, file="input.xml"))
    assert handler.texts == ["short"]
    huge = _write(tmp_path, b"<a>" + b"x" * (xmlsafe.MAX_TEXT_BYTES + 10) + b"</a>")
    handler = Capturing()
    with pytest.raises(InputError, match="longer than"):
        list(xmlsafe.stream_events(handler.parser, huge, file="input.xml"))


def test_helpers() -> None:
    assert xmlsafe.local_name("{urn:x}tag") == "tag"
    assert xmlsafe.local_name("tag") == "tag"
