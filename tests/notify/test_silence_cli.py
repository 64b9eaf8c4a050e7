"""`python -m diagnostics silence add|list|remove`, in process, on a state file of its own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from diagnostics.cli import main

KEY = "PI_IMPORT_ERROR:provider_invoice:3a496486-0f7b-56ee-afa0-d8b3fea8006c:2026-10"


@pytest.fixture(autouse=True)
def state_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "state.json"
    monkeypatch.setenv("DIAG_STATE_FILE", str(path))
    return path


def test_add_list_remove(capsys: pytest.CaptureFixture[str], state_file: Path) -> None:
    assert main(["silence", "add", "--dedup-key", KEY, "--until", "2099-01-31", "--reason", "MS 42"]) == 0
    add = ["silence", "add", "--code", "PI_CHECKSUM_MISMATCH", "--subject", "abc"]
    assert main([*add, "--until", "2099-02-01", "--reason", "override pending"]) == 0
    capsys.readouterr()
    assert main(["silence", "list", "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(s["dedup_key"], s["code"], s["until"], s["in_force"]) for s in listed] == [
        (KEY, None, "2099-01-31", True),
        (None, "PI_CHECKSUM_MISMATCH", "2099-02-01", True),
    ]
    assert "silence" in json.loads(state_file.read_text())  # in the state store, kind "silence"
    assert main(["silence", "remove", "--dedup-key", KEY]) == 0
    assert main(["silence", "remove", "--code", "PI_CHECKSUM_MISMATCH", "--subject", "abc"]) == 0
    capsys.readouterr()
    assert main(["silence", "list"]) == 0
    assert capsys.readouterr().out == "no silences\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dedup-key", KEY, "--until", "2020-01-01", "--reason", "x"], "is in the past"),
        (["--dedup-key", KEY, "--until", "soon", "--reason", "x"], "is not a date"),
        (["--until", "2099-01-01", "--reason", "x"], "name the finding by --dedup-key"),
        (["--code", "X", "--until", "2099-01-01", "--reason", "x"], "--code and --subject go together"),
        (["--dedup-key", KEY, "--until", "2099-01-01", "--reason", " "], "--reason is empty"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["silence", "add", *args]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1


def test_removing_what_is_not_silenced_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["silence", "remove", "--dedup-key", KEY]) == 2
    assert "no silence for" in capsys.readouterr().err
