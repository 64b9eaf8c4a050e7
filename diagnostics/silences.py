"""`python -m diagnostics silence add | list | remove`: silences kept in the state store (kind
"silence"), read by the notifier on every run. A silenced finding stays in the report and the note,
marked silenced; it is never posted to Teams.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import UTC, date, datetime

from diagnostics.engine import sort_key
from diagnostics.errors import InputError
from diagnostics.lifecycle import SILENCE, Silence, apply_silences
from diagnostics.model import Report, Statistics
from diagnostics.ports import StateStore
from diagnostics.settings import Settings


def add_arguments(parser: argparse.ArgumentParser, parser_class: type[argparse.ArgumentParser]) -> None:
    sub = parser.add_subparsers(dest="silence_command", required=True, parser_class=parser_class)
    add = sub.add_parser("add", help="silence a finding until a date")
    _which(add)
    add.add_argument("--until", required=True, metavar="YYYY-MM-DD", help="the last day it stays silenced")
    add.add_argument("--reason", required=True, help="why (e.g. the Microsoft ticket number)")
    listing = sub.add_parser("list", help="the silences in force and expired")
    listing.add_argument("--format", choices=("text", "json"), default="text")
    remove = sub.add_parser("remove", help="end a silence now")
    _which(remove)


def _which(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dedup-key", metavar="KEY", help="the finding's dedup_key (from the report)")
    parser.add_argument("--code", help="a finding code, with --subject")
    parser.add_argument("--subject", metavar="ID", help="the subject's id (from the report), with --code")


def _silence_of(args: argparse.Namespace, until: date, reason: str) -> Silence:
    if bool(args.dedup_key) == bool(args.code or args.subject):
        raise InputError("name the finding by --dedup-key KEY, or by --code CODE and --subject ID")
    if not args.dedup_key and not (args.code and args.subject):
        raise InputError("--code and --subject go together")
    for option, value in (
        ("--dedup-key", args.dedup_key),
        ("--code", args.code),
        ("--subject", args.subject),
    ):
        if value and any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
            raise InputError(f"{option} has a control character; copy it from the report")
    return Silence(
        until=until,
        reason=reason,
        dedup_key=args.dedup_key or None,
        code=args.code or None,
        subject_id=args.subject or None,
        created_at=datetime.now(UTC),
    )


def _until(text: str, today: date) -> date:
    try:
        until = date.fromisoformat(text)
    except ValueError:
        raise InputError(f"--until {text!r} is not a date such as 2026-12-31") from None
    if until < today:
        raise InputError(f"--until {until.isoformat()} is in the past; a silence lasts until a coming day")
    return until


def run(args: argparse.Namespace, state: StateStore, *, today: date | None = None) -> str:
    """The command's output (one line or a listing). Raises InputError for bad arguments."""
    today = today or datetime.now(UTC).date()
    try:
        return asyncio.run(_run(args, state, today))
    except ValueError as exc:  # a key the state store cannot hold (e.g. the local file's rules)
        raise InputError(f"that silence cannot be stored: {exc}") from None


async def _run(args: argparse.Namespace, state: StateStore, today: date) -> str:
    if args.silence_command == "add":
        if not args.reason.strip():
            raise InputError("--reason is empty; say why (e.g. the Microsoft ticket number)")
        silence = _silence_of(args, _until(args.until, today), args.reason.strip())
        stored = await state.get(SILENCE, silence.key)
        await state.put(SILENCE, silence.key, silence.to_value(), etag=stored.etag if stored else None)
        return f"silenced {_what(silence)} until {silence.until.isoformat()} ({silence.reason})"
    if args.silence_command == "remove":
        silence = _silence_of(args, today, "")
        if await state.get(SILENCE, silence.key) is None:
            raise InputError(f"no silence for {_what(silence)}; see 'silence list'")
        await state.delete(SILENCE, silence.key)
        return f"removed the silence of {_what(silence)}"
    silences = sorted(
        (Silence.from_value(stored.value) for _, stored in await state.list(SILENCE)),
        key=lambda s: (s.until, s.key),
    )
    if args.format == "json":
        return json.dumps(
            [s.to_value() | {"in_force": s.until >= today} for s in silences], indent=2, ensure_ascii=False
        )
    if not silences:
        return "no silences"
    return "\n".join(
        f"{_what(s)}  until {s.until.isoformat()}{'' if s.until >= today else ' (expired)'}  — {s.reason}"
        for s in silences
    )


def _what(silence: Silence) -> str:
    if silence.dedup_key:
        return silence.dedup_key
    return f"{silence.code} on {silence.subject_id}"


async def load(state: StateStore) -> list[Silence]:
    """The silences stored; an unreadable one is left out (and `silence list` shows the rest)."""
    found = []
    for _, stored in await state.list(SILENCE):
        try:
            found.append(Silence.from_value(stored.value))
        except (KeyError, TypeError, ValueError):
            continue
    return found


def stored(settings: Settings) -> list[Silence]:
    """The silences in the state store the settings name (the one `silence add` writes to)."""
    from diagnostics.app.container import state_store  # noqa: PLC0415  (loads the SDKs)

    store = state_store(settings)

    async def read() -> list[Silence]:
        try:
            return await load(store)
        finally:
            closing = getattr(store, "aclose", None)
            if closing is not None:
                await closing()

    return asyncio.run(read())


def silenced_report(report: Report, silences: list[Silence], today: date) -> Report:
    """The report with the findings a silence in force covers marked silenced, and counted so."""
    if not silences:
        return report
    findings = sorted(apply_silences(report.findings, silences, today), key=sort_key)
    statistics = Statistics.of(findings, checks=report.statistics.checks, passed=report.statistics.passed)
    return report.model_copy(update={"findings": tuple(findings), "statistics": statistics})
