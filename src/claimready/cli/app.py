"""Entry point: global options, command registration and error handling.

Exit codes: 0 success, 1 failure (bad input, missing data, storage errors),
2 usage errors. A traceback is never what a user sees; set
``CLAIMREADY_DEBUG=1`` to get one for a bug report.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from claimready import __version__
from claimready.app import App
from claimready.cli import commands, controls, demo, exports, ledger, sources, tenants
from claimready.cli.output import error
from claimready.errors import ClaimreadyError
from claimready.settings import load_settings

cli = typer.Typer(
    name="claimready",
    help="Make security operations provable to a cyber insurer: collect evidence, keep it "
    "tamper-evident, evaluate controls over time, and report.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
cli.add_typer(tenants.cli, name="tenant")
commands.register(cli)
controls.register(cli)
ledger.register(cli)
sources.register(cli)
demo.register(cli)
exports.register(cli)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"claimready {__version__}")
        raise typer.Exit


@cli.callback()
def root(
    ctx: typer.Context,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="Where claimready keeps its data [env: CLAIMREADY_DATA_DIR; "
            "default: ~/.local/share/claimready]",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="A TOML config file [env: CLAIMREADY_CONFIG; default: <data-dir>/claimready.toml]",
        ),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db "
            "[env: CLAIMREADY_DATABASE_URL; default: SQLite in the data directory]",
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """claimready: evidence an insurer's reviewer can verify."""
    settings = load_settings(
        config_file=config, overrides={"data_dir": data_dir, "database_url": database_url}
    )
    ctx.obj = App(settings=settings)
    ctx.call_on_close(ctx.obj.close)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI and turn every failure into a one-line message and an exit code.

    Usage errors are reported by the command-line parser itself (exit 2).
    """
    try:
        cli(args=argv, prog_name="claimready")
    except ClaimreadyError as exc:
        error(str(exc))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        error("interrupted")
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("CLAIMREADY_DEBUG"):
            raise
        error(f"internal error: {type(exc).__name__}: {exc} (set CLAIMREADY_DEBUG=1 for details)")
        sys.exit(1)
