"""A part of the tenant that cannot be read fails the checks that need it — never a silent pass —
while the rest of the diagnosis still runs."""

from __future__ import annotations

import asyncio
from pathlib import Path

from diagnostics.checks import CHECKS
from diagnostics.engine import needs_attention
from diagnostics.service import scan
from simulator import Simulator, load_fixture
from simulator.connect import connection

SAMPLE = Path(__file__).resolve().parent.parent / "simulator" / "samples" / "sample-tenant.json"


def test_notes_without_read_privilege_fail_their_checks_and_the_others_run() -> None:
    with Simulator(load_fixture(SAMPLE)) as sim:
        sim.inject(status=403, path_prefix="/api/data/v9.2/annotations", in_batch=True)
        report = asyncio.run(scan(connection(sim), sim.now))
    failed = {f.evidence["check"]: f for f in report.findings if f.code == "CHECK_FAILED"}
    assert set(failed) == {c.name for c in CHECKS if "notes" in c.needs}
    assert all(
        "403" in f.evidence["why"] and f.evidence["missing_data"] == ["notes"] for f in failed.values()
    )
    codes = {f.code for f in report.findings}
    assert not codes & {"US_BLOCKED_UNRESOLVED_CUSTOMER", "US_BLOCKED_UNRESOLVED_SUBSCRIPTION"}
    assert {"BILLING_SCHEDULE_ERROR", "SUB_NOT_ON_ACTIVE_CONTRACT"} <= codes  # checks without notes ran
    assert needs_attention(report)
