"""User files with a byte-order mark load; a misspelt column in a fixture row fails loudly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from diagnostics.cli import main
from simulator import load_fixture
from simulator.fixture import FixtureError

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
BLOCKED = SCENARIOS / "us_blocked_customer_unmapped.json"


def _fixture() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(BLOCKED.read_text(encoding="utf-8"))
    return data


def test_a_fixture_and_a_schema_map_with_a_bom_load(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    fixture = tmp_path / "bom-fixture.json"
    fixture.write_bytes(b"\xef\xbb\xbf" + BLOCKED.read_bytes())
    schema_map = tmp_path / "bom-map.json"
    schema_map.write_bytes(b"\xef\xbb\xbf" + json.dumps({"tables": {}}).encode("utf-8"))
    code = main(["scan", "--simulate", str(fixture), "--schema-map", str(schema_map), "--format", "json"])
    captured = capsys.readouterr()
    assert code == 1, captured.err
    assert "US_BLOCKED_UNRESOLVED_CUSTOMER" in {f["code"] for f in json.loads(captured.out)["findings"]}


def _with_row_key(table: str, old: str | None, new: str, value: object = None) -> dict[str, Any]:
    data = _fixture()
    row = data["dataverse"]["rows"][table][0]
    row[new] = row.pop(old) if old is not None else value
    return data


def test_a_misspelt_lookup_fails_with_the_nearest_column() -> None:
    data = _with_row_key(
        "work365_provideraccount", "work365_provideraccount_provider", "work365_provideraccount_provder"
    )
    with pytest.raises(FixtureError) as caught:
        load_fixture(data)
    assert str(caught.value) == (
        "fixture: dataverse.rows.work365_provideraccount[0]: unknown column 'work365_provideraccount_provder' "
        "of work365_provideraccount; did you mean 'work365_provideraccount_provider'? "
        "(a misspelt column would be ignored and hide findings)"
    )


def test_a_misspelt_column_through_the_cli_is_bad_input(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "typo.json"
    path.write_text(
        json.dumps(
            _with_row_key("work365_provider", "work365_provider_invoiceday", "work365_provider_invoicedays")
        ),
        encoding="utf-8",
    )
    code = main(["scan", "--simulate", str(path)])
    err = capsys.readouterr().err
    assert code == 2
    assert "did you mean 'work365_provider_invoiceday'?" in err


@pytest.mark.parametrize(
    "custom",
    ["contoso_region", "new_notes", "cr5a1_costcentre", "work365_provideraccount_somethingelse_entirely"],
)
def test_a_partner_s_own_columns_are_kept(custom: str) -> None:
    fixture = load_fixture(_with_row_key("work365_provideraccount", None, custom, "kept"))
    assert fixture.rows["work365_provideraccount"][0][custom] == "kept"
