"""Console output: Rich for people, JSON for scripts, one-line errors on stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from claimready.timeutil import format_utc

STATUS_STYLE = {"pass": "bold green", "fail": "bold red", "unverified": "bold yellow"}


def stdout() -> Console:
    """A console on standard output."""
    return Console(highlight=False, soft_wrap=False)


def stderr() -> Console:
    """A console on standard error, for progress, warnings and errors."""
    return Console(stderr=True, highlight=False)


def _default(value: object) -> str:
    if isinstance(value, datetime):
        return format_utc(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def emit_json(value: Any) -> None:
    """Write ``value`` as indented JSON to standard output."""
    sys.stdout.write(json.dumps(value, indent=2, default=_default, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def error(message: str) -> None:
    """One line on standard error, without markup interpretation."""
    stderr().print(f"error: {message}", markup=False, soft_wrap=True)


def warn(message: str) -> None:
    """One warning line on standard error."""
    stderr().print(f"warning: {message}", markup=False, soft_wrap=True, style="yellow")


def status_text(status: str) -> str:
    """A status word with its colour, as Rich markup."""
    return f"[{STATUS_STYLE.get(status, 'bold')}]{status}[/]"


@contextmanager
def progress(*, enabled: bool) -> Iterator[Progress]:
    """A progress bar on stderr (hidden when not wanted, e.g. with --json or no terminal)."""
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=stderr(),
        disable=not enabled,
        transient=True,
    )
    with bar:
        yield bar
