"""Where a finding's runbook page lives, as an absolute link (DIAG_RUNBOOK_BASE_URL, else a default
that resolves where the reader is): used by the HTML report, the living note and the Teams card."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

RUNBOOK_ROUTE = "/api/runbook"
BASE_SETTING = "DIAG_RUNBOOK_BASE_URL"
_DOCS = Path(__file__).resolve().parent.parent / "docs" / "findings"


def default_runbook_base(environ: Mapping[str, str] | None = None) -> str:
    """Where runbook links point: DIAG_RUNBOOK_BASE_URL when set; else, in Azure, the app's own
    `GET /api/runbook/{code}` route (App Service sets WEBSITE_HOSTNAME); else, in a checkout, the
    pages on this disk (a file: URL, absolute, so a report opens anywhere on this machine)."""
    env = os.environ if environ is None else environ
    configured = (env.get(BASE_SETTING) or "").strip()
    if configured:
        return configured
    host = env.get("WEBSITE_HOSTNAME")
    if host:
        return f"https://{host}{RUNBOOK_ROUTE}"
    return _DOCS.as_uri()


def runbook_url(runbook: str, base: str | None = None) -> str:
    """The absolute link of a finding's runbook page (`runbook` is `docs/findings/CODE.md`)."""
    page = runbook.rsplit("/", 1)[-1]
    return f"{(base or default_runbook_base()).rstrip('/')}/{page}"
