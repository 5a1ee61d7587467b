"""Choosing where to split an XML file, and the second process that reads part of it."""

from __future__ import annotations

import io
import pickle
import re
from typing import IO

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from claimready.connectors import xmlsplit

_START = re.compile(rb"<ReportHost[\s/>]")
_PIECES = (b"x" * 7, b"<ReportHost ", b"<ReportHost>", b"<ReportHosts", b"<ReportHost/", b"\n")


@settings(max_examples=200, deadline=None)
@given(
    pieces=st.lists(st.sampled_from(_PIECES), max_size=60),
    scan=st.integers(1, 48),
    fraction=st.floats(0, 1),
)
def test_starts_are_found_and_counted_across_chunks(
    pieces: list[bytes], scan: int, fraction: float
) -> None:
    data = b"".join(pieces)
    at = int(len(data) * fraction)
    starts = [m.start() for m in _START.finditer(data)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(xmlsplit, "SCAN_BYTES", scan)
        handle = io.BytesIO(data)
        handle.seek(at)
        assert xmlsplit.find_start(handle, at, _START) == next((s for s in starts if s >= at), None)
        assert xmlsplit.count_starts(io.BytesIO(data), at, _START) == sum(s < at for s in starts)


@pytest.mark.parametrize(
    ("head", "plain"),
    [
        (b"<r/>", True),
        (b'<?xml version="1.0" encoding="UTF-8"?>\n<r>', True),
        (b"\xef\xbb\xbf<?xml version='1.0' encoding='us-ascii'?><r>", True),
        (b'<?xml version="1.0" encoding="ISO-8859-1"?>\n<r>', False),
        (b'<?xml version="1.0"?>\n<!DOCTYPE r [<!ATTLIST r a CDATA "x">]>\n<r>', False),
        (b"\xff\xfe<\x00r\x00>\x00", False),
        (b"<other/>", False),
    ],
)
def test_only_a_utf8_head_without_doctype_is_plain(head: bytes, plain: bool) -> None:
    assert xmlsplit.plain_head(head, root="r") is plain


def _writes(values: list[int], out: IO[bytes]) -> None:
    for value in values:
        pickle.dump(value, out)


def _fails(out: IO[bytes]) -> None:
    pickle.dump(1, out)
    raise ValueError("a bad file")


def test_the_second_process_gives_what_it_wrote_or_none_when_it_failed() -> None:
    with xmlsplit.SecondProcess(_writes, ([1, 2, 3],)) as second:
        assert second.running
        results = second.results()
        assert results is not None and list(results) == [1, 2, 3]
    with xmlsplit.SecondProcess(_fails, ()) as second:
        assert second.results() is None
    with xmlsplit.SecondProcess(_writes, None) as second:
        assert not second.running and second.results() is None
