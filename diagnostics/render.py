"""The report as a billing administrator reads it (text, HTML) and as machines read it (JSON)."""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from typing import Any

from diagnostics.model import SEVERITY_RANK, Finding, Report, Subject

_SUBJECT_NOUN = {
    "provider_invoice": "Provider invoice",
    "expected_provider_invoice": "Expected provider invoice",
    "billing_contract": "Billing contract",
    "subscription": "Subscription",
    "tenant": "Environment",
}


def to_json(report: Report) -> str:
    return json.dumps(report.model_dump(mode="json"), indent=2, ensure_ascii=False)


def _groups(report: Report) -> list[tuple[Subject, list[Finding]]]:
    """Findings grouped by subject, the group with the worst unmuted finding first."""
    groups: dict[tuple[str, str], list[Finding]] = {}
    for item in report.findings:
        groups.setdefault((item.subject.type, item.subject.id), []).append(item)

    def worst(items: list[Finding]) -> tuple[int, int]:
        live = [SEVERITY_RANK[f.severity] for f in items if not f.muted] or [9]
        return (min(live), min(SEVERITY_RANK[f.severity] for f in items))

    ordered = sorted(groups.values(), key=lambda items: (*worst(items), items[0].subject.name))
    return [(items[0].subject, items) for items in ordered]


def _short(value: Any) -> str:
    if isinstance(value, list):
        if value and all(isinstance(v, str | int | float) for v in value):
            return ", ".join(str(v) for v in value[:8]) + (" …" if len(value) > 8 else "")
        return f"{len(value)} item(s)"
    if isinstance(value, dict):
        return f"{len(value)} field(s)"
    return str(value)


def _evidence_lines(evidence: dict[str, Any]) -> Iterable[str]:
    for key, value in evidence.items():
        if value is None or value == [] or key == "proposed_override_file":
            continue
        if key in ("references", "differences") and isinstance(value, list):
            for entry in value:
                if isinstance(entry, dict):
                    yield ", ".join(
                        f"{k}={_short(v)}" for k, v in entry.items() if v not in (None, [], False)
                    )
            continue
        yield f"{key}: {_short(value)}"


def _summary(report: Report) -> str:
    """What needs attention; muted findings (explained by a root cause) are counted apart."""
    s = report.statistics
    live = [f for f in report.findings if not f.muted]
    counts = " · ".join(f"{sum(1 for f in live if f.severity == name)} {name}" for name in SEVERITY_RANK)
    muted = len(report.findings) - len(live)
    return f"{s.checks} checks, {s.passed} passed · {counts}" + (f" · {muted} muted" if muted else "")


def to_text(report: Report) -> str:
    lines = [
        f"Work 365 usage-invoice diagnosis — period {report.period}, as of "
        f"{report.as_of.strftime('%Y-%m-%d %H:%M UTC')}",
        _summary(report),
    ]
    if report.schema_map != "defaults":
        lines.append(f"Schema map: {report.schema_map}")
    if not report.findings:
        lines += ["", "Nothing found: every check passed."]
    for subject, items in _groups(report):
        lines += ["", f"■ {_SUBJECT_NOUN.get(subject.type, subject.type)}: {subject.name}"]
        for item in items:
            if item.muted:
                lines.append(
                    f"  ({item.severity}, muted) {item.code}  {item.title}  — explained by {item.muted_by}"
                )
                continue
            lines.append(f"  {item.severity.upper():<8} {item.code}")
            lines.append(f"           {item.title}")
            for number, step in enumerate(item.remediation, 1):
                lines.append(f"           {'Next:' if number == 1 else '     '} {number}. {step}")
            evidence = list(_evidence_lines(item.evidence))
            if evidence:
                lines.append(f"           Evidence: {evidence[0]}")
                lines += [f"                     {line}" for line in evidence[1:12]]
            lines.append(f"           Runbook: {item.runbook}")
    return "\n".join(lines) + "\n"


_CSS = (
    "body{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem}"
    "h2{margin-top:2rem;font-size:1.1rem}.f{border-left:4px solid #999;padding:.3rem .8rem;margin:.6rem 0}"
    ".critical{border-color:#a00}.error{border-color:#d33}.warning{border-color:#e90}.info{border-color:#39c}"
    ".muted{opacity:.55}code{background:#f3f3f3;padding:0 .2rem}dt{font-weight:600}"
)


def to_html(report: Report) -> str:
    esc = html.escape
    parts = [
        "<!doctype html><html lang='en'><meta charset='utf-8'>",
        f"<title>Work 365 diagnosis {esc(report.period)}</title><style>{_CSS}</style>",
        f"<h1>Work 365 usage-invoice diagnosis — {esc(report.period)}</h1>",
        f"<p>As of {esc(report.as_of.strftime('%Y-%m-%d %H:%M UTC'))}. {esc(_summary(report))}</p>",
    ]
    if not report.findings:
        parts.append("<p>Nothing found: every check passed.</p>")
    for subject, items in _groups(report):
        parts.append(f"<h2>{esc(_SUBJECT_NOUN.get(subject.type, subject.type))}: {esc(subject.name)}</h2>")
        for item in items:
            muted = " muted" if item.muted else ""
            parts.append(f"<div class='f {esc(item.severity)}{muted}'>")
            parts.append(f"<p><strong>{esc(item.severity.upper())}</strong> <code>{esc(item.code)}</code> ")
            parts.append(f"{esc(item.title)}{' (muted)' if item.muted else ''}</p>")
            if item.remediation and not item.muted:
                parts.append("<ol>" + "".join(f"<li>{esc(step)}</li>" for step in item.remediation) + "</ol>")
            evidence = list(_evidence_lines(item.evidence))
            if evidence:
                parts.append("<ul>" + "".join(f"<li>{esc(line)}</li>" for line in evidence) + "</ul>")
            parts.append(f"<p><a href='{esc(item.runbook)}'>Runbook: {esc(item.code)}</a></p></div>")
    parts.append("</html>")
    return "\n".join(parts) + "\n"


RENDERERS = {"text": to_text, "json": to_json, "html": to_html}
