"""The living note's words and the Teams card's shape and size, pure."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta

from diagnostics.catalog import finding
from diagnostics.lifecycle import SubjectAlerts, advance, unchecked
from diagnostics.model import Subject
from diagnostics.note import blocks_of, evidence_lines, note_id, note_record, render_note
from diagnostics.render_card import MAX_BYTES, CardItem, announced, build_card, encode, record_url

NOW = datetime(2026, 11, 12, 7, tzinfo=UTC)
INVOICE = Subject(type="provider_invoice", id="3a496486-0f7b-56ee-afa0-d8b3fea8006c", name="G011 2026-10")
BLOCKED = finding(
    "US_BLOCKED_UNRESOLVED_CUSTOMER",
    INVOICE,
    "2026-10",
    "Usage is blocked: 1 customer reference does not resolve",
    {
        "provider_invoice_id": INVOICE.id,
        "references": [
            {
                "reference": "7d3c0e2a",
                "name": "Tailspin Toys",
                "provider_account_exists": True,
                "account_column_empty": True,
                "sync_disabled": False,
            }
        ],
        "difference": "12.5",
        "currency": "EUR",
    },
    ["Open the provider account", "Fill in its Account column"],
)
CHECKSUM = finding(
    "PI_CHECKSUM_MISMATCH", INVOICE, "2026-10", "Checksum differs", {"x": 1}, ["Override"], severity="warning"
)


def test_evidence_reads_as_words_with_amounts_in_their_currency() -> None:
    lines = evidence_lines(BLOCKED.evidence)
    assert "Tailspin Toys (7d3c0e2a) — provider account exists, Account column empty" in lines
    assert "Difference: 12.50 EUR" in lines
    assert not any("_id" in line or "True" in line for line in lines)


def test_the_note_lists_open_findings_worst_first_with_steps_then_what_resolved() -> None:
    state = SubjectAlerts(INVOICE)
    out = advance(
        state, [CHECKSUM, BLOCKED], unit="u", run="r", now=NOW, blocks=blocks_of([CHECKSUM, BLOCKED])
    )
    note = render_note(out.state, checked_at=NOW)
    assert note is not None
    assert note.subject_line == "Usage-invoice diagnosis: 2 open (error)"
    text = note.text
    assert text.index("US_BLOCKED_UNRESOLVED_CUSTOMER") < text.index("PI_CHECKSUM_MISMATCH")
    assert "  1. Open the provider account\n" in text
    assert "  2. Fill in its Account column" in text
    # An absolute link (diagnostics/runbooks.py): in a checkout, the page on this disk.
    assert re.search(r"Runbook: (file|https)://\S+/US_BLOCKED_UNRESOLVED_CUSTOMER\.md", text)
    later = NOW + timedelta(days=1)
    gone = advance(out.state, [CHECKSUM], unit="u", run="r", now=later, blocks=blocks_of([CHECKSUM]))
    after = render_note(gone.state, checked_at=later)
    assert after is not None
    assert after.subject_line == "Usage-invoice diagnosis: 1 open (warning)"
    assert "RESOLVED\n- Usage is blocked: 1 customer reference does not resolve" in after.text
    clear = advance(gone.state, [], unit="u", run="r", now=later + timedelta(days=1))
    final = render_note(clear.state, checked_at=later + timedelta(days=1))
    assert final is not None
    assert final.subject_line == "Usage-invoice diagnosis: all clear"
    assert "All clear since 2026-11-14 07:00 UTC." in final.text
    # The next day says the same: the content is unchanged, so the note is not written again.
    again = advance(clear.state, [], unit="u", run="r", now=later + timedelta(days=2))
    same = render_note(again.state, checked_at=later + timedelta(days=2))
    assert same is not None
    assert same.content_hash == final.content_hash


def test_a_silenced_finding_stays_in_the_note_marked() -> None:
    out = advance(
        SubjectAlerts(INVOICE), [BLOCKED.model_copy(update={"silenced": True})], unit="u", run="r", now=NOW
    )
    note = render_note(out.state, checked_at=NOW)
    assert note is not None
    assert "[ERROR, silenced until 2026-11-12]" in note.text
    assert note.subject_line == "Usage-invoice diagnosis: all clear (1 silenced)"


def test_note_ids_are_guids_derived_from_the_subject() -> None:
    assert note_id(INVOICE) == note_id(INVOICE.model_copy())
    assert uuid.UUID(note_id(INVOICE)).version == 5
    expected = Subject(type="expected_provider_invoice", id=f"{INVOICE.id}:2026-10", name="x")
    assert note_record(expected) == ("work365_provider", INVOICE.id)
    assert note_id(expected) != note_id(INVOICE)
    assert note_record(Subject(type="tenant", id="tenant", name="x")) is None


def _item(n: int, change: str = "new", severity: str = "error") -> CardItem:
    return CardItem(
        change,  # type: ignore[arg-type]
        f"CODE_{n:04d}:provider_invoice:{n}:2026-10",
        "PI_IMPORT_ERROR",
        severity,
        "Provider invoice in Error — " + "ü" * 40,
        f"Invoice {n}",
        "Open the invoice and read its message",
        record_url("https://contoso.crm.dynamics.com", "work365_providerinvoice", INVOICE.id),
    )


def test_the_card_is_an_adaptive_card_1_5_in_a_workflows_message() -> None:
    payload = build_card([_item(1, "resolved"), _item(2, severity="warning"), _item(3, severity="critical")])
    assert payload["type"] == "message"
    [attachment] = payload["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard"
    assert card["version"] == "1.5"
    assert announced(payload) == {
        "new": [_item(3).dedup_key, _item(2).dedup_key],  # worst first
        "escalated": [],
        "reminded": [],
        "resolved": [_item(1).dedup_key],
    }
    urls = [a["url"] for a in _actions(card)]
    assert urls[0] == (
        "https://contoso.crm.dynamics.com/main.aspx?etn=work365_providerinvoice"
        f"&id={INVOICE.id}&pagetype=entityrecord"
    )


def _actions(node: object) -> list[dict[str, str]]:
    if isinstance(node, dict):
        own = [node] if node.get("type") == "Action.OpenUrl" else []
        return own + [a for v in node.values() for a in _actions(v)]
    if isinstance(node, list):
        return [a for v in node for a in _actions(v)]
    return []


def test_a_large_run_is_cut_under_28_kb_with_and_n_more() -> None:
    items = [_item(n) for n in range(400)]
    payload = build_card(items)
    size = len(encode(payload))
    assert size <= MAX_BYTES
    shown = len(announced(payload)["new"])
    assert 0 < shown < 400
    assert f"… and {400 - shown} more" in json.dumps(payload, ensure_ascii=False)
    # Cut as late as it can be: one more finding (about 1 KB) would not have fitted.
    assert size > MAX_BYTES - 1_200


def test_nested_evidence_reads_as_words_without_ids_or_braces() -> None:
    lines = evidence_lines(
        {
            "not_ready": [
                {"provider": "Microsoft", "provider_invoices": [{"id": "3a49", "status": "Error"}]}
            ],
            "sync_disabled": True,
        }
    )
    assert lines == ["Not ready: Provider: Microsoft, Provider invoices: Status: Error", "Sync disabled: yes"]


def test_a_note_leaves_out_the_day_of_the_check_so_an_unchanged_day_is_no_change() -> None:
    missing = finding(
        "PI_MISSING_NOT_SYNCED",
        Subject(type="expected_provider_invoice", id="p:2026-10", name="Microsoft 2026-10"),
        "2026-10",
        "Not synced",
        {"provider": "Microsoft", "due_date": "2026-11-08", "today": "2026-11-12"},
        ["Sync"],
    )
    [block] = [b for b, _ in blocks_of([missing]).values()]
    assert "Due date: 2026-11-08" in block
    assert "2026-11-12" not in block


def test_a_note_says_which_findings_are_no_longer_checked_and_since_when() -> None:
    seen = advance(
        SubjectAlerts(INVOICE),
        [CHECKSUM, BLOCKED],
        unit="u",
        run="r",
        now=NOW,
        blocks=blocks_of([CHECKSUM, BLOCKED]),
    ).state
    swept = unchecked(seen, NOW + timedelta(days=5))
    assert swept is not None
    note = render_note(swept, checked_at=NOW)
    assert note is not None
    assert note.subject_line == "Usage-invoice diagnosis: no longer checked (2 open when last seen, error)"
    text = note.text
    assert "OPEN FINDINGS" not in text
    assert "All clear" not in text
    part = text.split("NO LONGER CHECKED (as last seen)\n", 1)[1]
    assert part.index("US_BLOCKED_UNRESOLVED_CUSTOMER") < part.index("PI_CHECKSUM_MISMATCH")
    assert "  1. Open the provider account\n" in part  # the steps, as last seen
    assert (
        "Last seen 2026-11-12 07:00 UTC. The monitor stopped checking it 2026-11-17 07:00 UTC: "
        "no daily check covers this record any more." in part
    )


def test_a_bounded_countdown_stays_in_the_note_while_an_open_ended_count_gives_way_to_its_date() -> None:
    closing = finding(
        "USAGE_PULL_WINDOW_CLOSING",
        INVOICE,
        "2026-10",
        "Usage for G011 not pulled yet; 2 day(s) left",
        {"created_on": "2026-11-01T05:45:00Z", "days_left": 1.6},
        ["Check Partner Center"],
        severity="warning",
    )
    expired = finding(
        "USAGE_PULL_WINDOW_EXPIRED",
        INVOICE,
        "2026-10",
        "Work 365 stopped trying to pull usage for G011: found on 2026-11-01, still no usage",
        {"created_on": "2026-11-01T05:45:00Z", "days_since_found": 20},
        ["Sync it again"],
    )
    afternoon = closing.model_copy(update={"evidence": {**closing.evidence, "days_left": 1.35}})
    blocks = {key: block for key, (block, _) in blocks_of([closing, expired]).items()}
    assert "2 day(s) left" in blocks[closing.dedup_key]
    assert "Days left" not in blocks[closing.dedup_key]
    # The afternoon's re-check of the same countdown leaves the note as the morning wrote it.
    assert blocks_of([afternoon])[closing.dedup_key] == blocks_of([closing])[closing.dedup_key]
    assert "found on 2026-11-01, still no usage" in blocks[expired.dedup_key]
    assert "20 days" not in blocks[expired.dedup_key]
    assert "Days since found" not in blocks[expired.dedup_key]
