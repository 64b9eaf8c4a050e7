"""Safe edges: https only, canonical ids, short echoes of input, dates in range, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from diagnostics.adapters.dataverse import DataverseClient, Query
from diagnostics.cli import main
from diagnostics.errors import ConfigError, InputError, ServiceError
from diagnostics.periods import parse_as_of
from diagnostics.settings import load_settings
from tests.adapters.conftest import FakeCredential

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
BLOCKED = SCENARIOS / "inhibit_blocked_mutes_window_and_import_error.json"
BLOCKED_INVOICE = "72539cea-8446-59e2-8f7f-5863dc3ed520"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert "internal error" not in err
    return lines[0]


# --- service URLs and tokens ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("https://contoso.crm.dynamics.com/api/data/v9.2", "https://contoso.crm.dynamics.com"),
        ("https://contoso.crm.dynamics.com/api/data/v9.2/", "https://contoso.crm.dynamics.com"),
        ("https://contoso.crm4.dynamics.com/main.aspx?appid=1#x", "https://contoso.crm4.dynamics.com"),
        ("contoso.crm.dynamics.com", "https://contoso.crm.dynamics.com"),
        ("http://127.0.0.1:8443", "http://127.0.0.1:8443"),
        ("  ", None),
    ],
)
def test_a_pasted_dataverse_url_is_normalised(given: str, expected: str | None) -> None:
    assert load_settings({"DIAG_DATAVERSE_URL": given}).dataverse_url == expected
    assert load_settings({}, dataverse_url=given).dataverse_url == expected


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DIAG_DATAVERSE_URL", "http://contoso.crm.dynamics.com"),
        ("DIAG_PARTNER_CENTER_URL", "http://api.partnercenter.microsoft.com"),
        ("DIAG_AUTHORITY_HOST", "http://login.microsoftonline.us"),
        ("DIAG_DATAVERSE_URL", "ftp://contoso.crm.dynamics.com"),
    ],
)
def test_service_urls_must_be_https_except_to_this_machine(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings({name: value})


async def test_no_token_is_ever_sent_over_plain_http() -> None:
    credential = FakeCredential()
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"value": []})

    async with DataverseClient(
        "http://127.0.0.1:9", credential, transport=httpx.MockTransport(handler)
    ) as dv:
        with pytest.raises(ConfigError, match=r"refusing to send a token to http://127\.0\.0\.1"):
            await dv.query(Query("accounts", ("name",)))
    assert sent == []
    assert credential.scopes == []


def test_the_cli_refuses_plain_http_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "scan", "--dataverse-url", "http://contoso.crm.dynamics.com")
    assert code == 2
    assert "https://" in _one_line(err)


# --- ids in URLs and filters ---------------------------------------------------------------------


@pytest.mark.parametrize("form", ["{%s}", "%s"])
def test_an_invoice_guid_in_any_form_is_looked_up_canonically(
    capsys: pytest.CaptureFixture[str], form: str
) -> None:
    key = form % BLOCKED_INVOICE.upper()
    code, out, err = _run(capsys, "diagnose", key, "--simulate", str(BLOCKED), "--format", "json")
    assert code == 1, err
    subjects = {f["subject"]["id"] for f in json.loads(out)["findings"]}
    assert BLOCKED_INVOICE in subjects


def test_an_invoice_number_with_a_quote_is_a_literal_not_a_filter(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "diagnose", "G1' or 1 eq 1 or 'x", "--simulate", str(BLOCKED))
    assert code == 2
    assert "no provider invoice" in _one_line(err)


async def test_the_write_methods_refuse_an_id_that_is_not_a_guid() -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(204)

    async with DataverseClient(
        "https://contoso.crm.dynamics.com", FakeCredential(), transport=httpx.MockTransport(handler)
    ) as dv:
        for bad in ("1", "x)/../accounts(00000000-0000-0000-0000-000000000000", ""):
            with pytest.raises(InputError, match="is not a GUID"):
                await dv.upsert("annotations", bad, {"subject": "x"})
        await dv.upsert("annotations", "{6A1F2D9E-0000-4000-8000-000000000002}", {"subject": "x"})
    assert [r.url.path for r in sent] == ["/api/data/v9.2/annotations(6a1f2d9e-0000-4000-8000-000000000002)"]


async def test_a_server_that_is_not_dataverse_is_named_as_such() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html><body>Welcome to nginx!</body></html>")

    async with DataverseClient(
        "https://example.org", FakeCredential(), transport=httpx.MockTransport(handler)
    ) as dv:
        with pytest.raises(
            ServiceError, match=r"https://example\.org answered 200 without JSON: it is not a Dataverse"
        ):
            await dv.get("EntityDefinitions?$select=LogicalName")


# --- dates and echoes ----------------------------------------------------------------------------


@pytest.mark.parametrize("as_of", ["1999-01-01", "2031-01-01", "9999-12-31T23:59:59+14:00", "0001-01-01"])
def test_as_of_outside_two_years_is_bad_input(capsys: pytest.CaptureFixture[str], as_of: str) -> None:
    code, _, err = _run(capsys, "scan", "--simulate", str(BLOCKED), "--as-of", as_of)
    assert code == 2
    assert "within two years" in _one_line(err)


def test_an_error_echoes_only_an_excerpt_of_its_input(capsys: pytest.CaptureFixture[str]) -> None:
    huge = "2026-" + "x" * 5000
    code, _, err = _run(capsys, "scan", "--simulate", str(BLOCKED), "--as-of", huge)
    assert code == 2
    assert len(_one_line(err)) < 200
    with pytest.raises(InputError) as caught:
        parse_as_of("\x1b[2J" + "y" * 900)
    assert len(str(caught.value)) < 200


def test_every_odd_input_ends_in_a_reason_not_an_internal_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    odd: list[list[str]] = [
        ["diagnose", "", "--simulate", str(BLOCKED)],
        ["diagnose", "\x00\u202e", "--simulate", str(BLOCKED)],
        ["scan", "--simulate", str(tmp_path)],
        ["scan", "--simulate", str(BLOCKED), "--schema-map", str(tmp_path)],
        ["scan", "--dataverse-url", "https://"],
        ["scan", "--dataverse-url", "https://[::1"],
    ]
    for argv in odd:
        code, _, err = _run(capsys, *argv)
        assert code == 2, (argv, err)
        _one_line(err)
