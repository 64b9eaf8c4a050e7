"""Auto-fix in the replay (`python -m diagnostics monitor`): the Function app's own functions, the
local Service Bus broker and the simulator over simulated days. What is asserted is read back from
the simulator (the records it was asked to change, the notes it holds)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from diagnostics.replay import ReplayOptions, run_replay, to_json
from diagnostics.settings import load_settings
from tests.references import autofix_tenant as t

ON = {"DIAG_AUTOFIX_MAP_ACCOUNTS": "true", "DIAG_AUTOFIX_REIMPORT": "true"}


def _replay(tmp_path: Path, doc: dict[str, Any], env: dict[str, str], days: int) -> dict[str, Any]:
    fixture = tmp_path / "tenant.json"
    fixture.write_text(json.dumps(doc), encoding="utf-8")
    result: dict[str, Any] = json.loads(
        to_json(run_replay(ReplayOptions(fixture, days=days), load_settings(env)))
    )
    return result


def _note(result: dict[str, Any], record_id: str) -> str:
    [note] = [n for n in result["notes"] if n["subject"]["id"].startswith(record_id)]
    return str(note["text"])


def test_with_auto_fix_off_the_note_ranks_the_candidates_and_nothing_is_changed(tmp_path: Path) -> None:
    result = _replay(tmp_path, t.confident(reimport=False), {}, days=2)
    assert [day["records_changed"] for day in result["days"]] == [[], []]
    assert "best match: Tailspin Toys (95%" in _note(result, t.INVOICE)


def test_with_auto_fix_on_the_account_is_mapped_the_invoice_reimported_and_each_change_noted(
    tmp_path: Path,
) -> None:
    result = _replay(tmp_path, t.confident(), ON, days=2)
    first, second = result["days"]
    assert first["records_changed"] == [
        f"PATCH work365_provideraccount {t.PROVIDER_ACCOUNT}",
        f"DELETE work365_providerinvoice {t.INVOICE}",
    ]
    assert second["records_changed"] == []  # applied once, however often it is looked at again
    changes = _note(result, t.PROVIDER)
    assert "map provider account Tailspin Toys to account Tailspin Toys (95%" in changes
    assert "(before: empty)" in changes
    assert "delete provider invoice Microsoft G012345678 2026-10 so that Work 365 re-imports it" in changes
    assert "re-import confirmed: provider invoice Microsoft G012345678 2026-10 imported again" in changes


def test_an_ambiguous_match_is_never_applied_in_the_replay(tmp_path: Path) -> None:
    result = _replay(tmp_path, t.ambiguous(), ON, days=1)
    assert result["days"][0]["records_changed"] == []
    assert "ambiguous, choose one" in _note(result, t.INVOICE)


def test_without_the_write_privileges_the_replay_changes_nothing(tmp_path: Path) -> None:
    doc = t.confident(denied=["prvWritework365_provideraccount"], reimport=False)
    result = _replay(tmp_path, doc, ON, days=1)
    assert result["days"][0]["records_changed"] == []
    assert "lacks prvWritework365_provideraccount" in _note(result, t.INVOICE)
