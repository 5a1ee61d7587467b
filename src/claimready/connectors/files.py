"""Safe readers for evidence files: JSON documents and zip archives."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from claimready.errors import InputError

MAX_MEMBER_BYTES = 512 * 1024 * 1024
MAX_COMPRESSION_RATIO = 200
ZIP_SIGNATURE = b"PK\x03\x04"


def parse_json(data: bytes, *, file: str) -> Any:
    """Parse a JSON document; InputError with line and column when it is not JSON."""
    try:
        return json.loads(data)
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text (byte {exc.start})", file=file) from exc
    except json.JSONDecodeError as exc:
        raise InputError(
            f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}", file=file
        ) from exc
    except RecursionError as exc:
        raise InputError("JSON nesting is too deep", file=file) from exc


def is_zip(path: Path) -> bool:
    """True when the file starts with a zip signature."""
    with path.open("rb") as handle:
        return handle.read(len(ZIP_SIGNATURE)) == ZIP_SIGNATURE


def read_zip_member(path: Path, *, display_name: str, suffix: str) -> tuple[str, bytes] | None:
    """The first member whose name ends with ``suffix``, read with size and ratio limits.

    Returns None when no member matches. A corrupt archive, an encrypted member
    or a member that would expand beyond the limits (a zip bomb) is an InputError.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.is_dir() or not info.filename.lower().endswith(suffix.lower()):
                    continue
                _check_member(info, display_name=display_name)
                with archive.open(info) as member:
                    data = member.read(MAX_MEMBER_BYTES + 1)
                if len(data) > MAX_MEMBER_BYTES:
                    raise InputError("archive member is too large", file=display_name)
                return f"{display_name}!{info.filename}", data
    except zipfile.BadZipFile as exc:
        raise InputError(f"not a valid zip archive: {exc}", file=display_name) from exc
    except (RuntimeError, NotImplementedError, EOFError, OSError) as exc:
        raise InputError(f"cannot read zip archive: {exc}", file=display_name) from exc
    return None


def _check_member(info: zipfile.ZipInfo, *, display_name: str) -> None:
    where = f"{display_name}!{info.filename}"
    if info.flag_bits & 0x1:
        raise InputError("archive member is encrypted", file=where)
    if info.file_size > MAX_MEMBER_BYTES:
        raise InputError(f"archive member expands to {info.file_size} bytes", file=where)
    if info.compress_size and info.file_size / info.compress_size > MAX_COMPRESSION_RATIO:
        raise InputError("archive member has an implausible compression ratio", file=where)
