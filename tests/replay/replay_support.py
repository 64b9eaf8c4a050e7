"""Running the monitor command in process, for the replay tests."""

from __future__ import annotations

import contextlib
import io
import json
from typing import Any

from diagnostics.cli import main


def run_monitor(*args: str) -> tuple[int, dict[str, Any]]:
    """`python -m diagnostics monitor ... --format json`, in process; (exit status, JSON)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["monitor", *args, "--format", "json"])
    return code, json.loads(out.getvalue())
