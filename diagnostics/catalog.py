"""The finding codes of contracts/findings.md and the one way findings are built."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from diagnostics.model import Finding, Severity, Subject


@dataclass(frozen=True)
class CodeInfo:
    code: str
    severity: Severity
    section: int


_CODES: tuple[tuple[str, Severity, int], ...] = (
    ("PI_NOT_YET_DUE", "info", 1),
    ("PI_MISSING_MICROSOFT_DELAY", "error", 1),
    ("PI_MISSING_NOT_SYNCED", "error", 1),
    ("PI_MISSING_UNVERIFIED", "warning", 1),
    ("US_BLOCKED_UNRESOLVED_CUSTOMER", "error", 2),
    ("US_BLOCKED_UNRESOLVED_SUBSCRIPTION", "error", 2),
    ("US_BLOCKED_UNRESOLVED_CURRENCY", "error", 2),
    ("SUB_WRITE_IN_PRODUCT", "warning", 2),
    ("REFERENCES_RESOLVED_REIMPORT_NEEDED", "warning", 2),
    ("US_NOT_SYNCED_AFTER_RESOLUTION", "error", 2),
    ("ERRORS_FILE_UNREADABLE", "error", 2),
    ("USAGE_SYNCED_AFTER_CONTRACT_INVOICE", "error", 3),
    ("CONTRACT_INVOICE_DATE_TOO_EARLY", "warning", 3),
    ("USAGE_AT_RISK_NEXT_INVOICE", "warning", 3),
    ("USAGE_PULL_PENDING", "info", 4),
    ("USAGE_PULL_WINDOW_CLOSING", "warning", 4),
    ("USAGE_PULL_WINDOW_EXPIRED", "critical", 4),
    ("PI_STUCK_POPULATING", "warning", 4),
    ("PI_MANUAL_NOT_ACTIVATED", "error", 4),
    ("PI_CHECKSUM_MISMATCH", "error", 4),  # warning before the usage-file day
    ("PI_IMPORT_ERROR", "error", 4),
    ("PI_ZERO_PLACEHOLDER", "error", 5),
    ("PI_PERIOD_GAP", "error", 5),
    ("SUB_MARKUP_MISSING", "error", 5),
    ("SUB_MARKUP_CHANGED_AFTER_IMPORT", "warning", 5),
    ("USAGE_ARCHIVED", "warning", 5),
    ("BILLING_SCHEDULE_ERROR", "error", 5),
    ("BILLING_SCHEDULE_MISSED", "error", 5),
    ("CONTRACT_EXPIRED_WITH_USAGE", "error", 5),
    ("SUB_NOT_ON_ACTIVE_CONTRACT", "error", 5),
    ("CHECK_FAILED", "error", 6),
    ("SCHEMA_MISMATCH", "error", 6),
    ("READ_ACCESS_LIMITED", "error", 6),
)

CODES: Mapping[str, CodeInfo] = {code: CodeInfo(code, sev, section) for code, sev, section in _CODES}


TENANT = Subject(type="tenant", id="tenant", name="Work 365 environment")


def runbook_path(code: str) -> str:
    return f"docs/findings/{code}.md"


def dedup_key(code: str, subject: Subject, period: str) -> str:
    return f"{code}:{subject.type}:{subject.id}:{period}"


def finding(
    code: str,
    subject: Subject,
    period: str,
    title: str,
    evidence: Mapping[str, Any],
    remediation: Iterable[str],
    *,
    severity: Severity | None = None,
) -> Finding:
    info = CODES[code]  # KeyError here is a programming error: every code is in the contract
    return Finding(
        code=code,
        severity=severity or info.severity,
        title=title,
        subject=subject,
        period=period,
        evidence=dict(evidence),
        remediation=tuple(remediation),
        runbook=runbook_path(code),
        dedup_key=dedup_key(code, subject, period),
    )
