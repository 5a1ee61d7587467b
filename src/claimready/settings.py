"""The one place for settings.

Sources, highest precedence first: explicit arguments (CLI options),
``CLAIMREADY_*`` environment variables, the config file (TOML), defaults.
The config file is ``$CLAIMREADY_CONFIG`` when set, else
``<data_dir>/claimready.toml`` when it exists.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from claimready.errors import ConfigError

ENV_PREFIX = "CLAIMREADY_"
CONFIG_FILE_NAME = "claimready.toml"


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/claimready``, else ``~/.local/share/claimready``."""
    base = os.environ.get("XDG_DATA_HOME")
    root = Path(base) if base else Path.home() / ".local" / "share"
    return root / "claimready"


class Settings(BaseSettings):
    """Deployment settings shared by every command."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid")

    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default: a SQLite file in the data directory. "
        "PostgreSQL: postgresql+psycopg://user@host:5432/db",
    )
    blob_store: str | None = Field(
        default=None,
        description="Where raw evidence goes: a directory, or s3://bucket/prefix. "
        "Default: <data_dir>/blobs",
    )
    s3_endpoint_url: str | None = None
    ledger_store: str | None = Field(
        default=None,
        description="Where published ledger objects (tiles, bundles, checkpoints) go: a "
        "directory, or s3://bucket/prefix. Default: <data_dir>/ledger",
    )
    ledger_latest_bucket: str | None = Field(
        default=None,
        description="With an S3 ledger store in an Object Lock bucket: a bucket without "
        "Object Lock for the overwritten latest-checkpoint pointer",
    )
    deployment: str = Field(
        default="local",
        description="Names this deployment in ledger origins: <deployment>/claimready/<tenant>",
    )
    retention_days: int = Field(default=2555, ge=1, le=36500)
    tsa_url: str | None = Field(
        default=None,
        description="RFC 3161 timestamp authority stamping every ledger checkpoint",
    )
    tsa_roots: Path | None = Field(
        default=None,
        description="PEM file of the certificates the timestamp authority must chain to "
        "(and any intermediates); required with tsa_url, and to verify timestamps",
    )
    sources_file: Path | None = Field(
        default=None,
        description="YAML file declaring each tenant's sources, schedules and expected "
        "reporting intervals. Default: <data_dir>/sources.yaml",
    )

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @property
    def effective_database_url(self) -> str:
        """The database URL, defaulting to ``sqlite:///<data_dir>/claimready.db``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'claimready.db'}"

    @property
    def effective_blob_store(self) -> str:
        """The blob store location, defaulting to ``<data_dir>/blobs``."""
        return self.blob_store or str(self.data_dir / "blobs")

    @property
    def effective_sources_file(self) -> Path:
        """The sources declaration file, defaulting to ``<data_dir>/sources.yaml``."""
        return self.sources_file or self.data_dir / "sources.yaml"

    @property
    def facts_dir(self) -> Path:
        """Where Parquet fact files live."""
        return self.data_dir / "facts"

    @property
    def ledger_dir(self) -> Path:
        """Where per-tenant ledgers (tiles, bundles, checkpoints) live."""
        return self.data_dir / "ledger"

    @property
    def keys_dir(self) -> Path:
        """Where the ledger signing key ring lives (files are 0600)."""
        return self.data_dir / "keys"


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: config file not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from exc
    section = data.get("claimready", data)
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: [claimready] must be a table")
    return section


def _env_has(name: str) -> bool:
    return f"{ENV_PREFIX}{name.upper()}" in os.environ


def load_settings(
    *, config_file: Path | None = None, overrides: dict[str, Any] | None = None
) -> Settings:
    """Load settings from defaults, the config file, the environment and ``overrides``."""
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    try:
        from_env = Settings(**given)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, "environment")) from exc
    path = config_file or _env_path("CONFIG")
    if path is None:
        candidate = from_env.data_dir / CONFIG_FILE_NAME
        path = candidate if candidate.is_file() else None
    if path is None:
        return from_env
    file_values = _read_config_file(path)
    # The environment and explicit overrides win over the file.
    merged = {k: v for k, v in file_values.items() if not _env_has(k)}
    merged.update(given)
    try:
        return Settings(**merged)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, str(path))) from exc


def _env_path(name: str) -> Path | None:
    value = os.environ.get(f"{ENV_PREFIX}{name}")
    return Path(value).expanduser() if value else None


def _describe(exc: ValidationError, origin: str) -> str:
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "settings"
    return f"{origin}: setting {field!r}: {first['msg']}"
