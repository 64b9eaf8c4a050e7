"""Browser tests: headless Chromium (Debian's package), driven by Playwright's Python client (no
browser download: it is pointed at /usr/bin/chromium), rendering the HTML report and the Teams
cards with the official Adaptive Cards renderer (npm `adaptivecards`, pinned in tools/).

They start what they need and stop it; without Chromium they skip, saying how to install it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "simulator" / "samples" / "sample-tenant.json"
ADAPTIVECARDS = ROOT / "tools" / "node_modules" / "adaptivecards" / "dist" / "adaptivecards.min.js"
SCREENSHOTS = ROOT / "docs" / "screenshots"
# As the machine notes say: without the background-networking flags Chromium keeps trying to reach
# Google's hosts, which this machine's closed network refuses. Playwright gives it a fresh profile.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    executable = chromium()
    if executable is None:
        pytest.skip("Chromium is not installed: apt-get install chromium")
    try:
        from playwright.sync_api import sync_playwright  # noqa: PLC0415
    except ImportError:
        pytest.skip("Playwright is not installed: pip install -r requirements-dev.txt")
    # Package scope: the sync API's event loop lives only while these tests run.
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=FLAGS)
        try:
            yield launched
        finally:
            launched.close()


class Watched:
    """A page with what it logged and asked for: errors and any request that leaves the file."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        self.requests: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("request", lambda r: self.requests.append(r.url))


@pytest.fixture
def page(browser: Any) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1100, "height": 900}, device_scale_factor=1)
    try:
        yield Watched(context.new_page())
    finally:
        context.close()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The command line as a user runs it (its own process: its event loops are not ours)."""
    return subprocess.run(
        [sys.executable, "-m", "diagnostics", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="package")
def sample_report() -> dict[str, Any]:
    """The report JSON of the sample tenant, as `scan --simulate` prints it."""
    done = run_cli("scan", "--simulate", str(SAMPLE), "--format", "json")
    assert done.returncode in (0, 1), done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report
