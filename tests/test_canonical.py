"""canonical_json: the fast path writes exactly what the RFC 8785 reference writes."""

from __future__ import annotations

from typing import Any

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from claimready.canonical import canonical_json
from claimready.errors import InputError

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) - 2, max_value=2**53 + 2)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=5)
    | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=30,
)


def _reference(value: Any) -> bytes | None:
    try:
        return bytes(rfc8785.dumps(value))
    except (rfc8785.CanonicalizationError, TypeError):
        return None


@given(_VALUES)
def test_same_bytes_as_the_reference(value: Any) -> None:
    expected = _reference(value)
    if expected is None:
        with pytest.raises(InputError):
            canonical_json(value)
    else:
        assert canonical_json(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        {"\U0001f600": 1, "\ufb01": 2, "a": 3},
        "\x00\x08\x0c\x1f\x7f\u2028\ufeff",
        [2**53 - 1, -(2**53) + 1],
        {"n": 1.0, "m": 1e21},
    ],
)
def test_edges_match_the_reference(value: Any) -> None:
    assert canonical_json(value) == rfc8785.dumps(value)


@pytest.mark.parametrize("value", [2**53, "\ud800", {"k": "\udfff"}])
def test_values_outside_json_are_refused(value: Any) -> None:
    with pytest.raises(InputError):
        canonical_json(value)
