"""The YAML-configured CSV/JSON mapping connector and its bundled RMM mappings."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from hypothesis import given

from claimready.connectors.builtin.mapping import (
    MAPPINGS_ENV,
    MappingConnector,
    load_mapping,
    mapping_files,
)
from claimready.connectors.registry import all_connectors, detect_connector
from claimready.controls.pack import signal_types
from claimready.errors import ConfigError
from tests.connectors.test_jsonlines import (
    FUZZ,
    facts_by,
    mutated,
    normalize_file,
    only_input_errors,
)

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "rmm"
NINJA = ASSETS / "ninjaone-devices.json"
DATTO = ASSETS / "datto-rmm-devices.json"
AUTOMATE = ASSETS / "connectwise-automate-computers.csv"
BUNDLED = ("connectwise-automate", "datto-rmm", "ninjaone")


def _connector(name: str) -> MappingConnector:
    return MappingConnector(name, mapping_files({})[name])


def test_bundled_mappings_are_valid_and_registered() -> None:
    known = all_connectors()
    for name in BUNDLED:
        assert load_mapping(mapping_files({})[name]).name == name
        assert f"mapping:{name}" in known


@pytest.mark.parametrize(
    ("path", "name"),
    [(NINJA, "ninjaone"), (DATTO, "datto-rmm"), (AUTOMATE, "connectwise-automate")],
    ids=lambda v: v.name if isinstance(v, Path) else v,
)
def test_each_export_is_detected_by_its_mapping(path: Path, name: str) -> None:
    assert detect_connector(name=path.name, head=path.read_bytes()[:4096]).kind == f"mapping:{name}"


def test_ninjaone_devices() -> None:
    devices = json.loads(NINJA.read_text())
    result = normalize_file(_connector("ninjaone"), NINJA)
    readable = [d for d in devices if isinstance(d["lastContact"], float | int)]
    expected = {str(d["id"]): [datetime.fromtimestamp(d["lastContact"], tz=UTC)] for d in readable}
    assert facts_by(result, "device.last_sync") == expected
    assert facts_by(result, "device.os") == {str(d["id"]): [d["os"]["name"]] for d in readable}
    kinds = {o.key: o.kind for o in result.observations}
    assert kinds == {"101": "workstation", "102": "server"}
    files = next(o for o in result.observations if o.key == "102")
    assert "serial" not in {i.kind for i in files.identifiers}  # BIOS placeholder dropped
    assert len(result.warnings) == len(devices) - len(readable)


def test_datto_antivirus_words() -> None:
    devices = json.loads(DATTO.read_text())["devices"]
    result = normalize_file(_connector("datto-rmm"), DATTO)
    running = {"RunningAndUpToDate", "RunningAndNotUpToDate"}
    known = running | {"NotRunning", "NotDetected"}
    expected = {
        d["uid"]: [d["antivirus"]["antivirusStatus"] in running]
        for d in devices
        if d["antivirus"]["antivirusStatus"] in known
    }
    assert facts_by(result, "av.enabled") == expected
    unknown = [d for d in devices if d["antivirus"]["antivirusStatus"] not in known]
    assert len(result.warnings) == 2 * len(unknown)  # av.enabled and av.up_to_date


def test_connectwise_csv() -> None:
    with AUTOMATE.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    result = normalize_file(_connector("connectwise-automate"), AUTOMATE)
    assert result.record_count == len(rows)
    readable = {}
    for row in rows:
        try:
            moment = datetime.strptime(
                row["RemoteAgentLastContact"] + "+0000", "%Y-%m-%d %H:%M:%S%z"
            )
        except ValueError:
            continue
        readable[row["Id"]] = [moment]
    assert facts_by(result, "device.last_sync") == readable
    ws = next(o for o in result.observations if o.key == rows[0]["Id"])
    assert ("mac", "00:b0:d0:63:c2:26") in {(i.kind, i.value) for i in ws.identifiers}


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"format": "xml"}, "format"),
        ({"signals": [{"signal": "AV", "column": "a", "type": "bool"}]}, "signals.0"),
        ({"signals": [{"signal": "av.enabled", "column": "a", "type": "flag"}]}, "signals.0"),
        ({"observed": {"column": "t", "format": "%d/%m/%Y"}}, "observed"),
        ({"asset": {"id": "x"}}, "asset.display_name"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_invalid_mappings_name_file_and_key(
    tmp_path: Path, change: dict[str, object], key: str
) -> None:
    document = yaml.safe_load(mapping_files({})["ninjaone"].read_text())
    document.update(change)
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ConfigError, match=rf"broken\.yaml: key {key}"):
        load_mapping(path)
    connector = MappingConnector("broken", path)
    assert not connector.detect(name="x.json", head=NINJA.read_bytes())
    with pytest.raises(ConfigError):
        normalize_file(connector, NINJA)


def test_user_mappings_come_from_the_environment_directory(tmp_path: Path) -> None:
    own = tmp_path / "ninjaone.yaml"
    own.write_text(mapping_files({})["ninjaone"].read_text())
    (tmp_path / "acme-rmm.yaml").write_text("name: acme-rmm\n")
    found = mapping_files({MAPPINGS_ENV: str(tmp_path)})
    assert found["ninjaone"] == own
    assert found["acme-rmm"] == tmp_path / "acme-rmm.yaml"
    assert found["datto-rmm"].name == "datto-rmm.yaml"


def test_an_edited_mapping_counts_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    document = yaml.safe_load(mapping_files({})["ninjaone"].read_text())
    document["name"] = "acme-rmm"
    path = tmp_path / "acme-rmm.yaml"
    path.write_text(yaml.safe_dump(document))
    monkeypatch.setenv(MAPPINGS_ENV, str(tmp_path))
    assert load_mapping(path) is load_mapping(path)  # the same text is parsed once
    assert "mapping:acme-rmm" in all_connectors()
    assert "device.os" in signal_types()
    document["signals"][0]["signal"] = "device.acme_contact"
    path.write_text(yaml.safe_dump(document))
    assert "device.acme_contact" in signal_types()
    path.write_text("name: [broken")
    assert all_connectors()["mapping:acme-rmm"].title == "mapping acme-rmm (invalid)"
    monkeypatch.delenv(MAPPINGS_ENV)
    assert "device.acme_contact" not in signal_types()


def test_observed_at_wins_and_deterministic() -> None:
    moment = datetime(2024, 1, 1, tzinfo=UTC)
    connector = _connector("datto-rmm")
    result = normalize_file(connector, DATTO, observed_at=moment)
    assert {f.observed_at for f in result.facts} == {moment}
    assert normalize_file(connector, DATTO) == normalize_file(connector, DATTO)


@FUZZ
@given(data=mutated(DATTO.read_bytes()))
def test_fuzz_datto(data: bytes) -> None:
    only_input_errors(_connector("datto-rmm"), data, "devices.json")


@FUZZ
@given(data=mutated(NINJA.read_bytes()))
def test_fuzz_ninjaone(data: bytes) -> None:
    only_input_errors(_connector("ninjaone"), data, "devices.json")


@FUZZ
@given(data=mutated(AUTOMATE.read_bytes()))
def test_fuzz_automate(data: bytes) -> None:
    only_input_errors(_connector("connectwise-automate"), data, "computers.csv")
