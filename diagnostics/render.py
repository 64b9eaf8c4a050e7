"""The report as a billing administrator reads it (text, HTML) and as machines read it (JSON)."""

from __future__ import annotations

import json
from typing import Any

from diagnostics.model import SEVERITY_RANK, Finding, Report, Subject
from diagnostics.text import cut, money, plain

__all__ = ["RENDERERS", "cause_of", "cut", "plain", "to_html", "to_json", "to_text"]

SUBJECT_NOUN = {
    "provider_invoice": "Provider invoice",
    "expected_provider_invoice": "Expected provider invoice",
    "billing_contract": "Billing contract",
    "subscription": "Subscription",
    "tenant": "Environment",
}


def to_json(report: Report) -> str:
    return json.dumps(report.model_dump(mode="json"), indent=2, ensure_ascii=False)


def groups(report: Report) -> list[tuple[Subject, list[Finding]]]:
    """Findings grouped by subject, the group with the worst unmuted finding first."""
    groups: dict[tuple[str, str], list[Finding]] = {}
    for item in report.findings:
        groups.setdefault((item.subject.type, item.subject.id), []).append(item)

    def worst(items: list[Finding]) -> tuple[int, int]:
        live = [SEVERITY_RANK[f.severity] for f in items if not (f.muted or f.silenced)] or [9]
        return (min(live), min(SEVERITY_RANK[f.severity] for f in items))

    ordered = sorted(groups.values(), key=lambda items: (*worst(items), items[0].subject.name))
    return [(items[0].subject, items) for items in ordered]


MAX_LIST_ITEMS = 8
MAX_EVIDENCE_LINES = 20
MAX_CAUSE = 120


def _more(hidden: int, noun: str = "") -> str:
    return f"… and {hidden} more{noun} in the JSON"


def _short(value: Any) -> str:
    if isinstance(value, list):
        if all(isinstance(v, str | int | float) for v in value):
            shown = ", ".join(plain(v) for v in value[:MAX_LIST_ITEMS])
            hidden = len(value) - MAX_LIST_ITEMS
            return shown + (f" {_more(hidden)}" if hidden > 0 else "")
        return "; ".join(_short(v) for v in value[:MAX_LIST_ITEMS]) + (
            f" {_more(len(value) - MAX_LIST_ITEMS)}" if len(value) > MAX_LIST_ITEMS else ""
        )
    if isinstance(value, dict):
        return ", ".join(f"{plain(k)}={_short(v)}" for k, v in value.items() if v not in (None, [], False))
    return plain(value)


# Evidence keys that hold money: shown with the finding's currency where the evidence names it
# ("currency"; usage costs are summed over summaries whose invoices a unit may not load).
AMOUNT_KEYS = frozenset(
    {"cost", "uninvoiced_cost", "cost_after_end", "difference", "usage_total", "previous_usage_total"}
)


def evidence_lines(evidence: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    currency = evidence.get("currency")
    for key, value in evidence.items():
        if value is None or value == [] or key == "currency":
            continue
        if key in AMOUNT_KEYS and "currency" in evidence and isinstance(value, str | int | float):
            lines.append(f"{key}: {money(plain(value), plain(currency) if currency else None)}")
            continue
        if key == "proposed_override_file":
            lines.append(f"{key}: in the JSON (or write it with `schema verify --write FILE`)")
            continue
        if isinstance(value, list) and value and all(isinstance(entry, dict) for entry in value):
            # One line per entry (references, differences): each is evidence on its own.
            lines += [_short(entry) for entry in value]
            continue
        lines.append(f"{plain(key)}: {_short(value)}")
    return lines


def _shown_evidence(evidence: dict[str, Any]) -> list[str]:
    lines = evidence_lines(evidence)
    if len(lines) <= MAX_EVIDENCE_LINES:
        return lines
    hidden = len(lines) - MAX_EVIDENCE_LINES + 1
    return [*lines[: MAX_EVIDENCE_LINES - 1], _more(hidden, " evidence line(s)")]


def _summary(report: Report) -> str:
    """The statistics of the report, as the JSON has them: what alerts, then muted and silenced."""
    s = report.statistics
    counts = " · ".join(f"{s.by_severity.get(name, 0)} {name}" for name in SEVERITY_RANK)
    extra = "".join(f" · {n} {what}" for n, what in ((s.muted, "muted"), (s.silenced, "silenced")) if n)
    return f"{s.checks} checks, {s.passed} passed · {counts}{extra}"


def _subject_words(subject: Subject) -> str:
    return f"{SUBJECT_NOUN.get(subject.type, subject.type).lower()} {plain(subject.name)}"


def cause_of(item: Finding, report: Report) -> str:
    """The root cause that mutes `item`, in words: its title (and its subject, if another)."""
    root = next((f for f in report.findings if f.dedup_key == item.muted_by), None)
    if root is None:
        code = (item.muted_by or "another finding").split(":", 1)[0]
        return f"{code} (not in this report)"
    where = "" if root.subject == item.subject else f" on {_subject_words(root.subject)}"
    return f"{root.code}{where}: {cut(plain(root.title), MAX_CAUSE)}"


def _finding_text(item: Finding, report: Report) -> list[str]:
    title = plain(item.title)
    if item.muted:
        return [
            f"  ({item.severity}, muted) {item.code}  {title}",
            f"           explained by {cause_of(item, report)}",
        ]
    if item.silenced:
        return [f"  ({item.severity}, silenced) {item.code}  {title}"]
    lines = [f"  {item.severity.upper():<8} {item.code}", f"           {title}"]
    for number, step in enumerate(item.remediation, 1):
        lines.append(f"           {'Next:' if number == 1 else '     '} {number}. {plain(step)}")
    evidence = _shown_evidence(item.evidence)
    if evidence:
        lines.append(f"           Evidence: {evidence[0]}")
        lines += [f"                     {line}" for line in evidence[1:]]
    lines.append(f"           Runbook: {item.runbook}")
    return lines


def to_text(report: Report) -> str:
    lines = [
        f"Work 365 usage-invoice diagnosis — period {report.period}, as of "
        f"{report.as_of.strftime('%Y-%m-%d %H:%M UTC')}",
        _summary(report),
    ]
    if report.schema_map != "defaults":
        lines.append(f"Schema map: {plain(report.schema_map)}")
    if not report.findings:
        lines += ["", "Nothing found: every check passed."]
    for subject, items in groups(report):
        lines += ["", f"■ {SUBJECT_NOUN.get(subject.type, subject.type)}: {plain(subject.name)}"]
        for item in items:
            lines += _finding_text(item, report)
    return "\n".join(lines) + "\n"


def to_html(report: Report) -> str:
    """The HTML report (diagnostics/render_html.py), imported when asked for: it needs Jinja2."""
    from diagnostics.render_html import to_html as render  # noqa: PLC0415

    return render(report)


RENDERERS = {"text": to_text, "json": to_json, "html": to_html}
