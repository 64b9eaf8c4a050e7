"""`python -m diagnostics demo` (`make demo`): the sample tenant's month, told as a story, in well
under a minute."""

from __future__ import annotations

import time

import pytest

from diagnostics.cli import main

OCTOBER = "[Microsoft G0113579246 2026-10]"


def test_the_demo_tells_the_sample_tenants_month(capsys: pytest.CaptureFixture[str]) -> None:
    started = time.perf_counter()
    assert main(["demo"]) == 0
    assert time.perf_counter() - started < 60
    story = capsys.readouterr().out
    days = {block.split("\n", 1)[0]: block for block in story.split("\n\n")}

    blocked = "Usage import blocked: 2 unresolved customer references"
    assert f"new      error: {blocked} {OCTOBER}" in days["Thu 12 Nov 2026"]
    assert "10:20  Dana in billing maps Tailspin Toys' provider account" in days["Fri 13 Nov 2026"]
    # The day after the fixes the monitor sees every reference resolve, and asks for the re-import.
    saturday = days["Sat 14 Nov 2026"]
    assert f"resolved error: {blocked} {OCTOBER}" in saturday
    assert "new      warning: Every reference resolves now, but the invoice still has no usage" in saturday
    sunday = days["Sun 15 Nov 2026"]
    assert "05:50  Work 365's daily sync re-imports the October Microsoft invoice" in sunday
    assert "resolved warning: Every reference resolves now" in sunday
    assert "resolved error: Manual provider invoice IND-2026-10 has usage but is still Populating" in story
    assert "Dead-lettered" not in story
    assert "Open at the end (7):" in story
    # The October invoice deleted for its re-import took its note with it: the story says so, by id.
    assert "3a496486-0f7b-56ee-afa0-d8b3fea8006c (record deleted): Usage-invoice diagnosis" in story
