"""The HTTP diagnosis marks silenced findings as `scan`/`diagnose` do, from the same state store;
a state store it cannot read leaves every finding alerting, with a one-line warning."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from diagnostics.app.container import get_container
from diagnostics.http_api import diagnose_request
from diagnostics.lifecycle import SILENCE, Silence
from simulator import Simulator, load_fixture
from tests.sim_env import use_simulator_settings

SAMPLE = Path(__file__).resolve().parents[2] / "simulator" / "samples" / "sample-tenant.json"
INVOICE = "G0113579246"


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(load_fixture(SAMPLE)) as running:
        yield running


@pytest.fixture
def state_file(sim: Simulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    path = tmp_path / "state.json"
    use_simulator_settings(monkeypatch, sim, DIAG_STATE_FILE=str(path))
    return path


async def _report() -> dict[str, Any]:
    result = await diagnose_request(INVOICE)
    assert result.status == 200, result.body
    report: dict[str, Any] = json.loads(result.body)
    return report


async def test_a_silenced_finding_is_marked_and_counted(state_file: Path) -> None:
    before = await _report()
    assert before["findings"], "the sample invoice must have findings for this test to mean anything"
    assert not any(f["silenced"] for f in before["findings"])
    assert before["statistics"]["silenced"] == 0
    key = before["findings"][0]["dedup_key"]
    # As `silence add` stores it, in the state store the app reads.
    silence = Silence(until=date(2099, 1, 31), reason="MS 42", dedup_key=key)
    await get_container().state.put(SILENCE, silence.key, silence.to_value(), etag=None)

    after = await _report()
    silenced = [f["dedup_key"] for f in after["findings"] if f["silenced"]]
    assert silenced == [key]
    assert after["statistics"]["silenced"] == 1
    assert len(after["findings"]) == len(before["findings"])


@pytest.fixture
def unreadable_state(state_file: Path) -> Path:
    state_file.write_text("not json", encoding="utf-8")
    return state_file


async def test_an_unreadable_state_store_warns_once_and_every_finding_alerts(
    unreadable_state: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="diagnostics.http"):
        report = await _report()
    assert report["findings"]
    assert not any(f["silenced"] for f in report["findings"])
    warnings = [r.getMessage() for r in caplog.records if "silences not applied" in r.getMessage()]
    assert len(warnings) == 1
    assert str(unreadable_state) in warnings[0]
    assert "\n" not in warnings[0]
