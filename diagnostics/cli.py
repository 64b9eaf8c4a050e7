"""The command line: `python -m diagnostics scan | diagnose INVOICE | monitor | demo | schema verify |
silence add|list|remove | references evaluate CASES`.

Exit status: 0 no finding of warning or above (muted ones aside); 1 at least one; 2 bad usage,
configuration or input; 3 the run could not complete. Errors are one line on standard error,
never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from diagnostics import silences
from diagnostics.connect import real_connection, retry_policy, schema_map_of
from diagnostics.engine import needs_attention
from diagnostics.errors import AuthError, ConfigError, DiagnosticsError, InputError
from diagnostics.lifecycle import Silence
from diagnostics.periods import parse_as_of
from diagnostics.render import RENDERERS, cut, plain
from diagnostics.render_html import to_html
from diagnostics.service import Connection, scan, verify_schema
from diagnostics.settings import Settings, load_settings

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_INCOMPLETE = 0, 1, 2, 3
SAMPLE_TENANT = Path(__file__).resolve().parent.parent / "simulator" / "samples" / "sample-tenant.json"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, not argparse's usage block: the contract's "one-line reason".
        # The message quotes what was typed, which may hold line breaks or escapes: made plain.
        self.exit(EXIT_USAGE, f"error: {cut(plain(message), 600)} (see '{self.prog} --help')\n")


def _verbose(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=default,
        help="log each request and the canonical log line",
    )


def _common(parser: argparse.ArgumentParser, *, formats: Sequence[str] = ("text", "json", "html")) -> None:
    # -v after the subcommand too; SUPPRESS keeps a -v given before it from being reset.
    _verbose(parser, argparse.SUPPRESS)
    parser.add_argument("--simulate", metavar="FIXTURE", type=Path, help="run against a simulated tenant")
    parser.add_argument(
        "--dataverse-url",
        metavar="URL",
        help="the Dataverse environment, e.g. https://contoso.crm.dynamics.com",
    )
    parser.add_argument("--as-of", metavar="ISO", help="the clock: an ISO 8601 date or time (UTC)")
    parser.add_argument("--format", choices=formats, default="text")
    parser.add_argument("--schema-map", metavar="FILE", type=Path, help="schema-map override file (JSON)")


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a share between 0 and 1 (e.g. 0.2)")
    return value


def _days(text: str) -> int:
    from diagnostics.replay import MAX_DAYS  # noqa: PLC0415

    if not text.isdigit() or not 1 <= int(text) <= MAX_DAYS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days from 1 to {MAX_DAYS}")
    return int(text)


def _monitor(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--simulate", metavar="FIXTURE", type=Path, required=True, help="the tenant fixture to replay"
    )
    parser.add_argument(
        "--days", type=_days, help="simulated days to run (default: until nothing is pending, at most 45)"
    )
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument(
        "--fault-rate", type=_share, default=0.0, metavar="P", help="share of simulator requests that fail"
    )
    parser.add_argument(
        "--duplicate-rate",
        type=_share,
        default=0.0,
        metavar="P",
        help="share of messages the broker delivers twice",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault and duplicate choices")
    parser.add_argument("--html", metavar="FILE", type=Path, help="also write the final HTML report here")
    _verbose(parser, argparse.SUPPRESS)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m diagnostics", description="Diagnose missing Work 365 usage invoices.")
    _verbose(parser, False)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _common(sub.add_parser("scan", help="every check over the tenant, for the period under review"))
    diagnose = sub.add_parser("diagnose", help="one provider invoice, by id or invoice number")
    diagnose.add_argument("invoice", metavar="INVOICE")
    _common(diagnose)
    _monitor(sub.add_parser("monitor", help="replay the daily monitor over simulated days (local)"))
    demo = sub.add_parser("demo", help="the monitor's month on the bundled sample tenant (simulated)")
    demo.add_argument("--format", choices=("text", "json"), default="text")
    demo.add_argument("--html", metavar="FILE", type=Path, help="also write the final HTML report here")
    _verbose(demo, argparse.SUPPRESS)
    schema = sub.add_parser("schema", help="the schema map")
    schema_sub = schema.add_subparsers(dest="schema_command", required=True, parser_class=_Parser)
    verify = schema_sub.add_parser("verify", help="check the schema map against the environment's metadata")
    _common(verify, formats=("text", "json"))
    verify.add_argument("--write", metavar="FILE", type=Path, help="write the proposed override file here")
    silence = sub.add_parser("silence", help="silence a finding's alerts until a date (add, list, remove)")
    silences.add_arguments(silence, _Parser)
    _references(sub.add_parser("references", help="the account matcher (evaluate it on labelled cases)"))
    return parser


def _references(parser: argparse.ArgumentParser) -> None:
    from diagnostics.references.match import DEFAULT_THRESHOLD  # noqa: PLC0415  (rapidfuzz on demand)

    commands = parser.add_subparsers(dest="references_command", required=True, parser_class=_Parser)
    evaluate = commands.add_parser(
        "evaluate",
        help="rank and auto-fix labelled cases; print top-1, precision and recall",
        description='One case a JSON line: {"provider": {"name": …, "domain": …}, "candidates": '
        '[{"id": …, "name": …, "website": …}], "answer": <candidate id or null>} (optional '
        '"linked": [account ids], "kind", "note"). The last line reads \'references: precision P, '
        "recall R, top-1 T over N cases'. Exit 1 when auto-fix would map a wrong account.",
    )
    evaluate.add_argument("cases", metavar="CASES.jsonl", type=Path)
    evaluate.add_argument(
        "--threshold",
        type=_share,
        default=DEFAULT_THRESHOLD,
        metavar="P",
        help=f"auto-fix's minimum confidence (default {DEFAULT_THRESHOLD})",
    )
    evaluate.add_argument("--misses", action="store_true", help="list the cases whose top proposal is wrong")


def _cmd_references(args: argparse.Namespace) -> int:
    from diagnostics.references.evaluate import run  # noqa: PLC0415

    text, evaluation = run(args.cases, args.threshold, misses=args.misses)
    _print(text)
    return EXIT_FINDINGS if evaluation.wrongly_applied else EXIT_OK


@dataclass(frozen=True)
class Target:
    connection: Connection
    as_of: datetime


@contextmanager
def _simulated(args: argparse.Namespace, settings: Settings) -> Iterator[Target]:
    try:
        from simulator import Simulator, load_fixture  # noqa: PLC0415  (a dev tool, not deployed)
        from simulator.connect import connection  # noqa: PLC0415
    except ImportError:
        raise ConfigError(
            "--simulate needs the simulator package, which is not deployed; run from the repository"
        ) from None
    fixture = load_fixture(args.simulate)
    schema_map = schema_map_of(settings, args.schema_map)
    with Simulator(fixture) as sim:
        conn = connection(
            sim, schema_map=schema_map, thresholds=settings.thresholds, retry=retry_policy(settings)
        )
        yield Target(conn, parse_as_of(args.as_of, today=sim.now) if args.as_of else sim.now)


@contextmanager
def _target(args: argparse.Namespace, settings: Settings) -> Iterator[Target]:
    if args.simulate is not None:
        if args.dataverse_url:
            raise InputError("--simulate and --dataverse-url exclude each other; pass one")
        with _simulated(args, settings) as target:
            yield target
        return
    url = args.dataverse_url
    if url is not None:
        url = load_settings({}, dataverse_url=url).dataverse_url  # same validation as the setting
    conn = real_connection(settings, url, args.schema_map)
    yield Target(conn, parse_as_of(args.as_of) if args.as_of else datetime.now(UTC))


def _print(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _silences(settings: Settings) -> list[Silence]:
    """The silences to mark in the report; when the state store cannot be read, none (every
    finding then alerts, which is never less safe) and a one-line warning."""
    try:
        return silences.stored(settings)
    except DiagnosticsError as exc:
        print(f"warning: silences not applied: {exc}", file=sys.stderr)
        return []


def _cmd_scan(args: argparse.Namespace, settings: Settings) -> int:
    with _target(args, settings) as target:
        report = asyncio.run(scan(target.connection, target.as_of, getattr(args, "invoice", None)))
        report = silences.silenced_report(report, _silences(settings), target.as_of.date())
        if args.format == "html":
            _print(to_html(report, runbook_base=settings.runbook_base_url))
        else:
            _print(RENDERERS[args.format](report))
        if args.verbose:
            counts = target.connection.requests.by_service()
            print(f"requests: {counts}", file=sys.stderr)
    return EXIT_FINDINGS if needs_attention(report) else EXIT_OK


def _cmd_monitor(args: argparse.Namespace, settings: Settings) -> int:
    from diagnostics.replay import ReplayOptions, run_replay, to_json, to_text  # noqa: PLC0415

    options = ReplayOptions(args.simulate, args.days, args.fault_rate, args.duplicate_rate, args.seed)
    root = logging.getLogger()
    level = root.level
    if not getattr(args, "verbose", False):
        # The story says what happened; the SDKs' and handlers' own warnings (a retried delivery,
        # a link closed on exit) would only bury it, with tracebacks. -v shows them.
        root.setLevel(logging.CRITICAL)
    try:
        replay = run_replay(options, settings)
    finally:
        root.setLevel(level)  # in process (tests, embedding), later logging is not silenced
    report = replay.final_report
    if args.html is not None and report is not None:
        _write(args.html, to_html(report, runbook_base=settings.runbook_base_url))
    _print(to_json(replay) if args.format == "json" else to_text(replay))
    return EXIT_FINDINGS if report is not None and needs_attention(report) else EXIT_OK


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror}; pass a writable --html FILE") from None


def _cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    if not SAMPLE_TENANT.is_file():
        raise ConfigError(f"the sample tenant {SAMPLE_TENANT} is missing; run the demo from the repository")
    namespace = argparse.Namespace(
        simulate=SAMPLE_TENANT,
        days=None,
        format=args.format,
        fault_rate=0.0,
        duplicate_rate=0.0,
        seed=0,
        verbose=args.verbose,
        html=args.html,
    )
    if args.format == "text":
        print(
            f"Demo: the daily monitor over a month of a simulated Work 365 tenant ({SAMPLE_TENANT.name}),\n"
            "run by the Function app's own functions against a local Dataverse and Service Bus\n"
        )
    code = _cmd_monitor(namespace, settings)
    # The demo shows findings on purpose: its exit status says it ran, not that the tenant is healthy.
    return EXIT_OK if code in (EXIT_OK, EXIT_FINDINGS) else code


def _verification_text(verification: Any, source: str) -> str:
    if not verification.problems:
        return f"Schema map ({source}) matches the environment: every table, column and status label was found.\n"
    lines = [f"Schema map ({source}): {len(verification.problems)} difference(s) with the environment"]
    for problem in verification.problems:
        proposal = f" → proposed: {problem.proposal}" if problem.proposal else " → no match found"
        lines.append(f"  {problem.kind:<6} {problem.detail}{proposal}")
    lines += ["", "Proposed override file:", json.dumps(verification.proposed, indent=2)]
    return "\n".join(lines) + "\n"


def _cmd_schema_verify(args: argparse.Namespace, settings: Settings) -> int:
    with _target(args, settings) as target:
        verification = asyncio.run(verify_schema(target.connection))
    source = target.connection.schema_map.source
    if args.format == "json":
        _print(
            json.dumps(
                {
                    "schema_map": source,
                    "differences": [p.as_evidence() for p in verification.problems],
                    "proposed_override_file": verification.proposed,
                },
                indent=2,
            )
        )
    else:
        _print(_verification_text(verification, source))
    if args.write is not None:
        try:
            args.write.write_text(json.dumps(verification.proposed, indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot write {args.write}: {exc.strerror}") from None
    return EXIT_FINDINGS if verification.problems else EXIT_OK


def _error(exc: BaseException) -> None:
    # One line, whatever the message carries (tenant text, a service's answer).
    print(f"error: {cut(plain(exc), 600)}", file=sys.stderr)


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(message)s"
    )
    # The Azure SDK logs multi-line dumps (every credential DefaultAzureCredential tried, each HTTP
    # exchange); the one-line error says what to do, and -v logs each request once, from the adapters.
    logging.getLogger("azure").setLevel(logging.WARNING if verbose else logging.ERROR)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if verbose:
        logging.getLogger("diagnostics.adapters").setLevel(logging.DEBUG)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _configure_logging(args.verbose)
    try:
        if args.command == "references":  # offline: needs no settings
            return _cmd_references(args)
        settings = load_settings()
        if args.command == "scan":
            return _cmd_scan(args, settings)
        if args.command == "diagnose":
            return _cmd_scan(args, settings)
        if args.command == "monitor":
            return _cmd_monitor(args, settings)
        if args.command == "demo":
            return _cmd_demo(args, settings)
        if args.command == "silence":
            from diagnostics.app.container import state_store  # noqa: PLC0415  (loads the SDKs)

            _print(silences.run(args, state_store(settings)))
            return EXIT_OK
        return _cmd_schema_verify(args, settings)
    except (InputError, ConfigError, AuthError) as exc:
        # A refused sign-in or a missing privilege is configuration too: retrying will not help.
        _error(exc)
        return EXIT_USAGE
    except DiagnosticsError as exc:
        _error(exc)
        return EXIT_INCOMPLETE
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_INCOMPLETE
    except Exception as exc:
        logging.getLogger("diagnostics").debug("internal error", exc_info=True)
        print(
            f"error: internal error ({type(exc).__name__}: {cut(plain(exc), 200)}); run with -v and report it",
            file=sys.stderr,
        )
        return EXIT_INCOMPLETE
