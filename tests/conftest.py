"""Shared fixtures: every database test runs on SQLite and on PostgreSQL.

PostgreSQL comes from ``CLAIMREADY_TEST_DATABASE_URL`` (for example
``postgresql+psycopg://postgres@127.0.0.1:5432/test``); each test gets its own
schema, dropped afterwards. Without the variable the PostgreSQL variants are
skipped with a reason, except under ``CI=true``, where that is a failure.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings
from moto.server import ThreadedMotoServer
from mypy_boto3_s3.client import S3Client
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from claimready.app import App
from claimready.blobs.s3 import make_s3_client
from claimready.cli.app import main
from claimready.db.engine import transaction
from claimready.db.migrate import upgrade
from claimready.settings import Settings
from claimready.tenants import service as tenants
from claimready.tenants.models import Tenant

# Property tests: no per-example deadline (shared CI machines stall), and under
# CI=true a fixed example sequence, so a run is repeatable; locally they explore.
hypothesis_settings.register_profile("claimready", deadline=None, print_blob=True)
hypothesis_settings.register_profile(
    "claimready-ci", parent=hypothesis_settings.get_profile("claimready"), derandomize=True
)
hypothesis_settings.load_profile(
    "claimready-ci" if os.environ.get("CI") == "true" else "claimready"
)

PG_ENV = "CLAIMREADY_TEST_DATABASE_URL"
DUMMY_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
}
SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"
DEFENDER_SAMPLE = SAMPLES / "ms_defender" / "defender.zip"


def _pg_base_url() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{PG_ENV} is not set; CI must run the PostgreSQL tests")
        pytest.skip(f"PostgreSQL tests need {PG_ENV}")
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a new PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'claimready.db'}"
        return
    base = _pg_base_url()
    schema = f"test_{uuid.uuid4().hex[:16]}"
    admin = create_engine(base)
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    except OperationalError as exc:
        admin.dispose()
        pytest.fail(f"PostgreSQL at {PG_ENV} is unreachable: {exc.orig}")
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Settings for an isolated deployment in a temporary directory."""
    return Settings(data_dir=tmp_path / "data", database_url=database_url)


@pytest.fixture
def app(settings: Settings) -> Iterator[App]:
    """An initialized application context."""
    context = App(settings=settings)
    upgrade(context.engine)
    yield context
    context.close()


@pytest.fixture
def make_tenant(app: App) -> Callable[..., Tenant]:
    """A factory for tenants."""

    def make(slug: str = "acme", name: str | None = None) -> Tenant:
        with transaction(app.sessions) as session:
            return tenants.create(session=session, slug=slug, name=name)

    return make


@pytest.fixture
def defender_sample() -> Path:
    """The real Defender for Endpoint export sample."""
    if not DEFENDER_SAMPLE.is_file():
        pytest.fail(f"sample missing: {DEFENDER_SAMPLE}")
    return DEFENDER_SAMPLE


Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(tmp_path: Path, database_url: str, capsys: pytest.CaptureFixture[str]) -> Run:
    """Run ``claimready`` in-process against a temporary deployment."""

    def invoke(*args: str) -> tuple[int, str, str]:
        argv = ["--data-dir", str(tmp_path / "data"), "--database-url", database_url, *args]
        with pytest.raises(SystemExit) as exited:
            main(argv)
        out, err = capsys.readouterr()
        code = exited.value.code
        return (code if isinstance(code, int) else 1), out, err

    return invoke


@pytest.fixture(scope="session")
def aws_endpoint() -> Iterator[str]:
    """URL of a real S3/IAM/Security Hub protocol server (moto) on a free loopback port.

    Tests talk HTTP to it through boto3 with dummy credentials; nothing reaches
    the internet.
    """
    with pytest.MonkeyPatch.context() as patch:
        for name, value in DUMMY_AWS_ENV.items():
            patch.setenv(name, value)
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            yield f"http://{host}:{port}"
        finally:
            server.stop()


@pytest.fixture(scope="session")
def s3_client(aws_endpoint: str) -> S3Client:
    """A boto3 S3 client for the loopback server, with dummy credentials."""
    return make_s3_client(
        endpoint_url=aws_endpoint,
        region="us-east-1",
        access_key_id=DUMMY_AWS_ENV["AWS_ACCESS_KEY_ID"],
        secret_access_key=DUMMY_AWS_ENV["AWS_SECRET_ACCESS_KEY"],
    )
