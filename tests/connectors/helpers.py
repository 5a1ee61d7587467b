"""Hostile-input helpers every connector test can use: named errors, mutated bytes, fuzzing."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import strategies as st

from claimready.errors import InputError


@contextmanager
def raises_input_error(
    *, file: str, record: object, field: str | None, match: str | None = None
) -> Iterator[None]:
    """Expect an InputError (matching ``match``) that names ``file``, ``record`` and ``field``."""
    with pytest.raises(InputError, match=match) as caught:
        yield
    named = (caught.value.file, caught.value.record, caught.value.field)
    assert named == (file, record, field), f"the error names {named}: {caught.value}"


def input_error_from(
    normalize: Callable[[Path], object], data: bytes, name: str
) -> InputError | None:
    """Normalize ``data`` saved as ``name``: the InputError it raised, or None when it was read.

    Any other exception propagates and fails the test.
    """
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(data)
        try:
            normalize(path)
        except InputError as exc:
            return exc
    return None


@st.composite
def flipped_bytes(draw: st.DrawFn, data: bytes, *, flips: int = 8) -> bytes:
    """``data`` with up to ``flips`` bytes replaced by random ones, then perhaps cut short."""
    buffer = bytearray(data)
    for _ in range(draw(st.integers(0, flips))):
        buffer[draw(st.integers(0, len(buffer) - 1))] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        buffer = buffer[: draw(st.integers(0, len(buffer)))]
    return bytes(buffer)
