"""Optional compiled helpers are found where built and reported absent otherwise."""

from __future__ import annotations

from claimready.native import optional_module


def test_a_module_that_was_not_built_is_none() -> None:
    assert optional_module("claimready._not_built_anywhere") is None
    assert optional_module("json") is not None
