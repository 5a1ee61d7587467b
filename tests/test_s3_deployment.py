"""A whole deployment on S3 Object Lock: evidence blobs and ledger objects in locked buckets."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from mypy_boto3_s3.client import S3Client

from claimready.app import App
from claimready.db.migrate import upgrade
from claimready.errors import VerificationError
from claimready.evidence.integrity import verify_tenant
from claimready.evidence.service import ingest_file
from claimready.settings import Settings
from claimready.tenants import service as tenants


def _bucket(client: S3Client, *, locked: bool) -> str:
    name = f"claimready-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=locked)
    return name


def test_ingest_and_verify_with_everything_on_locked_buckets(
    settings: Settings, aws_endpoint: str, s3_client: S3Client, defender_sample: Path
) -> None:
    evidence, ledger = _bucket(s3_client, locked=True), _bucket(s3_client, locked=True)
    latest = _bucket(s3_client, locked=False)
    configured = settings.model_copy(
        update={
            "blob_store": f"s3://{evidence}/blobs",
            "ledger_store": f"s3://{ledger}/ledger",
            "ledger_latest_bucket": latest,
            "s3_endpoint_url": aws_endpoint,
            "retention_days": 30,
        }
    )
    app = App(settings=configured)
    try:
        upgrade(app.engine)
        with app.sessions() as session, session.begin():
            tenants.create(session=session, slug="acme")
        result = ingest_file(app=app, tenant_slug="acme", path=defender_sample)
        report = verify_tenant(app=app, tenant_slug="acme")
        assert (report.entries, report.blobs, report.evidence) == (1, 1, 1)
        keys = [o["Key"] for o in s3_client.list_objects_v2(Bucket=ledger)["Contents"]]
        assert "ledger/acme/tile/entries/000.p/1" in keys
        assert any(k.startswith("ledger/acme/checkpoints/") for k in keys)
        head = s3_client.head_object(Bucket=evidence, Key=f"blobs/sha256/{result.sha256}")
        assert head["ObjectLockMode"] == "COMPLIANCE"
        # A new version of a tile (what an attacker with write access could add) is caught.
        s3_client.put_object(Bucket=ledger, Key="ledger/acme/tile/0/000.p/1", Body=b"\x00" * 32)
        with pytest.raises(VerificationError, match="tile"):
            verify_tenant(app=app, tenant_slug="acme")
    finally:
        app.close()
