"""Typed errors. Each carries what a user needs to act on it.

The CLI turns any :class:`ClaimreadyError` into one line on stderr and a
non-zero exit; the HTTP layer turns it into a 4xx. Nothing else should be
raised across a domain boundary for a user's mistake.
"""

from __future__ import annotations

from pathlib import Path


class ClaimreadyError(Exception):
    """Base class for every error a user may see."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(ClaimreadyError):
    """The command was called the wrong way (bad option value, missing argument)."""

    exit_code = 2


class ConfigError(ClaimreadyError):
    """Settings could not be loaded or are inconsistent."""


class NotFoundError(ClaimreadyError):
    """A named thing (tenant, source, control, evidence) does not exist."""


class ConflictError(ClaimreadyError):
    """The operation contradicts what is already stored (duplicate name, shortened retention)."""


class StorageError(ClaimreadyError):
    """A store (database, blob store, ledger, facts) could not be read or written."""


class InputError(ClaimreadyError):
    """Evidence or another input file is malformed.

    Names the file, and where known the record (index or id) and field, plus
    what was expected and what was found.
    """

    def __init__(
        self,
        problem: str,
        *,
        file: str | Path | None = None,
        record: str | int | None = None,
        field: str | None = None,
    ) -> None:
        self.file = str(file) if file is not None else None
        self.record = record
        self.field = field
        self.problem = problem
        super().__init__(self._compose())

    def _compose(self) -> str:
        where: list[str] = []
        if self.file is not None:
            where.append(self.file)
        if self.record is not None:
            where.append(f"record {self.record}")
        if self.field is not None:
            where.append(f"field {self.field!r}")
        return f"{': '.join(where)}: {self.problem}" if where else self.problem


class VerificationError(ClaimreadyError):
    """Stored evidence, a ledger structure, a proof or a signature does not verify.

    ``subject`` names exactly what failed (an entry index, a blob hash, a tile
    path, a checkpoint) so a reviewer can find it.
    """

    def __init__(self, problem: str, *, subject: str | None = None) -> None:
        self.subject = subject
        self.problem = problem
        super().__init__(f"{subject}: {problem}" if subject else problem)


class CollectionError(ClaimreadyError):
    """A live source could not be collected: refused credentials, HTTP error, bad body.

    ``source`` names the endpoint (scheme, host and path; never a credential).
    """

    def __init__(self, problem: str, *, source: str | None = None) -> None:
        self.source = source
        self.problem = problem
        super().__init__(f"{source}: {problem}" if source else problem)
