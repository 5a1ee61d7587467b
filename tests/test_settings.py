"""Settings: defaults, the config file, the environment and explicit overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from claimready.errors import ConfigError
from claimready.settings import load_settings


def test_defaults_put_everything_in_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLAIMREADY_DATA_DIR", str(tmp_path))
    settings = load_settings()
    assert settings.effective_database_url == f"sqlite:///{tmp_path / 'claimready.db'}"
    assert settings.effective_blob_store == str(tmp_path / "blobs")
    assert settings.facts_dir == tmp_path / "facts"


def test_precedence_is_override_then_environment_then_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "claimready.toml"
    config.write_text(
        '[claimready]\ndeployment = "from-file"\nretention_days = 30\n'
        'database_url = "sqlite:////from/file.db"\n'
    )
    monkeypatch.setenv("CLAIMREADY_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CLAIMREADY_RETENTION_DAYS", "60")
    settings = load_settings(overrides={"database_url": "sqlite:////override.db"})
    assert settings.deployment == "from-file"
    assert settings.retention_days == 60
    assert settings.database_url == "sqlite:////override.db"


def test_bad_config_file_names_file_and_setting(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[claimready]\nretention_days = -4\n")
    with pytest.raises(ConfigError, match=r"bad\.toml: setting 'retention_days'"):
        load_settings(config_file=config, overrides={"data_dir": tmp_path})
    config.write_text("not = [toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(config_file=config, overrides={"data_dir": tmp_path})


def test_unknown_setting_is_rejected(tmp_path: Path) -> None:
    config = tmp_path / "typo.toml"
    config.write_text('[claimready]\ndatabse_url = "sqlite://"\n')
    with pytest.raises(ConfigError, match="databse_url"):
        load_settings(config_file=config, overrides={"data_dir": tmp_path})
