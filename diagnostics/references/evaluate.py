"""How good the account matcher is on labelled cases: `python -m diagnostics references evaluate`.

A case is one JSON object a line (blank lines are skipped):

    {"provider": {"name": "Contoso Ltd", "domain": "contoso.com"},
     "candidates": [{"id": "a1", "name": "Contoso Limited", "website": "https://contoso.com"}],
     "answer": "a1"}

`domain` and `website` may be absent or null; `answer` is a candidate's id, or null when none of
the candidates is the customer; optional `linked` lists the account ids other provider accounts of
the customer are mapped to (`Party.linked_account_ids`), `kind` groups cases in the report, `note`
is free text.

Each case runs the same `rank` and `choose` as the reference-resolution handler. Measured:
- top-1: the best proposal is the answer; for a case whose answer is null, no proposal reaches
  the threshold (a person would be shown nothing confident);
- auto-fix precision: of the accounts `choose` would map, the share that is the answer ("n/a"
  when it maps none); recall: of the cases with an answer, the share `choose` maps to it.
The last line is exactly `references: precision P, recall R, top-1 T over N cases`, each figure a
percentage with one decimal (`precision 100.0%`) or `n/a`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from diagnostics.errors import InputError
from diagnostics.references.match import (
    DEFAULT_MARGIN,
    DEFAULT_THRESHOLD,
    Candidate,
    Party,
    Proposal,
    choose,
    rank,
)

_KEYS = frozenset({"provider", "candidates", "answer", "linked", "kind", "note"})
_BANDS = ((0.9, 1.01), (0.8, 0.9), (0.6, 0.8), (0.4, 0.6), (0.0, 0.4))


@dataclass(frozen=True)
class Case:
    line: int
    party: Party
    candidates: tuple[Candidate, ...]
    answer: str | None
    kind: str = ""


@dataclass(frozen=True)
class Outcome:
    case: Case
    proposals: tuple[Proposal, ...]
    chosen: Proposal | None
    top1: bool


@dataclass
class Evaluation:
    threshold: float
    margin: float
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def applied(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.chosen is not None]

    @property
    def wrongly_applied(self) -> list[Outcome]:
        return [o for o in self.applied if o.chosen is not None and o.chosen.candidate.id != o.case.answer]

    @property
    def precision(self) -> float | None:
        applied = self.applied
        return (len(applied) - len(self.wrongly_applied)) / len(applied) if applied else None

    @property
    def recall(self) -> float | None:
        answered = [o for o in self.outcomes if o.case.answer is not None]
        right = [o for o in answered if o.chosen is not None and o.chosen.candidate.id == o.case.answer]
        return len(right) / len(answered) if answered else None

    @property
    def top1(self) -> float | None:
        return sum(o.top1 for o in self.outcomes) / len(self.outcomes) if self.outcomes else None


def _fail(path: Path, line: int, what: str) -> InputError:
    return InputError(f"{path}, line {line}: {what}; see 'python -m diagnostics references evaluate --help'")


def _optional(value: Any, what: str, path: Path, line: int) -> str | None:
    return None if value is None else _required(value, what, path, line)


def _required(value: Any, what: str, path: Path, line: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(path, line, f"{what} must be a non-empty string")
    return value


def _candidate(value: Any, index: int, path: Path, line: int) -> Candidate:
    if not isinstance(value, Mapping):
        raise _fail(path, line, f"candidate {index + 1} is not an object")
    return Candidate(
        _required(value.get("id"), f"candidate {index + 1}'s id", path, line),
        _required(value.get("name"), f"candidate {index + 1}'s name", path, line),
        _optional(value.get("website"), f"candidate {index + 1}'s website", path, line),
    )


def _linked(value: Any, path: Path, line: int) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _fail(path, line, '"linked" must be a list of account ids')
    return tuple(value)


def parse_case(text: str, path: Path, line: int) -> Case:
    """One line of a cases file; an InputError naming the file, line and what is wrong."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(path, line, f"not JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(data, Mapping):
        raise _fail(path, line, "a case must be a JSON object")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise _fail(path, line, f"unknown key {unknown[0]!r} (expected {', '.join(sorted(_KEYS))})")
    provider = data.get("provider")
    if not isinstance(provider, Mapping):
        raise _fail(path, line, '"provider" must be an object with a "name"')
    name = _required(provider.get("name"), "the provider's name", path, line)
    domain = _optional(provider.get("domain"), "the provider's domain", path, line)
    raw_candidates = data.get("candidates")
    if not isinstance(raw_candidates, list):
        raise _fail(path, line, '"candidates" must be a list (empty when the CRM has none)')
    candidates = tuple(_candidate(c, i, path, line) for i, c in enumerate(raw_candidates))
    twice = [i for i, n in Counter(c.id for c in candidates).items() if n > 1]
    if twice:
        raise _fail(path, line, f"candidate id {twice[0]!r} appears twice")
    if "answer" not in data:
        raise _fail(path, line, '"answer" is missing (a candidate id, or null for none)')
    answer = _optional(data["answer"], '"answer"', path, line)
    if answer is not None and answer not in {c.id for c in candidates}:
        raise _fail(path, line, f"the answer {answer!r} is not one of the candidates' ids")
    kind = data.get("kind") or ""
    if not isinstance(kind, str):
        raise _fail(path, line, '"kind" must be a string')
    party = Party(name, domain, _linked(data.get("linked"), path, line))
    return Case(line, party, candidates, answer, kind)


def load_cases(path: Path) -> list[Case]:
    """Every case of a cases file; an InputError for an unreadable file, a bad line, or no case."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}; pass a JSON-lines cases file") from None
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise _fail(path, line, "not UTF-8 text") from None
    cases = [parse_case(row, path, n) for n, row in enumerate(text.splitlines(), start=1) if row.strip()]
    if not cases:
        raise InputError(f"{path} holds no case; write one JSON object a line")
    return cases


def _outcome(case: Case, threshold: float, margin: float) -> Outcome:
    proposals = tuple(rank(case.party, case.candidates))
    chosen = choose(proposals, threshold, margin)
    if case.answer is None:
        top1 = not proposals or proposals[0].confidence < threshold
    else:
        top1 = bool(proposals) and proposals[0].candidate.id == case.answer
    return Outcome(case, proposals, chosen, top1)


def evaluate(
    cases: Iterable[Case], threshold: float = DEFAULT_THRESHOLD, margin: float = DEFAULT_MARGIN
) -> Evaluation:
    """Each case through `rank` and `choose`, as the handler runs them."""
    return Evaluation(threshold, margin, [_outcome(c, threshold, margin) for c in cases])


def percent(share: float | None) -> str:
    return "n/a" if share is None else f"{share * 100:.1f}%"


def summary_line(evaluation: Evaluation) -> str:
    return (
        f"references: precision {percent(evaluation.precision)}, recall {percent(evaluation.recall)}, "
        f"top-1 {percent(evaluation.top1)} over {len(evaluation.outcomes)} cases"
    )


def _by_kind(outcomes: Sequence[Outcome]) -> list[str]:
    kinds = sorted({o.case.kind for o in outcomes if o.case.kind})
    if not kinds:
        return []
    lines = ["", f"  {'kind':<16}{'cases':>6}{'top-1':>8}{'applied':>9}{'wrong':>7}"]
    for kind in kinds:
        group = [o for o in outcomes if o.case.kind == kind]
        applied = [o for o in group if o.chosen is not None]
        wrong = [o for o in applied if o.chosen is not None and o.chosen.candidate.id != o.case.answer]
        top1 = percent(sum(o.top1 for o in group) / len(group))
        lines.append(f"  {kind:<16}{len(group):>6}{top1:>8}{len(applied):>9}{len(wrong):>7}")
    return lines


def _calibration(outcomes: Sequence[Outcome]) -> list[str]:
    """How often the best proposal is the answer, per band of its confidence: the confidence is
    meant as that chance."""
    lines = ["", "  best proposal's confidence → how often it is the answer"]
    for low, high in _BANDS:
        group = [o for o in outcomes if o.proposals and low <= o.proposals[0].confidence < high]
        if group:
            right = sum(o.proposals[0].candidate.id == o.case.answer for o in group)
            lines.append(
                f"  {low:.1f}–{min(high, 1.0):.1f}: {right}/{len(group)} ({percent(right / len(group))})"
            )
    return lines


def _described(outcome: Outcome, proposal: Proposal | None) -> str:
    case = outcome.case
    answer = next((c.name for c in case.candidates if c.id == case.answer), None)
    shown = f"{proposal.candidate.name} ({proposal.confidence:.2f})" if proposal else "nothing"
    return f"  line {case.line}: {case.party.name!r} → {shown}; answer: {answer or 'none of them'}"


def to_text(evaluation: Evaluation, source: str, *, misses: bool = False) -> str:
    outcomes = evaluation.outcomes
    answered = sum(o.case.answer is not None for o in outcomes)
    lines = [
        f"Account matcher on {source}: {len(outcomes)} cases, {answered} with a right account, "
        f"{len(outcomes) - answered} with none.",
        f"Auto-fix maps the best proposal when its confidence is at least {evaluation.threshold:.2f} and the "
        f"next one is below that and at least {evaluation.margin:.2f} behind.",
        "Top-1: the best proposal is the answer; when no candidate is right, no proposal reaches the threshold.",
        "Precision: of the accounts auto-fix would map, the share that is right; recall: of the cases with a "
        "right account, the share auto-fix maps to it.",
        *_by_kind(outcomes),
        *_calibration(outcomes),
    ]
    wrong = evaluation.wrongly_applied
    if wrong:
        lines += ["", f"  auto-fix would map a WRONG account in {len(wrong)} case(s):"]
        lines += [_described(o, o.chosen) for o in wrong]
    if misses:
        missed = [o for o in outcomes if not o.top1]
        lines += ["", f"  top-1 misses ({len(missed)}):"]
        lines += [_described(o, o.proposals[0] if o.proposals else None) for o in missed]
    lines += ["", summary_line(evaluation)]
    return "\n".join(lines) + "\n"


def run(path: Path, threshold: float = DEFAULT_THRESHOLD, *, misses: bool = False) -> tuple[str, Evaluation]:
    """The report on a cases file and the evaluation behind it."""
    evaluation = evaluate(load_cases(path), threshold)
    return to_text(evaluation, str(path), misses=misses), evaluation
