"""The HTTP trigger's edges: dates in range, short echoes, misconfiguration as 500, the deadline."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from diagnostics.http_api import diagnose_request
from simulator import Simulator, load_fixture
from tests.sim_env import use_simulator_settings

SAMPLE = Path(__file__).resolve().parents[2] / "simulator" / "samples" / "sample-tenant.json"


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(load_fixture(SAMPLE)) as running:
        yield running


@pytest.fixture
def app_settings(sim: Simulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    use_simulator_settings(monkeypatch, sim, DIAG_STATE_FILE=str(tmp_path / "state.json"))


def _error(result: object) -> str:
    message: str = json.loads(result.body)["error"]  # type: ignore[attr-defined]
    return message


@pytest.mark.usefixtures("app_settings")
@pytest.mark.parametrize("as_of", ["1999-01-01", "2099-01-01T00:00:00Z"])
async def test_a_date_out_of_range_is_400(as_of: str) -> None:
    result = await diagnose_request("G0113579246", as_of=as_of)
    assert result.status == 400
    assert "within two years" in _error(result)


@pytest.mark.usefixtures("app_settings")
async def test_an_error_never_echoes_more_than_an_excerpt() -> None:
    result = await diagnose_request("G" * 5000)
    assert result.status == 400
    assert len(_error(result)) < 200
    result = await diagnose_request("G1", as_of="2026-" + "9" * 5000)
    assert result.status == 400
    assert len(_error(result)) < 200


@pytest.mark.usefixtures("app_settings")
async def test_a_misspelt_setting_is_misconfiguration_not_bad_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIAG_PULL_WINDOW_DAY", "20")
    result = await diagnose_request("G0113579246")
    assert result.status == 500
    assert _error(result).startswith("the app is misconfigured")
    assert "did you mean DIAG_PULL_WINDOW_DAYS?" in _error(result)


@pytest.mark.usefixtures("app_settings")
async def test_an_unreadable_schema_map_setting_is_misconfiguration(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DIAG_SCHEMA_MAP_FILE", str(tmp_path / "missing.json"))
    result = await diagnose_request("G0113579246")
    assert result.status == 500
    assert "DIAG_SCHEMA_MAP_FILE" in _error(result)


@pytest.mark.usefixtures("app_settings")
async def test_a_refused_sign_in_is_misconfiguration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIAG_DATAVERSE_CLIENT_SECRET", "not-the-secret")
    result = await diagnose_request("G0113579246")
    assert result.status == 500
    assert _error(result).startswith("the app is misconfigured: could not get a token")


@pytest.mark.usefixtures("app_settings")
async def test_a_retry_after_beyond_the_http_deadline_fails_fast(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIAG_HTTP_DEADLINE_SECONDS", "5")
    sim.inject(status=429, retry_after=30, path_prefix="/api/data/", times=1)
    try:
        started = time.monotonic()
        result = await diagnose_request("G0113579246", as_of="2026-11-12T09:00:00Z")
        elapsed = time.monotonic() - started
    finally:
        sim.clear_faults()
    assert result.status == 502
    assert "asked to wait 30 s, longer than the" in _error(result)
    assert "deadline" in _error(result)
    assert elapsed < 5


@pytest.mark.parametrize("invoice", ["G0113579246\n", "G01 2", "../G01", "G01%2F"])
async def test_an_invoice_number_with_a_line_break_or_a_path_is_400(invoice: str) -> None:
    result = await diagnose_request(invoice)
    assert result.status == 400
    assert "neither a GUID nor a provider invoice number" in _error(result)
