"""`python -m diagnostics references evaluate`: the shipped labelled set, the figures, bad files."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from diagnostics.cli import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, main
from diagnostics.references.evaluate import evaluate, load_cases, run, summary_line

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "data" / "reference-cases.jsonl"
SUMMARY = re.compile(
    r"^references: precision (\d+\.\d%|n/a), recall (\d+\.\d%|n/a), top-1 (\d+\.\d%|n/a) over (\d+) cases$"
)


def test_the_shipped_set_auto_fixes_no_wrong_account_and_ranks_the_right_one_first() -> None:
    cases = load_cases(SHIPPED)
    assert len(cases) >= 200
    evaluation = evaluate(cases)
    assert evaluation.wrongly_applied == []
    assert evaluation.precision == 1.0
    assert evaluation.top1 is not None
    assert evaluation.top1 > 0.9
    assert evaluation.recall is not None
    assert evaluation.recall > 0.5  # declining everything would be "precise" too


def test_the_shipped_set_is_varied() -> None:
    cases = load_cases(SHIPPED)
    kinds = {c.kind for c in cases}
    assert {"same-entity", "sister-present", "subsidiary", "absent", "trading", "typo", "hard"} <= kinds
    assert sum(c.answer is None for c in cases) >= 40  # cases where no candidate is right
    assert sum(c.party.domain is None for c in cases) >= 40  # and where the provider gave no domain
    assert sum(len(c.candidates) >= 3 for c in cases) >= 100  # decoys


def test_the_shipped_set_is_what_the_script_writes(tmp_path: Path) -> None:
    out = tmp_path / "cases.jsonl"
    subprocess.run(
        [sys.executable, str(ROOT / "data" / "make_reference_cases.py"), "--out", str(out)],
        check=True,
        capture_output=True,
    )
    assert out.read_text(encoding="utf-8") == SHIPPED.read_text(encoding="utf-8")


def _write(tmp_path: Path, *cases: object) -> Path:
    path = tmp_path / "cases.jsonl"
    path.write_text(
        "\n".join(c if isinstance(c, str) else json.dumps(c) for c in cases) + "\n", encoding="utf-8"
    )
    return path


def _case(
    name: str, candidates: list[tuple[str, str]], answer: str | None, domain: str | None = None
) -> dict[str, object]:
    return {
        "provider": {"name": name, **({"domain": domain} if domain else {})},
        "candidates": [{"id": i, "name": n} for i, n in candidates],
        "answer": answer,
    }


def test_the_figures_follow_their_definitions(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        _case("Contoso Ltd", [("c", "Contoso Limited"), ("f", "Fabrikam")], "c"),  # applied, right
        _case("Contoso Ltd", [("p", "Contoso Pharma Ltd")], None),  # nothing confident: top-1 right
        _case(
            "Fabrikam Inc", [("f", "Fabrikam Inc."), ("g", "Fabrikam Incorporated")], "f"
        ),  # tie: not applied
        _case(
            "Litware", [("l", "Litware")], None
        ),  # labelled "none", yet a confident proposal: top-1 wrong, applied wrong
        "",  # blank lines are skipped
    )
    text, evaluation = run(path)
    assert len(evaluation.outcomes) == 4
    assert [o.top1 for o in evaluation.outcomes] == [True, True, True, False]
    assert evaluation.precision == 0.5  # two applied, one right
    assert evaluation.recall == 0.5  # two with an answer, one applied to it
    assert text.splitlines()[-1] == "references: precision 50.0%, recall 50.0%, top-1 75.0% over 4 cases"
    assert "auto-fix would map a WRONG account in 1 case(s):" in text
    assert "line 4: 'Litware' → Litware (" in text


def test_the_last_line_says_n_a_when_nothing_is_applied(tmp_path: Path) -> None:
    path = _write(tmp_path, _case("Contoso Ltd", [("p", "Contoso Pharma Ltd")], None))
    _, evaluation = run(path)
    assert summary_line(evaluation) == "references: precision n/a, recall n/a, top-1 100.0% over 1 cases"


def test_the_command_prints_the_definitions_and_ends_with_the_summary(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["references", "evaluate", str(SHIPPED), "--misses"]) == EXIT_OK
    out = capsys.readouterr().out.splitlines()
    assert SUMMARY.match(out[-1])
    assert out[-1].startswith("references: precision 100.0%, recall ")
    assert any(line.startswith("Top-1: the best proposal is the answer") for line in out)


def test_a_wrong_auto_fix_exits_1_and_a_threshold_changes_what_is_applied(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, _case("Litware", [("l", "Litware")], None))
    assert main(["references", "evaluate", str(path)]) == EXIT_FINDINGS
    assert capsys.readouterr().out.splitlines()[-1].startswith("references: precision 0.0%,")
    assert main(["references", "evaluate", str(path), "--threshold", "0.99"]) == EXIT_OK
    assert capsys.readouterr().out.splitlines()[-1] == (
        "references: precision n/a, recall n/a, top-1 100.0% over 1 cases"
    )


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["{oops"], "line 1: not JSON (Expecting property name enclosed in double quotes at column 2)"),
        (["[]"], "line 1: a case must be a JSON object"),
        (['{"provider": {"name": "A"}, "candidates": [], "anwser": null}'], "line 1: unknown key 'anwser'"),
        (['{"provider": "A", "candidates": [], "answer": null}'], 'line 1: "provider" must be an object'),
        (
            ['{"provider": {"name": " "}, "candidates": [], "answer": null}'],
            "the provider's name must be a non-empty",
        ),
        (
            ['{"provider": {"name": "A", "domain": 3}, "candidates": [], "answer": null}'],
            "the provider's domain must",
        ),
        (['{"provider": {"name": "A"}, "candidates": {}, "answer": null}'], '"candidates" must be a list'),
        (['{"provider": {"name": "A"}, "candidates": [1], "answer": null}'], "candidate 1 is not an object"),
        (
            ['{"provider": {"name": "A"}, "candidates": [{"id": "x"}], "answer": null}'],
            "candidate 1's name must",
        ),
        (
            [
                '{"provider": {"name": "A"}, "candidates": [{"id": "x", "name": "B"}, {"id": "x", "name": "C"}], "answer": null}'
            ],
            "candidate id 'x' appears twice",
        ),
        (['{"provider": {"name": "A"}, "candidates": []}'], '"answer" is missing'),
        (
            ['{"provider": {"name": "A"}, "candidates": [], "answer": "x"}'],
            "the answer 'x' is not one of the candidates",
        ),
        (
            ['{"provider": {"name": "A"}, "candidates": [], "answer": null, "linked": "x"}'],
            '"linked" must be a list',
        ),
        (['{"provider": {"name": "A"}, "candidates": [], "answer": null}', "", "{oops"], "line 3: not JSON"),
    ],
)
def test_a_bad_line_is_one_error_naming_the_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], lines: list[str], message: str
) -> None:
    path = tmp_path / "cases.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["references", "evaluate", str(path)]) == EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == ""
    [error] = captured.err.splitlines()
    assert error.startswith(f"error: {path}, line ")
    assert message in error


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read {path}: No such file or directory"),
        (b"", "{path} holds no case"),
        (
            b'{"provider": {"name": "A"}, "candidates": [], "answer": null}\n\xff\xfe\n',
            "{path}, line 2: not UTF-8 text",
        ),
    ],
)
def test_an_unreadable_or_empty_file_is_one_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | None, message: str
) -> None:
    path = tmp_path / "cases.jsonl"
    if content is not None:
        path.write_bytes(content)
    assert main(["references", "evaluate", str(path)]) == EXIT_USAGE
    [error] = capsys.readouterr().err.splitlines()
    assert message.format(path=path) in error


def test_the_threshold_must_be_a_share(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["references", "evaluate", str(SHIPPED), "--threshold", "1.5"])
    assert exit_.value.code == EXIT_USAGE
    [error] = capsys.readouterr().err.splitlines()
    assert "'1.5' is not a share between 0 and 1" in error
