"""Every finding code has a runbook page, and every page belongs to a code."""

import re
from pathlib import Path

from diagnostics.catalog import CODES, runbook_path

ROOT = Path(__file__).resolve().parent.parent
PAGES = ROOT / "docs" / "findings"


def test_each_code_has_a_page_and_each_page_a_code() -> None:
    pages = {p.stem for p in PAGES.glob("*.md") if p.name != "README.md"}
    assert pages == set(CODES), (
        f"missing pages: {set(CODES) - pages}; pages without a code: {pages - set(CODES)}"
    )


def test_report_links_point_at_existing_pages() -> None:
    for code in CODES:
        assert (ROOT / runbook_path(code)).is_file()


def test_each_page_names_its_code_and_has_numbered_steps_and_a_source() -> None:
    for code in CODES:
        text = (ROOT / runbook_path(code)).read_text(encoding="utf-8")
        assert text.startswith(f"# {code}"), code
        assert re.search(r"^1\. ", text, re.MULTILINE), f"{code}: no numbered remediation steps"
        assert "## Source" in text, f"{code}: no source section"
        severity = CODES[code].severity
        assert severity in text.lower(), f"{code}: page does not state severity {severity}"


def test_the_index_lists_every_code() -> None:
    index = (PAGES / "README.md").read_text(encoding="utf-8")
    for code in CODES:
        assert code in index, code
