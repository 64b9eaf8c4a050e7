"""The demo's HTML report in a real browser: it renders without errors, fetches nothing, draws the
timelines (the late contract run red, left of the usage), keeps muted findings collapsed, and fits
the window. The screenshot is kept in docs/screenshots/report.png (the README shows it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import SAMPLE, SCREENSHOTS, Watched, run_cli


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "report.html"
    done = run_cli("monitor", "--simulate", str(SAMPLE), "--html", str(path))
    assert done.returncode in (0, 1), done.stderr
    return path


@pytest.fixture(scope="module")
def scan_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample tenant scanned at its own clock: findings muted by their root cause among them."""
    done = run_cli("scan", "--simulate", str(SAMPLE), "--format", "html")
    assert done.returncode in (0, 1), done.stderr
    path = tmp_path_factory.mktemp("scan") / "scan.html"
    path.write_text(done.stdout, encoding="utf-8")
    return path


@pytest.fixture
def opened(page: Watched, demo_report: Path) -> Watched:
    page.page.goto(demo_report.as_uri())
    page.page.wait_for_load_state("load")
    return page


def test_the_page_renders_without_errors_and_fetches_nothing(opened: Watched) -> None:
    assert opened.errors == []
    assert [url for url in opened.requests if not url.startswith("file://")] == []
    assert opened.page.title().startswith("Work 365 usage-invoice diagnosis")


def test_each_timeline_is_drawn(opened: Watched) -> None:
    boxes: list[dict[str, Any]] = opened.page.eval_on_selector_all(
        "figure.timeline svg",
        "svgs => svgs.map(s => { const b = s.getBoundingClientRect();"
        " return {w: b.width, h: b.height, shapes: s.querySelectorAll('circle, path, rect').length}; })",
    )
    assert len(boxes) >= 2
    for box in boxes:
        assert box["w"] > 800
        assert box["h"] > 80
        assert box["shapes"] > 5


def test_the_contract_that_invoiced_before_the_usage_is_red_and_left_of_it(opened: Watched) -> None:
    facts: dict[str, Any] = opened.page.evaluate(
        """() => {
            const fig = document.querySelector('figure.timeline.has-late');
            const late = fig.querySelector('.pt-invoiced-late circle');
            const usage = fig.querySelector('rect.band-usage');
            return {
                fill: getComputedStyle(late).fill,
                lateX: late.getBoundingClientRect().x,
                usageX: usage.getBoundingClientRect().x,
                headline: fig.querySelector('.headline').innerText,
            };
        }"""
    )
    assert facts["fill"] == "rgb(198, 40, 40)"  # --error
    assert facts["lateX"] < facts["usageX"]
    assert facts["headline"] == "1 contract invoice run(s) before the usage arrived"


def test_muted_findings_are_collapsed_and_name_their_cause(page: Watched, scan_report: Path) -> None:
    page.page.goto(scan_report.as_uri())
    opened = page
    assert opened.errors == []
    muted = opened.page.locator("details.finding.quiet")
    assert muted.count() >= 1
    first = muted.first
    assert first.get_attribute("open") is None
    assert "explained by" in first.locator("summary").inner_text()
    assert not first.locator("ol.steps").first.is_visible()
    # The alerting ones are open, their steps visible and numbered.
    steps = opened.page.locator("details.finding[open] ol.steps").first
    assert steps.is_visible()


def test_runbook_links_are_absolute(opened: Watched) -> None:
    hrefs: list[str] = opened.page.eval_on_selector_all("p.runbook a", "links => links.map(a => a.href)")
    assert hrefs
    for href in hrefs:
        assert href.startswith(("file:///", "https://"))
        assert href.endswith(".md")
    # In a checkout the default points at the pages on this disk: they exist.
    local = [h for h in hrefs if h.startswith("file:///")]
    assert all(Path(h.removeprefix("file://")).is_file() for h in local)


def test_the_page_fits_the_window_and_is_kept_as_a_screenshot(opened: Watched) -> None:
    width = opened.page.evaluate("document.documentElement.scrollWidth")
    assert width <= 1100
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    # The summary and the timelines: what the README shows.
    opened.page.set_viewport_size({"width": 1100, "height": 1650})
    opened.page.screenshot(path=str(SCREENSHOTS / "report.png"))
    assert (SCREENSHOTS / "report.png").stat().st_size > 20_000
