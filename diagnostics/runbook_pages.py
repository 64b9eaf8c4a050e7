"""The runbook pages, served by the app itself: `GET /api/runbook/{code}` (or `{code}.md`).

Why the app serves them: the links in the living note, the Teams card and the HTML report must open
wherever the reader is, and the project has no public documentation site; the Function app is the
one address every reader of a note can reach. The pages (docs/findings/*.md) are deployed with the
app (.funcignore keeps them) and rendered here as a small HTML page: headings, lists, paragraphs,
links between pages, code and bold — everything escaped (Jinja2 auto-escaping), nothing fetched.

Pure apart from reading the page file: `page(code)` returns the HTTP status and body.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from markupsafe import Markup, escape

from diagnostics.catalog import CODES
from diagnostics.render_html import environment

PAGES = Path(__file__).resolve().parent.parent / "docs" / "findings"
INDEX = "README"
_INLINE = re.compile(r"`([^`]+)`|\*\*([^*]+)\*\*|\[([^\]]+)\]\(([^)\s]+)\)")
# A link target the page may carry: another runbook page, or an absolute web address.
_SAFE_HREF = re.compile(r"(?:[A-Z_]+\.md|README\.md|https://[^\s\"'<>]+)")


@dataclass(frozen=True)
class Page:
    status: int
    body: str
    content_type: str = "text/html; charset=utf-8"


@dataclass
class Block:
    kind: str  # h1 h2 h3 p ol ul table
    parts: list[Markup] = field(default_factory=list)
    rows: list[list[Markup]] = field(default_factory=list)  # a table's, the first is its header


def inline(text: str) -> Markup:
    """Markdown's inline code, bold and links; the rest escaped."""
    out: list[str] = []
    last = 0
    for match in _INLINE.finditer(text):
        out.append(escape(text[last : match.start()]))
        code, bold, label, href = match.groups()
        if code is not None:
            out.append(Markup("<code>{}</code>").format(code))
        elif bold is not None:
            out.append(Markup("<b>{}</b>").format(bold))
        elif _SAFE_HREF.fullmatch(href):
            out.append(Markup('<a href="{}">{}</a>').format(href, inline(label)))
        else:
            out.append(escape(match.group(0)))
        last = match.end()
    out.append(escape(text[last:]))
    return Markup("").join(out)


def blocks(markdown: str) -> list[Block]:
    """The block structure of a runbook page: headings, paragraphs, numbered and bulleted lists."""
    out: list[Block] = []
    for raw in markdown.splitlines():
        line = raw.rstrip()
        heading = re.match(r"(#{1,3}) (.*)", line)
        item = re.match(r"(\d+\.|[-*]) (.*)", line.lstrip())
        if not line.strip():
            out.append(Block("gap"))
        elif line.startswith("|"):
            _table_row(out, line)
        elif heading:
            out.append(Block(f"h{len(heading.group(1))}", [inline(heading.group(2))]))
        elif item:
            kind = "ol" if item.group(1)[0].isdigit() else "ul"
            if not out or out[-1].kind != kind:
                out.append(Block(kind))
            out[-1].parts.append(inline(item.group(2)))
        elif out and out[-1].parts and (out[-1].kind == "p" or raw.startswith(" ")):
            # A continuation line of the paragraph or list item above.
            out[-1].parts[-1] = Markup("{} {}").format(out[-1].parts[-1], inline(line.strip()))
        else:
            out.append(Block("p", [inline(line)]))
    return [b for b in out if b.kind != "gap"]


def _table_row(out: list[Block], line: str) -> None:
    cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
    if all(re.fullmatch(r":?-+:?", cell) for cell in cells):
        return  # the header's separator row
    if not out or out[-1].kind != "table":
        out.append(Block("table"))
    out[-1].rows.append([inline(cell) for cell in cells])


def page(code: str, pages: Path = PAGES) -> Page:
    """The runbook page of `code` (a finding code, `README` for the index; `.md` allowed)."""
    name = code.removesuffix(".md")
    if name not in CODES and name != INDEX:
        return Page(
            404, f"No runbook page {code!r}: give a finding code, e.g. PI_IMPORT_ERROR.\n", "text/plain"
        )
    try:
        markdown = (pages / f"{name}.md").read_text(encoding="utf-8")
    except OSError:
        # Deployed without docs/findings (.funcignore): say so rather than answer an empty page.
        return Page(
            503,
            f"The runbook page {name} is not deployed with this app; deploy docs/findings with it.\n",
            "text/plain",
        )
    title = next((b for b in blocks(markdown) if b.kind == "h1"), None)
    html = (
        environment()
        .get_template("runbook.html.j2")
        .render(title=title.parts[0] if title else name, blocks=blocks(markdown), code=name)
    )
    return Page(200, html)
