"""The baseline pack loads, every mapping resolves in its catalog, and bad packs are named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from importlib import resources

import pytest
import yaml

from claimready.controls.expr import STEP_COLUMN, column, evaluate_row
from claimready.controls.pack import baseline, load_pack_text, signal_types
from claimready.errors import InputError
from claimready.frameworks.catalog import FRAMEWORKS, load_catalog, parse_catalog, unknown_mappings


def test_baseline_has_about_twenty_mapped_controls() -> None:
    pack = baseline()
    assert 20 <= len(pack.controls) <= 30
    for control in pack.controls.values():
        assert set(control.spec.frameworks) == set(FRAMEWORKS), control.id


def test_every_mapped_identifier_exists_in_its_catalog() -> None:
    for control in baseline().controls.values():
        assert unknown_mappings(control.spec.frameworks) == [], control.id


def test_catalogs_validate_and_nist_comes_from_the_oscal_catalog() -> None:
    for framework in FRAMEWORKS:
        assert load_catalog(framework).items
    nist = load_catalog("nist-800-53-r5")
    assert nist.get("IA-2(1)") is not None
    assert nist.get("IA-2(1)").oscal_id == "ia-2.1"  # type: ignore[union-attr]
    csf = load_catalog("nist-csf-2.0")
    assert sum(1 for i in csf.items if i.kind == "subcategory") == 106
    with pytest.raises(InputError, match="field 'items'"):
        parse_catalog({**csf.model_dump(), "items": []}, where="x.yaml")


def _pack_with(**changes: object) -> str:
    text = (resources.files("claimready.controls") / "packs" / "baseline.yaml").read_text()
    document = yaml.safe_load(text)
    document["controls"][0].update(changes)
    return yaml.safe_dump(document)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"predicate": "identity.mfa_registered + 1"}, "control mfa-remote-access.*BinOp"),
        ({"threshold": {"coverage": 2}}, "control mfa-remote-access: field 'threshold.coverage'"),
        ({"freshness": "soon"}, "field 'freshness'"),
        ({"signals": ["nope.nothing"], "signal_freshness": {}}, "unknown signal"),
        ({"responsible": ["everyone"]}, "unknown function"),
        ({"surprise": 1}, "field 'surprise'"),
        ({"signal_freshness": {"signin.single_factor": "later"}}, "field 'signal_freshness'"),
        ({"signal_freshness": {"edr.healthy": "2d"}}, "edr.healthy.*not in signals"),
    ],
)
def test_bad_packs_name_file_control_and_field(changes: dict[str, object], message: str) -> None:
    with pytest.raises(InputError, match=message) as caught:
        load_pack_text(_pack_with(**changes), where="mine.yaml", types=signal_types())
    assert str(caught.value).startswith("mine.yaml")


def test_a_signal_can_stay_fresh_longer_than_its_control() -> None:
    controls = {c.id: c.spec for c in baseline().controls.values()}
    spec = controls["mfa-remote-access"]
    assert spec.freshness_of("identity.mfa_registered") == timedelta(days=2)
    assert spec.freshness_of("signin.single_factor") == timedelta(days=31)
    assert spec.longest_freshness() == timedelta(days=31)
    assert controls["edr-coverage"].longest_freshness() == timedelta(hours=26)
    dormant = controls["dormant-accounts"]
    assert dormant.freshness_of("identity.last_sign_in") == timedelta(days=400)
    assert dormant.freshness_of("identity.enabled") == timedelta(days=2)


@pytest.mark.parametrize(
    ("internet", "rdp", "smb", "verdict"),
    [
        (False, False, True, True),  # SMB open on an internal address: not internet exposure
        (False, True, True, True),
        (True, True, False, False),
        (True, False, True, False),
        (True, False, False, True),
        (None, True, False, None),  # open, address unknown: unverified, never a silent pass
        (None, False, False, True),
    ],
)
def test_external_exposure_is_about_internet_facing_hosts(
    internet: bool | None, rdp: bool, smb: bool, verdict: bool | None
) -> None:
    control = baseline().controls["external-exposure"]
    row = {
        STEP_COLUMN: datetime(2026, 5, 14, tzinfo=UTC),
        column("exposure.internet"): internet,
        column("exposure.rdp"): rdp,
        column("exposure.smb"): smb,
    }
    assert evaluate_row(control.predicate, row) is verdict
