"""Validate OSCAL documents against the vendored NIST JSON Schemas.

The schemas are written for ECMAScript regular expressions. Two of their
constructs mean something else (or nothing) to Python's :mod:`re`, so every
``pattern`` is translated before it is compiled:

- ``\\p{L}`` and ``\\p{N}`` (Unicode letters and numbers, used by the token
  type) become explicit character classes built from :mod:`unicodedata`'s
  general categories, so they match exactly the code points whose category
  starts with ``L`` or ``N``;
- a pattern's final ``$`` becomes ``\\Z``: in ECMAScript ``$`` ends the
  string, while Python's also matches before a trailing newline.

Nothing is relaxed: a pattern the translation cannot handle raises instead of
being skipped. ``format`` is checked with jsonschema's draft-7 format checker
(``date-time``, ``email``, and ``uri`` / ``uri-reference`` where their optional
checkers are installed; the schemas' own patterns check date-times and URIs
as well).
"""

from __future__ import annotations

import json
import re
import sys
import unicodedata
from collections.abc import Iterator, Mapping
from functools import cache
from importlib import resources
from typing import Any, Literal

from jsonschema import Draft7Validator, FormatChecker, ValidationError, validators
from jsonschema.exceptions import best_match
from jsonschema.protocols import Validator

from claimready.errors import VerificationError

OSCAL_VERSION = "1.2.3"
Model = Literal["assessment-results", "plan-of-action-and-milestones"]
SCHEMA_FILES: dict[str, str] = {
    "assessment-results": "oscal_assessment-results_schema.json",
    "plan-of-action-and-milestones": "oscal_poam_schema.json",
}
_UNICODE_PROPERTY = re.compile(r"\\p\{([A-Z][a-z]?)\}")


def _escape(code_point: int) -> str:
    return f"\\U{code_point:08x}"


@cache
def unicode_class(category: str) -> str:
    """A character class of every code point whose general category starts with ``category``."""
    ranges: list[tuple[int, int]] = []
    for code_point in range(sys.maxunicode + 1):
        if not unicodedata.category(chr(code_point)).startswith(category):
            continue
        if ranges and ranges[-1][1] == code_point - 1:
            ranges[-1] = (ranges[-1][0], code_point)
        else:
            ranges.append((code_point, code_point))
    if not ranges:
        raise ValueError(f"no Unicode general category starts with {category!r}")
    body = "".join(_escape(lo) if lo == hi else f"{_escape(lo)}-{_escape(hi)}" for lo, hi in ranges)
    return f"[{body}]"


@cache
def translate_pattern(pattern: str) -> re.Pattern[str]:
    """Compile an ECMAScript-style schema pattern with Python's ``re`` (see module doc)."""
    translated = _UNICODE_PROPERTY.sub(lambda m: unicode_class(m.group(1)), pattern)
    if translated.endswith("$") and not translated.endswith("\\$"):
        translated = translated[:-1] + r"\Z"
    try:
        return re.compile(translated)
    except re.error as exc:
        raise ValueError(f"schema pattern {pattern!r} cannot be translated: {exc}") from exc


def _pattern(
    validator: Validator, pattern: str, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not translate_pattern(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


# The schemas use no ``patternProperties``; should a later release, its
# patterns would reach Python's ``re`` untranslated and fail loudly.
OscalValidator: type[Validator] = validators.extend(  # type: ignore[no-untyped-call]
    Draft7Validator, {"pattern": _pattern}
)


def _is_pattern(value: object) -> bool:
    return not isinstance(value, str) or translate_pattern(value) is not None


@cache
def format_checker() -> FormatChecker:
    """Draft 7's format checker, with ``regex`` judged by the same translation as ``pattern``."""
    checker = FormatChecker()
    checker.checkers = dict(Draft7Validator.FORMAT_CHECKER.checkers)
    checker.checks("regex", raises=ValueError)(_is_pattern)
    return checker


@cache
def schema(model: Model) -> dict[str, Any]:
    """The vendored JSON Schema of an OSCAL model."""
    source = resources.files("claimready.oscal") / "schemas" / SCHEMA_FILES[model]
    loaded: dict[str, Any] = json.loads(source.read_text(encoding="utf-8"))
    return loaded


@cache
def _validator(model: Model) -> Validator:
    checked = schema(model)
    meta = Draft7Validator(Draft7Validator.META_SCHEMA, format_checker=format_checker())
    problem = best_match(meta.iter_errors(checked))
    if problem is not None:
        raise VerificationError(
            f"the vendored {model} schema is not valid JSON Schema: {problem.message}",
            subject=problem.json_path,
        )
    validator: Validator = OscalValidator(checked, format_checker=format_checker())
    return validator


def validate(document: Mapping[str, Any], *, model: Model) -> None:
    """Check ``document`` against the model's schema; VerificationError naming the JSON path."""
    errors = list(_validator(model).iter_errors(document))
    if not errors:
        return
    worst = best_match(errors) or errors[0]
    more = f" ({len(errors) - 1} more error(s))" if len(errors) > 1 else ""
    raise VerificationError(
        f"does not conform to the OSCAL {OSCAL_VERSION} {model} schema: {worst.message}{more}",
        subject=worst.json_path,
    )
