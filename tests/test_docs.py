"""The documentation keeps up with the code: settings, commands and connectors."""

from __future__ import annotations

from pathlib import Path

import typer

from claimready.cli.app import cli
from claimready.connectors.catalog import markdown
from claimready.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_in_the_readme() -> None:
    for name in Settings.model_fields:
        assert f"`CLAIMREADY_{name.upper()}`" in README, f"setting {name} is undocumented"


def test_every_command_is_in_the_readme() -> None:
    command = typer.main.get_command(cli)
    names = getattr(command, "commands", {})
    assert names, "the CLI has no commands"
    for name in names:
        assert f"claimready {name}" in README, f"command {name} is undocumented"


def test_the_connector_catalog_in_the_docs_is_current() -> None:
    text = (ROOT / "docs" / "connectors.md").read_text(encoding="utf-8")
    start = text.index("<!-- catalog:start -->") + len("<!-- catalog:start -->")
    end = text.index("<!-- catalog:end -->")
    assert text[start:end].strip() == markdown().strip(), (
        "docs/connectors.md is out of date: paste in `claimready connectors --markdown`"
    )
