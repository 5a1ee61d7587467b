"""Amazon Web Services: the IAM credential report and Security Hub findings.

``aws_iam`` reads the IAM credential report (``GetCredentialReport``): the CSV
itself, as downloaded from the console, or the JSON the API returns (as the
AWS CLI prints it: ``{"Content": "<base64 CSV>", "ReportFormat": "text/csv",
"GeneratedTime": "..."}``). CSV columns, one row per IAM user: ``user``
(``<root_account>`` for the account's root user), ``arn``,
``password_enabled`` (``true``/``false``; ``not_supported`` for root),
``password_last_used`` (an ISO 8601 time, ``N/A`` when the user has no
password, ``no_information`` when it was never used since tracking began),
``mfa_active``, ``access_key_1_active`` / ``access_key_2_active`` and their
``..._last_used_date``, ``..._last_rotated``, ``user_creation_time``,
``password_last_changed``.

``aws_securityhub`` reads Security Hub ``GetFindings`` output
(``{"Findings": [...]}``) in the AWS Security Finding Format (ASFF):
``Id``, ``GeneratorId`` (the rule, ``security-control/IAM.6`` or a standard's
rule ARN), ``Compliance.Status`` (``PASSED``, ``FAILED``, ``WARNING``,
``NOT_AVAILABLE``), ``Compliance.SecurityControlId`` (``IAM.6``, with
consolidated control findings), ``Resources[].Id`` (the ARN or resource id
checked), ``RecordState`` (``ACTIVE`` or ``ARCHIVED``), ``UpdatedAt`` (when the
check last ran: the time each fact describes).

Live collection takes a boto3 client as an argument and pages through
``GetFindings``; the credential report is generated, waited for and fetched.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import boto3
import httpx
from botocore.exceptions import BotoCoreError, ClientError

from claimready.assets.identity import CLOUD_ID, AssetObservation, identifier, source_identifier
from claimready.connectors.base import (
    Collected,
    Connector,
    EvidenceFile,
    Normalized,
    RecordWarning,
    SignalSpec,
)
from claimready.connectors.files import parse_json
from claimready.connectors.jsonlines import Fields, read_time
from claimready.connectors.live import Sleep, collected, read_json_evidence
from claimready.connectors.registry import hookimpl
from claimready.errors import CollectionError, InputError
from claimready.facts.models import Fact
from claimready.timeutil import format_utc, parse_utc

IAM_KIND = "aws_iam"
SECURITYHUB_KIND = "aws_securityhub"
SOURCE = "aws"
ROOT_USER = "<root_account>"
MAX_REPORT_BYTES = 64 * 1024 * 1024

SIGNAL_ENABLED = "identity.enabled"
SIGNAL_MFA_REGISTERED = "identity.mfa_registered"
SIGNAL_IS_ROOT = "identity.is_root"
SIGNAL_LAST_SIGN_IN = "identity.last_sign_in"
SIGNAL_CHECK_FAILED = "posture.check_failed"
SIGNAL_CHECK_PASSED = "posture.check_passed"
SIGNAL_FAILED_COUNT = "posture.failed_count"

REQUIRED_COLUMNS = ("user", "arn", "password_enabled", "mfa_active")
NOT_A_TIME = frozenset({"n/a", "no_information", "not_supported", ""})
_TIME_COLUMNS = (
    "user_creation_time",
    "password_last_used",
    "password_last_changed",
    "access_key_1_last_rotated",
    "access_key_1_last_used_date",
    "access_key_2_last_rotated",
    "access_key_2_last_used_date",
)
_CSV_HEAD = re.compile(rb"^(\xef\xbb\xbf)?\s*user,arn,")
_EMPTY_FINDINGS = re.compile(rb'^\s*\{\s*"Findings"\s*:\s*\[\s*\]')


def _resource_observation(resource_id: str, kind: str, name: str | None = None) -> AssetObservation:
    idents = [source_identifier(SOURCE, resource_id)]
    cloud = identifier(CLOUD_ID, resource_id)
    if cloud is not None:
        idents.append(cloud)
    return AssetObservation(
        key=resource_id, kind=kind, display_name=name or resource_id, identifiers=tuple(idents)
    )


# IAM credential report ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Report:
    where: str
    text: str
    generated: datetime | None


class AwsCredentialReportConnector(Connector):
    """IAM users: root, MFA, console and key use, from the credential report."""

    kind = IAM_KIND
    title = "AWS IAM credential report"
    version = "1.0"
    formats = ("credential report CSV", "GetCredentialReport JSON (base64 Content)")
    signals = (
        SignalSpec(SIGNAL_ENABLED, "bool", "the user has a console password or an active key"),
        SignalSpec(SIGNAL_MFA_REGISTERED, "bool", "an MFA device is active (mfa_active)"),
        SignalSpec(SIGNAL_IS_ROOT, "bool", "the row is the account's root user"),
        SignalSpec(SIGNAL_LAST_SIGN_IN, "time", "the last console sign-in (password_last_used)"),
    )
    blind_spots = (
        "IAM Identity Center (SSO) users and federated roles are not IAM users and do not "
        "appear; their MFA is governed by the identity provider",
        "mfa_active does not say whether policies require MFA for API calls with access keys",
        "one report covers one AWS account",
    )

    live = True

    def collect(
        self, *, settings: Mapping[str, str], secrets: Mapping[str, str], http: httpx.Client
    ) -> list[Collected]:
        """The IAM credential report (settings: ``region``, optional ``endpoint_url``)."""
        client = aws_client("iam", settings, secrets)
        return [collected(self.kind, collect_credential_report(client))]

    def detect(self, *, name: str, head: bytes) -> bool:
        """The credential report's CSV header, or the API's JSON with a text/csv report."""
        if _CSV_HEAD.match(head):
            return True
        return b'"ReportFormat"' in head and b'"Content"' in head

    def normalize(
        self, evidence: EvidenceFile, *, observed_at: datetime | None, collected_at: datetime
    ) -> Normalized:
        """One user asset and its identity facts per report row."""
        warnings: list[RecordWarning] = []
        report = _read_report(evidence, warnings)
        rows = _rows(report)
        times = [t for row in rows for t in _row_times(row)]
        described = observed_at or report.generated or (max(times) if times else None)
        at = described or collected_at
        facts: list[Fact] = []
        observations: list[AssetObservation] = []
        for number, row in enumerate(rows, start=2):
            label = f"line {number} (user {row['user']})"
            observations.append(_resource_observation(row["arn"], "user", row["user"]))
            facts.extend(_user_facts(row, at, label, warnings))
        notes = (
            ()
            if described
            else (f"{report.where}: no generation time; taken to describe collection time",)
        )
        return Normalized(
            observations=tuple(observations),
            facts=tuple(facts),
            record_count=len(rows),
            observed_from=None,
            observed_to=described,
            media_type="text/csv",
            warnings=tuple(warnings),
            notes=notes,
        )


def _read_report(evidence: EvidenceFile, warnings: list[RecordWarning]) -> _Report:
    where = evidence.display_name
    with evidence.path.open("rb") as handle:
        data = handle.read(MAX_REPORT_BYTES + 1)
    if len(data) > MAX_REPORT_BYTES:
        raise InputError(f"file is larger than {MAX_REPORT_BYTES} bytes", file=where)
    if data.lstrip().startswith(b"{"):
        fields = Fields(parse_json(data, file=where), file=where, record="report")
        content = str(fields.text("Content", required=True))
        try:
            data = base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise fields.error("Content", "expected base64 text") from exc
        generated = read_time(fields, "GeneratedTime", warnings=warnings)
    else:
        generated = None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text (byte {exc.start})", file=where) from exc
    return _Report(where=where, text=text, generated=generated)


def _rows(report: _Report) -> list[dict[str, str]]:
    reader = csv.reader(io.StringIO(report.text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            raise InputError("empty credential report", file=report.where)
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise InputError(
                f"not a credential report: missing column {missing[0]!r}",
                file=report.where,
                field=missing[0],
            )
        rows: list[dict[str, str]] = []
        for values in reader:
            if not values:
                continue
            if len(values) != len(header):
                raise InputError(
                    f"expected {len(header)} columns, found {len(values)}",
                    file=report.where,
                    record=f"line {reader.line_num}",
                )
            row = dict(zip(header, values, strict=True))
            if not row["arn"].strip() or not row["user"].strip():
                field_name = "arn" if not row["arn"].strip() else "user"
                raise InputError(
                    "missing required value",
                    file=report.where,
                    record=f"line {reader.line_num}",
                    field=field_name,
                )
            rows.append(row)
    except csv.Error as exc:
        raise InputError(
            f"not valid CSV: {exc}", file=report.where, record=f"line {reader.line_num}"
        ) from exc
    return rows


def _report_time(value: str | None) -> datetime | None:
    if value is None or value.strip().lower() in NOT_A_TIME:
        return None
    try:
        return parse_utc(value)
    except ValueError:
        return None


def _row_times(row: Mapping[str, str]) -> list[datetime]:
    found = (_report_time(row.get(column)) for column in _TIME_COLUMNS)
    return [moment for moment in found if moment is not None]


def _flag(value: str | None) -> bool | None:
    text = (value or "").strip().lower()
    return {"true": True, "false": False}.get(text)


def _user_facts(
    row: Mapping[str, str], at: datetime, label: str, warnings: list[RecordWarning]
) -> list[Fact]:
    key = row["arn"]
    is_root = row["user"] == ROOT_USER
    facts = [Fact(key, SIGNAL_IS_ROOT, is_root, at)]
    mfa = _flag(row.get("mfa_active"))
    if mfa is None:
        warnings.append(RecordWarning(label, "mfa_active", f"unreadable {row.get('mfa_active')!r}"))
    else:
        facts.append(Fact(key, SIGNAL_MFA_REGISTERED, mfa, at))
    flags = [_flag(row.get(c)) for c in ("access_key_1_active", "access_key_2_active")]
    if not is_root:
        flags.append(_flag(row.get("password_enabled")))
    if is_root or any(flags):
        facts.append(Fact(key, SIGNAL_ENABLED, True, at))
    elif all(flag is not None for flag in flags):
        facts.append(Fact(key, SIGNAL_ENABLED, False, at))
    else:
        warnings.append(RecordWarning(label, "password_enabled", "cannot tell if enabled"))
    used = row.get("password_last_used")
    last = _report_time(used)
    if last is not None:
        facts.append(Fact(key, SIGNAL_LAST_SIGN_IN, last, at))
    elif used is not None and used.strip().lower() not in NOT_A_TIME:
        warnings.append(RecordWarning(label, "password_last_used", f"unreadable {used!r}"))
    return facts


# Security Hub findings -----------------------------------------------------------------------


@dataclass(slots=True)
class _Resource:
    resource_id: str
    failed: set[str] = field(default_factory=set)
    latest: datetime | None = None
    incomplete: bool = False
    facts: list[Fact] = field(default_factory=list)


class AwsSecurityHubConnector(Connector):
    """Security Hub control findings: failed and passed checks per AWS resource."""

    kind = SECURITYHUB_KIND
    title = "AWS Security Hub findings"
    version = "1.0"
    formats = ('GetFindings JSON {"Findings": [...]} in ASFF',)
    signals = (
        SignalSpec(SIGNAL_CHECK_FAILED, "text", "one per failed check: the control id"),
        SignalSpec(SIGNAL_CHECK_PASSED, "text", "one per passed check: the control id"),
        SignalSpec(SIGNAL_FAILED_COUNT, "number", "distinct failed checks on the resource"),
    )
    blind_spots = (
        "only resources in enabled regions and standards are checked",
        "archived findings (deleted resources, disabled controls) are skipped",
        "findings without a compliance status (GuardDuty, Inspector…) are not posture "
        "checks and are skipped",
    )

    live = True

    def collect(
        self, *, settings: Mapping[str, str], secrets: Mapping[str, str], http: httpx.Client
    ) -> list[Collected]:
        """Active Security Hub findings (settings: ``region``, optional ``endpoint_url``)."""
        client = aws_client("securityhub", settings, secrets)
        return [collected(self.kind, collect_security_hub_findings(client))]

    def detect(self, *, name: str, head: bytes) -> bool:
        """A GetFindings document: a Findings array of ASFF objects."""
        if _EMPTY_FINDINGS.match(head):
            return True
        return b'"Findings"' in head and (
            b'"SchemaVersion"' in head or b'"GeneratorId"' in head or b'"ProductArn"' in head
        )

    def normalize(
        self, evidence: EvidenceFile, *, observed_at: datetime | None, collected_at: datetime
    ) -> Normalized:
        """Per resource: one fact per passed or failed check, and the failed count."""
        where = evidence.display_name
        findings = _findings(read_json_evidence(evidence), where=where)
        warnings: list[RecordWarning] = []
        resources: dict[str, _Resource] = {}
        skipped = 0
        for index, raw in enumerate(findings):
            if not _finding(index, raw, where, observed_at, resources, warnings):
                skipped += 1
        times = [r.latest for r in resources.values() if r.latest is not None]
        described = observed_at or (max(times) if times else None)
        facts: list[Fact] = []
        for resource in resources.values():
            facts.extend(resource.facts)
            if not resource.incomplete:
                when = observed_at or resource.latest or described or collected_at
                facts.append(
                    Fact(resource.resource_id, SIGNAL_FAILED_COUNT, len(resource.failed), when)
                )
        notes = (
            [f"{where}: {skipped} findings are archived or not compliance checks"]
            if skipped
            else []
        )
        if not described:
            notes.append(f"{where}: no readable UpdatedAt; taken to describe collection time")
        return Normalized(
            observations=tuple(_resource_observation(r, "cloud_resource") for r in resources),
            facts=tuple(facts),
            record_count=len(findings),
            observed_from=min(times) if times and not observed_at else None,
            observed_to=described,
            media_type="application/json",
            warnings=tuple(warnings),
            notes=tuple(notes),
        )


def _findings(document: Any, *, where: str) -> list[Any]:
    if not isinstance(document, dict) or "Findings" not in document:
        raise InputError(
            "expected a JSON object with a 'Findings' array (GetFindings output)",
            file=where,
            field="Findings",
        )
    findings = document["Findings"]
    if not isinstance(findings, list):
        raise InputError(
            f"expected an array, found {type(findings).__name__}", file=where, field="Findings"
        )
    return findings


def _finding(
    index: int,
    raw: object,
    where: str,
    observed_at: datetime | None,
    resources: dict[str, _Resource],
    warnings: list[RecordWarning],
) -> bool:
    """Record one finding's facts; False when it is not an active compliance check."""
    fields = Fields(raw, file=where, record=index)
    finding_id = str(fields.text("Id", required=True))
    label = f"{index} (id {finding_id})"
    generator = str(fields.text("GeneratorId", required=True))
    targets = [str(r.text("Id", required=True)) for r in fields.objects("Resources", required=True)]
    compliance = fields.obj("Compliance")
    status = compliance.text("Status") if compliance is not None else None
    if (fields.text("RecordState") or "").upper() == "ARCHIVED" or status is None:
        return False
    check = (compliance.text("SecurityControlId") if compliance else None) or generator
    updated = read_time(fields, "UpdatedAt", warnings=warnings, label=label)
    if updated is None and fields.raw.get("UpdatedAt") is None:
        warnings.append(RecordWarning(label, "UpdatedAt", "missing; the check is undated"))
    for target in targets:
        resource = resources.setdefault(target, _Resource(target))
        if updated is None:
            resource.incomplete = True
            continue
        if resource.latest is None or updated > resource.latest:
            resource.latest = updated
        if status.upper() == "FAILED":
            resource.failed.add(check)
            resource.facts.append(Fact(target, SIGNAL_CHECK_FAILED, check, observed_at or updated))
        elif status.upper() == "PASSED":
            resource.facts.append(Fact(target, SIGNAL_CHECK_PASSED, check, observed_at or updated))
    return True


# Live collection through boto3 ---------------------------------------------------------------


class IamClient(Protocol):
    """The two IAM operations the credential report collector uses (a boto3 IAM client)."""

    def generate_credential_report(self) -> Mapping[str, Any]:
        """Start (or confirm) report generation."""

    def get_credential_report(self) -> Mapping[str, Any]:
        """Fetch the generated report."""


class SecurityHubClient(Protocol):
    """The paginator factory of a boto3 Security Hub client."""

    def get_paginator(self, operation_name: str) -> Any:
        """A paginator for ``operation_name``."""


ACTIVE_FINDINGS: dict[str, Any] = {"RecordState": [{"Value": "ACTIVE", "Comparison": "EQUALS"}]}


def collect_credential_report(
    iam: IamClient, *, attempts: int = 20, delay: float = 2.0, sleep: Sleep = time.sleep
) -> bytes:
    """Generate the credential report, wait for it and return it as GetCredentialReport JSON.

    Needs ``iam:GenerateCredentialReport`` and ``iam:GetCredentialReport``.
    """
    try:
        for attempt in range(attempts):
            state = str(iam.generate_credential_report().get("State", ""))
            if state == "COMPLETE":
                break
            if attempt + 1 == attempts:
                raise CollectionError(f"report still {state} after {attempts} checks", source="iam")
            sleep(delay)
        report = iam.get_credential_report()
    except (ClientError, BotoCoreError) as exc:
        raise CollectionError(f"credential report: {exc}", source="iam") from exc
    content = report.get("Content")
    if not isinstance(content, bytes | str):
        raise CollectionError("GetCredentialReport returned no Content", source="iam")
    raw = content.encode("utf-8") if isinstance(content, str) else content
    generated = report.get("GeneratedTime")
    document = {
        "Content": base64.b64encode(raw).decode("ascii"),
        "ReportFormat": str(report.get("ReportFormat", "text/csv")),
        "GeneratedTime": format_utc(generated) if isinstance(generated, datetime) else generated,
    }
    return json.dumps(document).encode("utf-8")


def collect_security_hub_findings(
    securityhub: SecurityHubClient,
    *,
    filters: Mapping[str, Any] | None = None,
    page_size: int = 100,
) -> bytes:
    """Every finding matching ``filters`` (default: active ones) as ``{"Findings": [...]}``.

    Needs ``securityhub:GetFindings``.
    """
    findings: list[Any] = []
    try:
        paginator = securityhub.get_paginator("get_findings")
        pages = paginator.paginate(
            Filters=dict(ACTIVE_FINDINGS if filters is None else filters),
            PaginationConfig={"PageSize": page_size},
        )
        for page in pages:
            findings.extend(page.get("Findings", []))
    except (ClientError, BotoCoreError) as exc:
        raise CollectionError(f"GetFindings: {exc}", source="securityhub") from exc
    return json.dumps({"Findings": findings}, default=_json_default).encode("utf-8")


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return format_utc(value)
    raise TypeError(f"cannot serialize {type(value).__name__}")


@hookimpl
def claimready_connectors() -> list[Connector]:
    """Register the AWS connectors."""
    return [AwsCredentialReportConnector(), AwsSecurityHubConnector()]


def aws_client(service: str, settings: Mapping[str, str], secrets: Mapping[str, str]) -> Any:
    """A boto3 client for a declared AWS source.

    Settings: ``region``, optional ``endpoint_url`` (S3-compatible or test
    servers); secrets: ``access_key_id``/``secret_access_key`` (and
    ``session_token``), or none to use the usual AWS credential chain.
    """
    session = boto3.session.Session(
        aws_access_key_id=secrets.get("access_key_id"),
        aws_secret_access_key=secrets.get("secret_access_key"),
        aws_session_token=secrets.get("session_token"),
        region_name=settings.get("region") or None,
    )
    return session.client(service, endpoint_url=settings.get("endpoint_url") or None)  # type: ignore[call-overload]
