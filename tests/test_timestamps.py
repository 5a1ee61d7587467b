"""A configured timestamp authority stamps every checkpoint ingest publishes; verify checks it."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from claimready.app import App
from claimready.db.migrate import upgrade
from claimready.errors import ConfigError, VerificationError
from claimready.evidence.integrity import verify_tenant
from claimready.evidence.service import ingest_file
from claimready.settings import Settings
from claimready.tenants import service as tenants
from tests.ledger.tsa_support import LocalTSA


def _app(settings: Settings, tsa: LocalTSA, roots: Path) -> App:
    roots.write_bytes(tsa.root.public_bytes(Encoding.PEM))
    configured = settings.model_copy(
        update={"tsa_url": "https://tsa.test.invalid/rfc3161", "tsa_roots": roots}
    )
    app = App(settings=configured)
    app.__dict__["http"] = tsa.client()  # the authority answers over a recorded transport
    upgrade(app.engine)
    return app


def test_ingest_checkpoints_are_timestamped_and_verified(
    settings: Settings, defender_sample: Path, tmp_path: Path
) -> None:
    tsa = LocalTSA.create()
    app = _app(settings, tsa, tmp_path / "tsa-roots.pem")
    try:
        with app.sessions() as session, session.begin():
            tenants.create(session=session, slug="acme")
        ingest_file(app=app, tenant_slug="acme", path=defender_sample)
        report = verify_tenant(app=app, tenant_slug="acme")
        assert report.timestamps >= 1 and tsa.requests
        stranger = LocalTSA.create()
        (tmp_path / "other.pem").write_bytes(stranger.root.public_bytes(Encoding.PEM))
        other = App(settings=app.settings.model_copy(update={"tsa_roots": tmp_path / "other.pem"}))
        with pytest.raises(VerificationError):
            verify_tenant(app=other, tenant_slug="acme")
        other.close()
    finally:
        app.close()


def test_an_authority_without_trust_anchors_is_a_configuration_error(settings: Settings) -> None:
    app = App(settings=settings.model_copy(update={"tsa_url": "https://tsa.test.invalid/"}))
    with pytest.raises(ConfigError, match="tsa_roots"):
        app.open_ledger("acme")
