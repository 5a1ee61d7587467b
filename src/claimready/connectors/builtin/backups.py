"""Backup evidence: Veeam sessions, restic snapshots, borg archives and restore-test records.

* **Veeam Backup & Replication REST API** ``GET /api/v1/sessions``: ``data[]``
  of SessionModel with ``id``, ``name`` (the job name), ``jobId``,
  ``sessionType`` (``BackupJob``, ``BackupCopyJob``, ... ; restore and
  infrastructure sessions are skipped), ``state`` (``Stopped`` when finished),
  ``result.result`` (``Success``/``Warning``/``Failed``), ``creationTime`` and
  ``endTime``. One asset per job (``veeam:<jobId>``). Only ``Success`` counts
  as a success; ``Warning`` is reported as the last result but is not one.
* **restic** ``snapshots --json``: an array of snapshots with ``time``,
  ``hostname``, ``paths``, ``tags`` and ``id``. One asset per host name.
* **borg** ``list --json`` / ``info --json``: ``archives[]`` with ``name``,
  ``id``, ``start``, ``end`` (info) or ``time`` (list), and ``repository.id``/
  ``location``. One asset per repository (``borg:<repository id>``).
  Checkpoint archives (``.checkpoint`` in the name) are incomplete and skipped.
  Times without a zone (borg before 1.2 writes local time) are not guessed:
  they are reported as unreadable.
* **restore tests** (claimready's own format; JSON array or CSV with the
  columns ``job,tested_at,result,restored_items,verified_by`` and optional
  ``job_id``): the latest successful test per job.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from datetime import datetime
from typing import Any

from claimready.assets.identity import (
    SOURCE_ID,
    AssetObservation,
    Identifier,
    host_identifiers,
    source_identifier,
)
from claimready.connectors.base import (
    Connector,
    EvidenceFile,
    Normalized,
    RecordWarning,
    SignalSpec,
)
from claimready.connectors.builtin.wazuh import MAX_DOCUMENT_BYTES, load_document
from claimready.connectors.jsonlines import Fields, json_type_name, read_time
from claimready.connectors.registry import hookimpl
from claimready.errors import InputError
from claimready.facts.models import Fact, FactValue
from claimready.timeutil import parse_utc

SIGNAL_LAST_SUCCESS = "backup.last_success"
SIGNAL_LAST_RESULT = "backup.last_result"
SIGNAL_LAST_FAILURE = "backup.last_failure"
SIGNAL_RESTORE_TESTED = "backup.restore_tested"
SPEC_LAST_SUCCESS = SignalSpec(SIGNAL_LAST_SUCCESS, "time", "end of the latest successful backup")
VEEAM_BACKUP_SESSIONS = frozenset(
    {"BackupJob", "BackupCopyJob", "Backup", "BackupCopy", "Job", "AgentBackup", "EndpointBackup"}
)
RESTORE_COLUMNS = ("job", "tested_at", "result", "restored_items", "verified_by")
_SUCCESS_WORDS = frozenset({"success", "succeeded", "passed", "pass", "ok"})


def _result(
    where: str,
    observations: dict[str, AssetObservation],
    facts: list[tuple[str, str, FactValue, datetime]],
    records: int,
    observed_at: datetime | None,
    warnings: list[RecordWarning],
) -> Normalized:
    """Facts stamped with the user's time or the latest time in the content."""
    times = [moment for *_, moment in facts]
    described = observed_at or (max(times) if times else None)
    notes = () if described or not observations else (f"{where}: no readable time in the file",)
    return Normalized(
        observations=tuple(observations.values()),
        facts=tuple(Fact(k, s, v, described or m) for k, s, v, m in facts),
        record_count=records,
        observed_from=min(times) if times and observed_at is None else None,
        observed_to=described,
        media_type="application/json",
        warnings=tuple(warnings),
        notes=notes,
    )


def _top_array(document: Any, *, where: str, key: str | None) -> list[Any]:
    if key is not None:
        top = Fields(document, file=where, record="document")
        return top.need_array(key)
    if not isinstance(document, list):
        raise InputError(f"expected an array, found {json_type_name(document)}", file=where)
    return document


# Veeam ------------------------------------------------------------------------------------


class VeeamConnector(Connector):
    """Veeam Backup & Replication job sessions: last success, last result, last failure."""

    kind = "veeam"
    title = "Veeam Backup & Replication sessions"
    version = "1.0"
    formats = ("REST API GET /api/v1/sessions response (JSON)",)
    signals = (
        SPEC_LAST_SUCCESS,
        SignalSpec(SIGNAL_LAST_RESULT, "text", "result of the latest finished session"),
        SignalSpec(SIGNAL_LAST_FAILURE, "time", "end of the latest failed session"),
    )
    blind_spots = (
        "sessions older than the API's retention or outside the requested page are absent",
        "a job's protected machines are not listed: one asset per job, not per machine",
    )

    def detect(self, *, name: str, head: bytes) -> bool:
        """A sessions response: objects with ``sessionType`` and ``jobId``."""
        return b'"sessionType"' in head and b'"jobId"' in head

    def normalize(
        self, evidence: EvidenceFile, *, observed_at: datetime | None, collected_at: datetime
    ) -> Normalized:
        """One asset per job with its latest success, failure and result."""
        where = evidence.display_name
        sessions = _top_array(load_document(evidence), where=where, key="data")
        warnings: list[RecordWarning] = []
        jobs: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
        observations: dict[str, AssetObservation] = {}
        for index, raw in enumerate(sessions):
            session = Fields(raw, file=where, record=index)
            found = _veeam_session(session, warnings)
            if found is None:
                continue
            job_id, name, end, result = found
            observations.setdefault(
                job_id,
                AssetObservation(job_id, "backup_job", name, (source_identifier("veeam", job_id),)),
            )
            if end is not None:
                jobs[job_id].append((end, result))
        facts: list[tuple[str, str, FactValue, datetime]] = []
        for job_id, runs in jobs.items():
            facts.extend(_veeam_facts(job_id, sorted(runs)))
        return _result(where, observations, facts, len(sessions), observed_at, warnings)


def _veeam_session(
    session: Fields, warnings: list[RecordWarning]
) -> tuple[str, str, datetime | None, str] | None:
    session_type = session.text("sessionType", required=True)
    job_id = session.text("jobId")
    if session_type not in VEEAM_BACKUP_SESSIONS or not job_id:
        return None
    name = str(session.text("name", required=True))
    label = f"{session.record} (id {session.text('id')})"
    result = str(session.need("result").text("result", required=True))
    if session.text("state") != "Stopped":
        return job_id, name, None, result
    end = read_time(session, "endTime", warnings=warnings, label=label)
    return job_id, name, end, result


def _veeam_facts(
    job_id: str, runs: list[tuple[datetime, str]]
) -> list[tuple[str, str, FactValue, datetime]]:
    last_end, last_result = runs[-1]
    facts: list[tuple[str, str, FactValue, datetime]] = [
        (job_id, SIGNAL_LAST_RESULT, last_result, last_end)
    ]
    successes = [end for end, result in runs if result == "Success"]
    failures = [end for end, result in runs if result == "Failed"]
    if successes:
        facts.append((job_id, SIGNAL_LAST_SUCCESS, successes[-1], last_end))
    if failures:
        facts.append((job_id, SIGNAL_LAST_FAILURE, failures[-1], last_end))
    return facts


# restic -----------------------------------------------------------------------------------


class ResticConnector(Connector):
    """restic snapshots: the latest snapshot per host."""

    kind = "restic"
    title = "restic snapshots"
    version = "1.0"
    formats = ("restic snapshots --json output",)
    signals = (SPEC_LAST_SUCCESS,)
    blind_spots = (
        "a snapshot exists only for a completed backup: failed runs leave no trace here",
        "snapshots of one repository only; hosts backed up elsewhere are absent",
    )

    def detect(self, *, name: str, head: bytes) -> bool:
        """A JSON array of snapshots with ``tree``, ``hostname`` and ``paths``."""
        return head.lstrip().startswith(b"[") and all(
            key in head for key in (b'"tree"', b'"hostname"', b'"paths"')
        )

    def normalize(
        self, evidence: EvidenceFile, *, observed_at: datetime | None, collected_at: datetime
    ) -> Normalized:
        """Latest snapshot time per host name."""
        where = evidence.display_name
        snapshots = _top_array(load_document(evidence), where=where, key=None)
        warnings: list[RecordWarning] = []
        latest: dict[str, datetime] = {}
        observations: dict[str, AssetObservation] = {}
        for index, raw in enumerate(snapshots):
            snapshot = Fields(raw, file=where, record=index)
            host = str(snapshot.text("hostname", required=True))
            snapshot.array("paths", required=True)
            label = f"{index} (id {snapshot.text('short_id') or snapshot.text('id')})"
            key = host.lower()
            observations.setdefault(
                key, AssetObservation(key, "endpoint", host, tuple(host_identifiers(host)))
            )
            moment = read_time(snapshot, "time", warnings=warnings, label=label)
            if moment is not None and (key not in latest or moment > latest[key]):
                latest[key] = moment
        facts: list[tuple[str, str, FactValue, datetime]] = [
            (key, SIGNAL_LAST_SUCCESS, moment, moment) for key, moment in latest.items()
        ]
        return _result(where, observations, facts, len(snapshots), observed_at, warnings)


# borg -------------------------------------------------------------------------------------


class BorgConnector(Connector):
    """borg archives: the latest complete archive per repository."""

    kind = "borg"
    title = "BorgBackup archives"
    version = "1.0"
    formats = ("borg list --json output", "borg info --json output")
    signals = (SPEC_LAST_SUCCESS,)
    blind_spots = (
        "an archive exists only for a completed backup: failed runs leave no trace here",
        "borg before 1.2 writes local times without a zone; those archives are unreadable",
    )

    def detect(self, *, name: str, head: bytes) -> bool:
        """JSON with an ``archives`` array and borg's ``barchive``/``repository`` keys."""
        return b'"archives"' in head and (b'"barchive"' in head or b'"repository"' in head)

    def normalize(
        self, evidence: EvidenceFile, *, observed_at: datetime | None, collected_at: datetime
    ) -> Normalized:
        """One asset per repository with the end of its latest complete archive."""
        where = evidence.display_name
        document = load_document(evidence)
        top = Fields(document, file=where, record="document")
        repository = top.need("repository")
        repo_id = str(repository.text("id", required=True))
        location = repository.text("location") or repo_id
        archives = top.objects("archives", required=True)
        warnings: list[RecordWarning] = []
        latest: datetime | None = None
        for archive in archives:
            name = str(archive.text("name", required=True))
            if ".checkpoint" in name:
                continue
            field = (
                "end" if archive.raw.get("end") else "time" if "time" in archive.raw else "start"
            )
            moment = read_time(
                archive, field, warnings=warnings, label=f"{archive.prefix} ({name})"
            )
            if moment is not None and (latest is None or moment > latest):
                latest = moment
        key = f"borg:{repo_id}"
        observations = {
            key: AssetObservation(
                key, "backup_job", location, (source_identifier("borg", repo_id),)
            )
        }
        facts: list[tuple[str, str, FactValue, datetime]] = (
            [(key, SIGNAL_LAST_SUCCESS, latest, latest)] if latest else []
        )
        return _result(where, observations, facts, len(archives), observed_at, warnings)


# Restore tests ----------------------------------------------------------------------------


def _restore_rows(evidence: EvidenceFile) -> list[Any]:
    where = evidence.display_name
    if evidence.path.suffix.lower() == ".csv":
        if evidence.size > MAX_DOCUMENT_BYTES:
            raise InputError("file is too large", file=where)
        try:
            text = evidence.path.read_bytes().decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InputError(f"not UTF-8 text (byte {exc.start})", file=where) from exc
        try:
            reader = csv.DictReader(io.StringIO(text, newline=""))
            missing = [
                c for c in ("job", "tested_at", "result") if c not in (reader.fieldnames or [])
            ]
            if missing:
                raise InputError(f"CSV header lacks columns {missing}", file=where, record="header")
            return list(reader)
        except csv.Error as exc:
            raise InputError(f"not valid CSV: {exc}", file=where) from exc
    document = load_document(evidence)
    if isinstance(document, dict):
        return _top_array(document, where=where, key="restore_tests")
    return _top_array(document, where=where, key=None)


class RestoreTestConnector(Connector):
    """Restore-test records (claimready's own format): latest successful test per job."""

    kind = "restore-test"
    title = "Backup restore tests"
    version = "1.0"
    formats = (
        "JSON array (or {'restore_tests': [...]}) of {job, tested_at, result, restored_items, "
        "verified_by, job_id?}",
        "CSV with columns job,tested_at,result,restored_items,verified_by[,job_id]",
    )
    signals = (SignalSpec(SIGNAL_RESTORE_TESTED, "time", "latest successful restore test"),)
    blind_spots = ("records are written by people: they prove what was recorded, not the restore",)

    def detect(self, *, name: str, head: bytes) -> bool:
        """Records with ``tested_at`` and ``verified_by`` (JSON keys or CSV header)."""
        first = head.lstrip(b"\xef\xbb\xbf").split(b"\n", 1)[0]
        if first.startswith(b"job,") and b"tested_at" in first and b"verified_by" in first:
            return True
        return b'"tested_at"' in head and b'"verified_by"' in head

    def normalize(
        self, evidence: EvidenceFile, *, observed_at: datetime | None, collected_at: datetime
    ) -> Normalized:
        """One asset per job, with the time of its latest successful restore test."""
        where = evidence.display_name
        rows = _restore_rows(evidence)
        warnings: list[RecordWarning] = []
        observations: dict[str, AssetObservation] = {}
        latest: dict[str, datetime] = {}
        for index, raw in enumerate(rows):
            row = Fields(raw, file=where, record=index)
            job = str(row.text("job", required=True)).strip()
            row.text("verified_by", required=True)
            idents = _job_identifiers(row.text("job_id"))
            observations.setdefault(job, AssetObservation(job, "backup_job", job, idents))
            success = str(row.text("result", required=True)).strip().lower() in _SUCCESS_WORDS
            moment = _tested_at(row, warnings)
            if success and moment is not None and (job not in latest or moment > latest[job]):
                latest[job] = moment
        facts: list[tuple[str, str, FactValue, datetime]] = [
            (job, SIGNAL_RESTORE_TESTED, moment, moment) for job, moment in latest.items()
        ]
        return _result(where, observations, facts, len(rows), observed_at, warnings)


def _job_identifiers(job_id: str | None) -> tuple[Identifier, ...]:
    if job_id and ":" in job_id.strip():
        return (Identifier(SOURCE_ID, job_id.strip()),)
    return ()


def _tested_at(row: Fields, warnings: list[RecordWarning]) -> datetime | None:
    text = str(row.text("tested_at", required=True))
    try:
        return parse_utc(text)
    except ValueError:
        warnings.append(RecordWarning(str(row.record), "tested_at", f"unreadable time {text!r}"))
        return None


@hookimpl
def claimready_connectors() -> list[Connector]:
    """Register the backup connectors."""
    return [VeeamConnector(), ResticConnector(), BorgConnector(), RestoreTestConnector()]
