"""Reading a JSON-object file a user wrote, with one-line errors that name the file and the problem."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from diagnostics.errors import InputError


def read_json_object(path: Path, what: str, error: type[InputError] = InputError) -> dict[str, Any]:
    """The file's JSON object; `error(...)` naming `what` (e.g. "fixture x.json") when it is missing,
    unreadable, not JSON, or not an object."""
    try:
        # utf-8-sig: a byte-order mark (Notepad, PowerShell's Out-File) is read past, not a JSON error.
        raw = json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise error(f"{what} does not exist; check the path") from None
    except json.JSONDecodeError as exc:
        raise error(f"{what} is not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # ValueError: a NUL in the path
        raise error(f"{what} cannot be read: {exc}") from None
    except RecursionError:
        raise error(f"{what} is nested too deeply to be read as JSON") from None
    if not isinstance(raw, dict):
        raise error(f"{what} must hold a JSON object")
    return raw
