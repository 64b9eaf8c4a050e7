"""Runbook pages reach the deployed app: served by `GET /api/runbook/{code}` (anonymous), the pages
shipped with it (.funcignore keeps docs/findings), rendered escaped, links between pages working."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import azure.functions as func
import pytest

import function_app
from diagnostics.catalog import CODES, runbook_path
from diagnostics.runbook_pages import blocks, page
from diagnostics.runbooks import default_runbook_base, runbook_url
from tests.functions.test_function_app import trigger_of

ROOT = Path(__file__).resolve().parent.parent


def test_the_route_is_anonymous_get() -> None:
    raw = trigger_of("runbook")
    assert raw["type"] == "httpTrigger"
    assert (raw["route"], raw["methods"], raw["authLevel"]) == ("runbook/{code}", ["GET"], "ANONYMOUS")


async def test_every_code_is_served_with_its_numbered_steps() -> None:
    for code in CODES:
        request = func.HttpRequest(
            "GET", f"/api/runbook/{code}.md", route_params={"code": f"{code}.md"}, body=b""
        )
        response = await function_app.runbook(request)
        assert response.status_code == 200, code
        assert response.headers["Content-Type"] == "text/html; charset=utf-8"
        html = response.get_body().decode()
        assert f"<h1>{code} — " in html
        assert "<ol><li>" in html, f"{code}: the remediation steps are not a numbered list"


@pytest.mark.parametrize("code", ["NOT_A_CODE", "../pyproject.toml", "..%2Fsecrets", ""])
def test_anything_else_is_404_and_reads_no_file(code: str, tmp_path: Path) -> None:
    (tmp_path / "NOT_A_CODE.md").write_text("# leaked\n", encoding="utf-8")
    result = page(code, pages=tmp_path)
    assert result.status == 404
    assert "leaked" not in result.body


def test_a_deployment_without_the_pages_says_so(tmp_path: Path) -> None:
    result = page("PI_IMPORT_ERROR", pages=tmp_path / "missing")
    assert result.status == 503
    assert "deploy docs/findings" in result.body


def test_page_text_is_escaped_and_only_safe_links_become_links(tmp_path: Path) -> None:
    (tmp_path / "PI_IMPORT_ERROR.md").write_text(
        "# PI_IMPORT_ERROR — <script>x</script>\n\n"
        "See [`OTHER`](PI_CHECKSUM_MISMATCH.md), [bad](javascript:alert(1)) and [web](https://example.org/a).\n",
        encoding="utf-8",
    )
    html = page("PI_IMPORT_ERROR", pages=tmp_path).body
    assert "<script>x" not in html
    assert "&lt;script&gt;x&lt;/script&gt;" in html
    assert '<a href="PI_CHECKSUM_MISMATCH.md"><code>OTHER</code></a>' in html
    assert '<a href="https://example.org/a">web</a>' in html
    assert 'href="javascript' not in html


def test_wrapped_lines_join_their_paragraph_or_item() -> None:
    parsed = blocks("Para one\ncontinues.\n\n1. Step one\n   goes on.\n2. Step two\n")
    assert [(b.kind, [str(p) for p in b.parts]) for b in parsed] == [
        ("p", ["Para one continues."]),
        ("ol", ["Step one goes on.", "Step two"]),
    ]


def _ignored(path: str, patterns: list[str]) -> bool:
    """gitignore-style, as Core Tools reads .funcignore: a pattern ending in / ignores a folder."""
    for pattern in patterns:
        folder = pattern.rstrip("/")
        if pattern.endswith("/") and (path.startswith(folder + "/") or f"/{folder}/" in f"/{path}"):
            return True
        if fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(path.split("/", maxsplit=1)[0], pattern):
            return True
    return False


def test_the_pages_and_templates_are_deployed_and_tests_are_not() -> None:
    lines = (ROOT / ".funcignore").read_text(encoding="utf-8").splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    for code in CODES:
        assert not _ignored(runbook_path(code), patterns), code
    assert not _ignored("diagnostics/templates/report.html.j2", patterns)
    assert not _ignored("diagnostics/templates/runbook.html.j2", patterns)
    assert _ignored("docs/screenshots/report.png", patterns)
    assert _ignored("tests/browser/test_cards.py", patterns)


def test_in_azure_a_finding_links_to_the_apps_own_route() -> None:
    base = default_runbook_base({"WEBSITE_HOSTNAME": "contoso-diag.azurewebsites.net"})
    url = runbook_url(runbook_path("PI_IMPORT_ERROR"), base)
    assert url == "https://contoso-diag.azurewebsites.net/api/runbook/PI_IMPORT_ERROR.md"
    # The route's last segment is what the page function is given.
    assert page(url.rsplit("/", 1)[-1]).status == 200


def test_the_index_is_served_too() -> None:
    index = page("README.md")
    assert index.status == 200
    # Its table of codes is a table, each code a link to its page.
    assert "<table>" in index.body
    assert '<a href="PI_IMPORT_ERROR.md">' in index.body
