"""The vendored schemas, the pattern translation and the pure builders."""

from __future__ import annotations

import hashlib
import re
from importlib import resources
from typing import Any

import pytest

from claimready.errors import VerificationError
from claimready.oscal.build import ni_uri, nist_oscal_id, stable_uuid
from claimready.oscal.validate import (
    OSCAL_VERSION,
    SCHEMA_FILES,
    schema,
    translate_pattern,
    validate,
)

NCNAME = r"^(\p{L}|_)(\p{L}|\p{N}|[.\-_])*$"
UUID = "8f7c2a4e-1b3d-4c5e-9f60-7a8b9c0d1e2f"
METADATA = {
    "title": "Minimal",
    "last-modified": "2026-05-14T03:00:00Z",
    "version": "1",
    "oscal-version": OSCAL_VERSION,
}


def test_vendored_schemas_match_the_notice() -> None:
    folder = resources.files("claimready.oscal") / "schemas"
    notice = (folder / "NOTICE.md").read_text(encoding="utf-8")
    for model, name in SCHEMA_FILES.items():
        digest = hashlib.sha256((folder / name).read_bytes()).hexdigest()
        assert f"`{name}`" in notice and digest in notice
        assert f"/oscal/{OSCAL_VERSION}/" in schema(model)["$id"]


@pytest.mark.parametrize(
    ("value", "matches"),
    [
        ("edr-coverage", True),
        ("ia-2.1", True),
        ("_x", True),
        ("été٣", True),  # a Latin letter with accent, then an Arabic-Indic digit
        ("1st", False),
        ("a b", False),
        ("a:b", False),
        ("abc\n", False),  # ECMAScript's $ does not match before a final newline
        ("", False),
    ],
)
def test_token_pattern_is_translated_exactly(value: str, matches: bool) -> None:
    assert bool(translate_pattern(NCNAME).search(value)) is matches


def test_untranslatable_pattern_raises() -> None:
    with pytest.raises(ValueError, match="Zz"):
        translate_pattern(r"^\p{Zz}$")
    with pytest.raises(ValueError, match="cannot be translated"):
        translate_pattern(r"^(unclosed$")
    assert isinstance(translate_pattern(r"^\$$"), re.Pattern)


def test_minimal_known_good_documents_validate() -> None:
    results: dict[str, Any] = {
        "assessment-results": {
            "uuid": UUID,
            "metadata": METADATA,
            "import-ap": {"href": "#plan"},
            "results": [
                {
                    "uuid": UUID,
                    "title": "Window",
                    "description": "One window.",
                    "start": "2026-05-01T00:00:00Z",
                    "reviewed-controls": {
                        "control-selections": [{"include-controls": [{"control-id": "ac-17"}]}]
                    },
                }
            ],
        }
    }
    validate(results, model="assessment-results")
    plan: dict[str, Any] = {
        "plan-of-action-and-milestones": {
            "uuid": UUID,
            "metadata": METADATA,
            "poam-items": [{"title": "Gap", "description": "A gap."}],
        }
    }
    validate(plan, model="plan-of-action-and-milestones")
    plan["plan-of-action-and-milestones"]["poam-items"] = []
    with pytest.raises(VerificationError, match=r"poam-items"):
        validate(plan, model="plan-of-action-and-milestones")


def test_pure_helpers() -> None:
    assert nist_oscal_id("IA-2(1)") == "ia-2.1"
    assert nist_oscal_id("AC-17") == "ac-17"
    assert nist_oscal_id("A.8.5") is None
    assert stable_uuid("a", "b") == stable_uuid("a", "b") != stable_uuid("a", "c")
    assert stable_uuid("a", "b")[14] == "5"
    empty = hashlib.sha256(b"").hexdigest()
    assert ni_uri(empty) == "ni:///sha-256;47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"
