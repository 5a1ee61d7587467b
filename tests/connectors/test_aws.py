"""AWS credential report and Security Hub findings: fixtures, errors, fuzzing, and live
collection against a real moto server on loopback."""

from __future__ import annotations

import base64
import csv
import io
import json
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import boto3
import pytest
from hypothesis import given, settings

from claimready.assets.identity import Identifier
from claimready.connectors.builtin.aws import (
    SIGNAL_CHECK_FAILED,
    SIGNAL_CHECK_PASSED,
    SIGNAL_ENABLED,
    SIGNAL_FAILED_COUNT,
    SIGNAL_IS_ROOT,
    SIGNAL_LAST_SIGN_IN,
    SIGNAL_MFA_REGISTERED,
    AwsCredentialReportConnector,
    AwsSecurityHubConnector,
    IamClient,
    SecurityHubClient,
    collect_credential_report,
    collect_security_hub_findings,
)
from claimready.connectors.registry import detect_connector
from claimready.timeutil import parse_utc
from tests.connectors.helpers import raises_input_error
from tests.connectors.test_live import (
    AWS,
    assert_well_formed,
    facts_of,
    mutated,
    normalize_path,
    only_input_errors,
)

REPORT_CSV = AWS / "credential_report.csv"
REPORT_JSON = AWS / "credential_report.json"
FINDINGS = AWS / "securityhub_findings.json"
IAM = AwsCredentialReportConnector()
HUB = AwsSecurityHubConnector()
NOT_TIMES = {"N/A", "no_information", "not_supported"}
DUMMY_PASSWORD = "Passw0rd!long-enough"  # noqa: S105 - a moto-only login profile


def _rows() -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(REPORT_CSV.read_text())))


def _time(text: Any) -> datetime | None:
    try:
        return parse_utc(text)
    except (ValueError, TypeError, AttributeError):
        return None


@pytest.mark.parametrize("path", [REPORT_CSV, REPORT_JSON])
def test_credential_report_facts(path: Path) -> None:
    rows = _rows()
    result = normalize_path(IAM, path)
    assert_well_formed(result)
    assert result.record_count == len(rows) == len(result.observations)
    assert facts_of(result, SIGNAL_IS_ROOT) == {
        r["arn"]: r["user"] == "<root_account>" for r in rows
    }
    assert facts_of(result, SIGNAL_MFA_REGISTERED) == {
        r["arn"]: r["mfa_active"] == "true" for r in rows if r["mfa_active"] in ("true", "false")
    }
    assert facts_of(result, SIGNAL_ENABLED) == {
        r["arn"]: r["user"] == "<root_account>"
        or "true" in (r["password_enabled"], r["access_key_1_active"], r["access_key_2_active"])
        for r in rows
    }
    assert facts_of(result, SIGNAL_LAST_SIGN_IN) == {
        r["arn"]: parse_utc(r["password_last_used"])
        for r in rows
        if r["password_last_used"] not in NOT_TIMES
    }
    assert [w.field for w in result.warnings] == [
        "mfa_active" for r in rows if r["mfa_active"] not in ("true", "false")
    ]
    for observation in result.observations:
        assert Identifier("cloud_id", observation.key.lower()) in observation.identifiers
        assert observation.kind == "user"


def test_report_generation_time_dates_the_json_form() -> None:
    generated = parse_utc(json.loads(REPORT_JSON.read_text())["GeneratedTime"])
    assert normalize_path(IAM, REPORT_JSON).observed_to == generated
    # The bare CSV has no generation time: the newest time it mentions is the lower bound.
    mentioned = [t for r in _rows() for v in r.values() if v not in NOT_TIMES and (t := _time(v))]
    assert normalize_path(IAM, REPORT_CSV).observed_to == max(mentioned)


def _expected_checks() -> tuple[dict[str, set[str]], dict[str, set[str]], set[str]]:
    failed: dict[str, set[str]] = defaultdict(set)
    passed: dict[str, set[str]] = defaultdict(set)
    undated: set[str] = set()
    for f in json.loads(FINDINGS.read_text())["Findings"]:
        status = f.get("Compliance", {}).get("Status")
        if f["RecordState"] == "ARCHIVED" or status is None:
            continue
        targets = [r["Id"] for r in f["Resources"]]
        if _time(f["UpdatedAt"]) is None:
            undated.update(targets)
            continue
        for target in targets:
            check = f["Compliance"].get("SecurityControlId") or f["GeneratorId"]
            if status == "FAILED":
                failed[target].add(check)
            elif status == "PASSED":
                passed[target].add(check)
    return failed, passed, undated


def test_security_hub_checks_per_resource() -> None:
    failed, passed, undated = _expected_checks()
    result = normalize_path(HUB, FINDINGS)
    assert_well_formed(result)
    got_failed: dict[str, set[str]] = defaultdict(set)
    got_passed: dict[str, set[str]] = defaultdict(set)
    for fact in result.facts:
        if fact.signal == SIGNAL_CHECK_FAILED:
            got_failed[fact.asset_key].add(str(fact.value))
        if fact.signal == SIGNAL_CHECK_PASSED:
            got_passed[fact.asset_key].add(str(fact.value))
    assert got_failed == failed and got_passed == passed
    resources = set(failed) | set(passed) | undated
    assert {o.key for o in result.observations} >= resources
    assert all(o.kind == "cloud_resource" for o in result.observations)
    # A resource with an undated finding gets no count: it stays unverified, not "0 failed".
    assert facts_of(result, SIGNAL_FAILED_COUNT) == {
        r: len(failed.get(r, set())) for r in resources - undated
    }
    assert [w.field for w in result.warnings] == ["UpdatedAt"] * len(
        [f for f in json.loads(FINDINGS.read_text())["Findings"] if _time(f["UpdatedAt"]) is None]
    )


def test_detection_observed_at_and_determinism() -> None:
    for path, kind in (
        (REPORT_CSV, "aws_iam"),
        (REPORT_JSON, "aws_iam"),
        (FINDINGS, "aws_securityhub"),
    ):
        assert detect_connector(name=path.name, head=path.read_bytes()[:4096]).kind == kind
        connector = IAM if kind == "aws_iam" else HUB
        moment = datetime(2025, 3, 1, tzinfo=UTC)
        assert {f.observed_at for f in normalize_path(connector, path, moment).facts} == {moment}
        assert normalize_path(connector, path) == normalize_path(connector, path)


@pytest.mark.parametrize(
    ("connector", "text", "record", "field", "message"),
    [
        (IAM, "", None, None, "empty credential report"),
        (IAM, "user,arn,mfa_active\nx,y,true\n", None, "password_enabled", "missing column"),
        (IAM, "user,arn,password_enabled,mfa_active\nbob,arn:x,true\n", "line 2", None, "columns"),
        (IAM, "user,arn,password_enabled,mfa_active\nbob,,true,true\n", "line 2", "arn", "missing"),
        (IAM, '{"Content": "%%%", "ReportFormat": "text/csv"}', "report", "Content", "base64"),
        (HUB, '{"findings": []}', None, "Findings", "'Findings' array"),
        (HUB, '{"Findings": [{"Id": "f", "GeneratorId": "g"}]}', 0, "Resources", "missing"),
        (
            HUB,
            '{"Findings": [{"Id": "f", "GeneratorId": "g", "Resources": [{"Type": "x"}]}]}',
            0,
            "Resources[0].Id",
            "missing",
        ),
    ],
)
def test_wrong_shapes_name_file_record_and_field(
    tmp_path: Path, connector: Any, text: str, record: Any, field: str | None, message: str
) -> None:
    path = tmp_path / "aws.json"
    path.write_text(text)
    with raises_input_error(file="aws.json", record=record, field=field, match=message):
        normalize_path(connector, path)


@settings(max_examples=50, deadline=None)
@given(data=mutated(REPORT_CSV.read_bytes()))
def test_fuzz_report_csv(data: bytes) -> None:
    only_input_errors(IAM, data, "report.csv")


@settings(max_examples=30, deadline=None)
@given(data=mutated(REPORT_JSON.read_bytes()))
def test_fuzz_report_json(data: bytes) -> None:
    only_input_errors(IAM, data, "report.json")


@settings(max_examples=50, deadline=None)
@given(data=mutated(FINDINGS.read_bytes()))
def test_fuzz_findings(data: bytes) -> None:
    only_input_errors(HUB, data, "findings.json")


# Live collection against moto on loopback ---------------------------------------------------


def _client(service: str, endpoint: str) -> Any:
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - moto's dummy credentials
    )


def test_collect_credential_report_from_moto(aws_endpoint: str, tmp_path: Path) -> None:
    iam = _client("iam", aws_endpoint)
    iam.create_user(UserName="console-user")
    iam.create_login_profile(UserName="console-user", Password=DUMMY_PASSWORD)
    iam.create_user(UserName="ci-deploy")
    iam.create_access_key(UserName="ci-deploy")
    iam.create_user(UserName="mfa-user")
    iam.create_login_profile(UserName="mfa-user", Password=DUMMY_PASSWORD)
    device = iam.create_virtual_mfa_device(VirtualMFADeviceName="mfa-user")["VirtualMFADevice"]
    iam.enable_mfa_device(
        UserName="mfa-user",
        SerialNumber=device["SerialNumber"],
        AuthenticationCode1="123456",
        AuthenticationCode2="654321",
    )
    waits: list[float] = []
    data = collect_credential_report(cast(IamClient, iam), sleep=waits.append)
    path = tmp_path / "credential-report.json"
    path.write_bytes(data)
    assert detect_connector(name=path.name, head=data[:4096]).kind == "aws_iam"
    result = normalize_path(IAM, path)
    users = iam.list_users()["Users"]
    assert {o.key for o in result.observations} == {u["Arn"] for u in users}
    mfa = {
        u["Arn"]: bool(iam.list_mfa_devices(UserName=u["UserName"])["MFADevices"]) for u in users
    }
    assert facts_of(result, SIGNAL_MFA_REGISTERED) == mfa

    def _enabled(name: str) -> bool:
        keys = iam.list_access_keys(UserName=name)["AccessKeyMetadata"]
        try:
            iam.get_login_profile(UserName=name)
        except iam.exceptions.NoSuchEntityException:
            return any(k["Status"] == "Active" for k in keys)
        return True

    assert facts_of(result, SIGNAL_ENABLED) == {u["Arn"]: _enabled(u["UserName"]) for u in users}
    content = base64.b64decode(json.loads(data)["Content"])
    assert content.startswith(b"user,arn,")


def test_collect_security_hub_findings_from_moto(aws_endpoint: str, tmp_path: Path) -> None:
    hub = _client("securityhub", aws_endpoint)
    hub.enable_security_hub()
    findings = json.loads(FINDINGS.read_text())["Findings"]
    hub.batch_import_findings(Findings=findings)
    data = collect_security_hub_findings(cast(SecurityHubClient, hub), filters={}, page_size=2)
    collected = json.loads(data)["Findings"]
    assert sorted(f["Id"] for f in collected) == sorted(f["Id"] for f in findings)
    path = tmp_path / "findings.json"
    path.write_bytes(data)
    assert detect_connector(name=path.name, head=data[:4096]).kind == "aws_securityhub"
    from_moto = normalize_path(HUB, path)
    from_file = normalize_path(HUB, FINDINGS)
    assert sorted(map(repr, from_moto.facts)) == sorted(map(repr, from_file.facts))
