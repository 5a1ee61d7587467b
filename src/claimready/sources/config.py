"""The sources declaration file: what each tenant runs, how often it should report, and
how to collect from it live.

Example (``<data_dir>/sources.yaml``)::

    tenants:
      acme:
        - name: defender
          kind: defender
          expect_every: 26h          # silent for longer => a source.silent fact
          collect:                   # optional: live collection
            every: 6h
            settings: {tenant_id: 00000000-0000-0000-0000-000000000000, client_id: ...}
            secrets: {client_secret: ACME_DEFENDER_SECRET}   # names of environment variables

Secrets are never written in the file: it names environment variables, read
at collection time.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from claimready.errors import ConfigError
from claimready.timeutil import parse_duration


def _duration(value: str) -> str:
    parse_duration(value)
    return value


class CollectConfig(BaseModel):
    """Live collection of one source."""

    model_config = ConfigDict(extra="forbid")

    every: str = Field(description="how often to collect, e.g. 6h")
    settings: dict[str, str] = Field(default_factory=dict)
    secrets: dict[str, str] = Field(
        default_factory=dict, description="secret name -> environment variable holding it"
    )

    _check_every = field_validator("every")(_duration)

    @property
    def interval(self) -> timedelta:
        """The collection interval."""
        return parse_duration(self.every)

    def secret_values(self, *, where: str) -> dict[str, str]:
        """Read the secrets from the environment; ConfigError naming the missing variable."""
        values: dict[str, str] = {}
        for name, variable in self.secrets.items():
            value = os.environ.get(variable)
            if not value:
                raise ConfigError(f"{where}: secret {name!r} needs environment variable {variable}")
            values[name] = value
        return values


class SourceConfig(BaseModel):
    """One declared source of one tenant."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    kind: str = Field(min_length=1, max_length=64)
    expect_every: str | None = Field(
        default=None, description="longest normal gap between two pieces of evidence"
    )
    collect: CollectConfig | None = None

    @field_validator("expect_every")
    @classmethod
    def _check_expect(cls, value: str | None) -> str | None:
        return None if value is None else _duration(value)

    @property
    def expected_interval(self) -> timedelta | None:
        """How long the source may stay quiet before it counts as silent."""
        return None if self.expect_every is None else parse_duration(self.expect_every)


class SourcesFile(BaseModel):
    """The whole declaration: sources by tenant slug."""

    model_config = ConfigDict(extra="forbid")

    tenants: dict[str, list[SourceConfig]] = Field(default_factory=dict)

    def for_tenant(self, slug: str) -> list[SourceConfig]:
        """The sources declared for a tenant (none if it is not in the file)."""
        return self.tenants.get(slug, [])


def load_sources(path: Path) -> SourcesFile:
    """Read and validate the declaration; an absent file declares nothing."""
    if not path.is_file():
        return SourcesFile()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from exc
    except ValueError as exc:  # an impossible date, which PyYAML raises as ValueError
        raise ConfigError(f"{path}: unreadable value: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        declared = SourcesFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ConfigError(f"{path}: {where}: {first['msg']}") from exc
    for slug, items in declared.tenants.items():
        names = [s.name for s in items]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigError(f"{path}: tenants.{slug}: source {duplicates[0]!r} declared twice")
    return declared
