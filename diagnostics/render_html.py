"""The HTML report: one self-contained page (no external assets) a billing admin would rather look
at than read: what to fix first, a timeline of each provider invoice's month, then the findings.

Rendered from Jinja2 templates (diagnostics/templates/, shipped with the app) with auto-escaping:
tenant text never becomes markup. The timeline's geometry is computed here (pure), the template
only draws it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import cache
from pathlib import Path
from typing import Any

import jinja2

from diagnostics.model import SEVERITY_RANK, Finding, InvoiceTimeline, Report, Subject
from diagnostics.note import evidence_lines
from diagnostics.render import SUBJECT_NOUN, cause_of, groups, plain
from diagnostics.runbooks import default_runbook_base, runbook_url

TEMPLATES = Path(__file__).resolve().parent / "templates"
# How many findings the summary names as "fix first".
FIX_FIRST = 3


# --- the timeline, laid out ------------------------------------------------------------------

WIDTH = 960
LABEL_WIDTH = 230
RIGHT_PAD = 20
ROW_HEIGHT = 30
AXIS_HEIGHT = 34
TOP_PAD = 34  # room for the vertical markers' labels
MAX_SPAN_DAYS = 75


@dataclass(frozen=True)
class Marker:
    """A vertical line across every row (period end, invoice day, usage-file day, now)."""

    x: float
    label: str
    kind: str
    title: str
    row: int = 0  # label row above the plot, so labels of close markers do not overlap


@dataclass(frozen=True)
class Point:
    x: float
    kind: str  # landed | invoiced-late | invoiced-ok | next-invoice | window-end
    title: str
    clipped: bool = False


@dataclass(frozen=True)
class Band:
    x1: float
    x2: float
    kind: str  # window | usage
    title: str


@dataclass
class Row:
    label: str
    y: float
    points: list[Point] = field(default_factory=list)
    bands: list[Band] = field(default_factory=list)
    note: str = ""
    contract: bool = False


@dataclass
class Tick:
    x: float
    label: str
    major: bool


@dataclass
class TimelineView:
    timeline: InvoiceTimeline
    anchor: str
    width: int
    height: float
    plot_left: float
    plot_right: float
    plot_top: float
    plot_bottom: float
    markers: list[Marker]
    rows: list[Row]
    ticks: list[Tick]
    late: int  # contract runs drawn as "invoiced before usage arrived"
    headline: str


def _day(moment: datetime | date) -> date:
    return moment.date() if isinstance(moment, datetime) else moment


def _when(moment: datetime | date | None) -> str:
    if moment is None:
        return "—"
    if isinstance(moment, datetime):
        return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return moment.isoformat()


class _Scale:
    def __init__(self, start: date, end: date) -> None:
        self.start, self.end = start, end
        self.days = max(1, (end - start).days)
        self.left, self.right = float(LABEL_WIDTH), float(WIDTH - RIGHT_PAD)

    def x(self, moment: datetime | date) -> tuple[float, bool]:
        """The x of a moment, and whether it lay outside the range (drawn at the edge)."""
        if isinstance(moment, datetime):
            offset = (moment - datetime.combine(self.start, datetime.min.time(), tzinfo=UTC)).total_seconds()
            days = offset / 86400
        else:
            days = float((moment - self.start).days)
        clipped = days < 0 or days > self.days
        days = min(max(days, 0.0), float(self.days))
        return round(self.left + (self.right - self.left) * days / self.days, 1), clipped


def _range(t: InvoiceTimeline, as_of: datetime) -> tuple[date, date]:
    moments: list[date] = [t.period_end, t.invoice_day, t.usage_file_day, as_of.date()]
    for value in (t.created_on, t.usage_first_synced, t.usage_last_synced, t.pull_window_end):
        if value is not None:
            moments.append(_day(value))
    for contract in t.contracts:
        moments += [_day(m) for m in contract.invoiced_at]
        if contract.next_invoice_date is not None and contract.next_invoice_date >= t.period_end:
            moments.append(contract.next_invoice_date)
    start = t.period_end - timedelta(days=3)
    end = max(moments) + timedelta(days=2)
    return start, min(end, start + timedelta(days=MAX_SPAN_DAYS))


def _ticks(scale: _Scale) -> list[Tick]:
    ticks: list[Tick] = []
    last_label = -1000.0
    day = scale.start
    while day <= scale.end:
        x, _ = scale.x(day)
        major = day.day == 1 or day.weekday() == 0
        label = (
            day.strftime("%b %-d") if day.day == 1 or day == scale.start else str(day.day) if major else ""
        )
        if label and x - last_label < 34:
            # Too close to the previous label: the month's first day wins, the other stays a tick.
            if day.day == 1 and ticks:
                for tick in reversed(ticks):
                    if tick.label:
                        tick.label = ""
                        break
            else:
                label = ""
        if label:
            last_label = x
        ticks.append(Tick(x, label, major))
        day += timedelta(days=1)
    return ticks


def _markers(t: InvoiceTimeline, scale: _Scale, as_of: datetime) -> list[Marker]:
    wanted = [
        ("period-end", f"{t.period} ends", t.period_end + timedelta(days=1), "the billing period ends"),
        ("invoice-day", f"invoice day ({t.invoice_day.day})", t.invoice_day, "the provider's invoice is due"),
        (
            "usage-file",
            f"usage file ({t.usage_file_day.day})",
            t.usage_file_day,
            "the usage file is complete",
        ),
        ("now", "now", as_of, "the time of this report"),
    ]
    out: list[Marker] = []
    for kind, label, moment, what in sorted(wanted, key=lambda w: _sort_moment(w[2])):
        x, clipped = scale.x(moment)
        if clipped:
            continue
        # Labels closer than ~110 px to the previous one on the same row go one row up.
        row = 0
        while any(m.row == row and abs(m.x - x) < 110 for m in out):
            row += 1
        out.append(Marker(x, label, kind, f"{what}: {_when(moment)}", row % 3))
    return out


def _sort_moment(moment: datetime | date) -> datetime:
    if isinstance(moment, datetime):
        return moment
    return datetime.combine(moment, datetime.min.time(), tzinfo=UTC)


def _invoice_rows(t: InvoiceTimeline, scale: _Scale, y: float) -> list[Row]:
    invoice, usage = Row("Provider invoice", y), Row("Usage synced", y + ROW_HEIGHT)
    if t.created_on is None:
        invoice.note = "not in Work 365 yet"
        usage.note = "no usage"
        return [invoice, usage]
    if t.pull_window_end is not None:
        x1, _ = scale.x(t.created_on)
        x2, clipped = scale.x(t.pull_window_end)
        invoice.bands.append(
            Band(x1, x2, "window", f"pull window: {_when(t.created_on)} → {_when(t.pull_window_end)}")
        )
        invoice.points.append(
            Point(x2, "window-end", f"pull window ends {_when(t.pull_window_end)}", clipped)
        )
    x, clipped = scale.x(t.created_on)
    invoice.points.append(Point(x, "landed", f"invoice landed in Work 365: {_when(t.created_on)}", clipped))
    if t.usage_first_synced is not None and t.usage_last_synced is not None:
        x1, _ = scale.x(t.usage_first_synced)
        x2, _ = scale.x(t.usage_last_synced)
        span = f"{_when(t.usage_first_synced)} → {_when(t.usage_last_synced)}"
        usage.bands.append(Band(x1, max(x2, x1 + 6), "usage", f"usage synced: {span}"))
    elif t.has_usage:
        usage.note = "usage present (dates not read)"
    else:
        usage.note = "no usage yet"
    return [invoice, usage]


def _contract_rows(t: InvoiceTimeline, scale: _Scale, y: float) -> tuple[list[Row], int]:
    rows, late = [], 0
    for contract in t.contracts:
        row = Row(contract.name, y, contract=True)
        for moment in contract.invoiced_at:
            x, clipped = scale.x(moment)
            before = t.usage_first_synced is None or moment < t.usage_first_synced
            late += before
            what = "invoiced before the usage arrived" if before else "invoiced with the usage"
            row.points.append(
                Point(x, "invoiced-late" if before else "invoiced-ok", f"{what}: {_when(moment)}", clipped)
            )
        upcoming = contract.next_invoice_date
        if upcoming is not None and upcoming >= scale.start:
            x, clipped = scale.x(upcoming)
            # Without usage yet, the coming run would invoice without it.
            risk = not t.has_usage
            title = f"next invoice date: {_when(upcoming)}" + (" (no usage yet)" if risk else "")
            row.points.append(Point(x, "next-risk" if risk else "next-invoice", title, clipped))
        rows.append(row)
        y += ROW_HEIGHT
    return rows, late


def _headline(t: InvoiceTimeline, late: int) -> str:
    if t.created_on is None:
        return f"Not in Work 365 yet (due {t.invoice_day.isoformat()})"
    if late:
        return f"{late} contract invoice run(s) before the usage arrived"
    if t.usage_first_synced is not None:
        return f"Usage arrived {_when(t.usage_first_synced)}"
    if t.has_usage:
        return "Usage arrived"
    if t.pull_window_end is not None:
        return f"No usage yet; pull window ends {t.pull_window_end.date().isoformat()}"
    return "No usage yet"


def layout(t: InvoiceTimeline, as_of: datetime) -> TimelineView:
    scale = _Scale(*_range(t, as_of))
    markers = _markers(t, scale, as_of)
    label_rows = 1 + max((m.row for m in markers), default=0)
    top = 14.0 * label_rows + 10
    first = top + ROW_HEIGHT / 2
    rows = _invoice_rows(t, scale, first)
    contract_rows, late = _contract_rows(t, scale, first + ROW_HEIGHT * len(rows))
    rows += contract_rows
    bottom = top + ROW_HEIGHT * len(rows)
    return TimelineView(
        timeline=t,
        anchor=anchor(t.subject),
        width=WIDTH,
        height=bottom + AXIS_HEIGHT,
        plot_left=scale.left,
        plot_right=scale.right,
        plot_top=top,
        plot_bottom=bottom,
        markers=markers,
        rows=rows,
        ticks=_ticks(scale),
        late=late,
        headline=_headline(t, late),
    )


# --- the summary ---------------------------------------------------------------------------


def anchor(subject: Subject) -> str:
    return "s-" + "".join(ch if ch.isalnum() or ch == "-" else "-" for ch in f"{subject.type}-{subject.id}")


def _alerting(report: Report) -> list[Finding]:
    return [f for f in report.findings if not f.muted and not f.silenced]


def _amount(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)) if value is not None else None
    except InvalidOperation:
        return None


@dataclass(frozen=True)
class Stake:
    amount: Decimal
    currency: str
    what: str


def money_at_stake(report: Report) -> list[Stake]:
    """Money known to be unbilled: usage not on any invoice (its cost), and the totals of provider
    invoices whose usage is blocked or missing (error and worse). Only what the data says."""
    out: list[Stake] = []
    totals = {t.subject.id: t for t in report.timelines}
    counted: set[str] = set()
    for item in _alerting(report):
        cost = _amount(item.evidence.get("uninvoiced_cost"))
        if cost:
            out.append(Stake(cost, "", f"usage not invoiced on {item.subject.name}"))
            continue
        timeline = totals.get(item.subject.id)
        if (
            timeline is not None
            and timeline.total_amount
            and SEVERITY_RANK[item.severity] <= SEVERITY_RANK["error"]
            and item.subject.id not in counted
        ):
            counted.add(item.subject.id)
            out.append(
                Stake(timeline.total_amount, timeline.currency or "", f"provider invoice {item.subject.name}")
            )
    return out


# --- rendering -----------------------------------------------------------------------------


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    return env


def to_html(report: Report, *, runbook_base: str | None = None) -> str:
    base = runbook_base or default_runbook_base()
    alerting = _alerting(report)
    subjects = [
        {
            "subject": subject,
            "noun": SUBJECT_NOUN.get(subject.type, subject.type),
            "anchor": anchor(subject),
            "findings": [
                {
                    "item": item,
                    "title": plain(item.title),
                    "evidence": [plain(line) for line in evidence_lines(item.evidence, limit=None)],
                    "remediation": [plain(step) for step in item.remediation],
                    "runbook": runbook_url(item.runbook, base),
                    "cause": cause_of(item, report) if item.muted else "",
                }
                for item in items
            ],
        }
        for subject, items in groups(report)
    ]
    return (
        environment()
        .get_template("report.html.j2")
        .render(
            report=report,
            stats=report.statistics,
            severities=list(SEVERITY_RANK),
            fix_first=[f for f in alerting if SEVERITY_RANK[f.severity] <= SEVERITY_RANK["warning"]][
                :FIX_FIRST
            ],
            more_to_fix=max(
                0,
                sum(1 for f in alerting if SEVERITY_RANK[f.severity] <= SEVERITY_RANK["warning"]) - FIX_FIRST,
            ),
            stakes=money_at_stake(report),
            timelines=[layout(t, report.as_of) for t in report.timelines],
            groups=subjects,
            anchor=anchor,
            plain=plain,
        )
    )
