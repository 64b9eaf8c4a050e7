"""`python -m simulator serve FIXTURE [--port N] [--latency-ms N] [--jitter-ms N]
[--page-cost-ms-per-1000 N] [--fault SPEC]...
[--fault-rate P [--seed S]] [--http]`; `python -m simulator generate --customers N [--seed S]`

Serves a fixture until Ctrl-C. A bad fixture, fault spec or busy port ends it with status 2 and one
line on stderr.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from simulator.faults import Fault
from simulator.fixture import FixtureError, load_fixture
from simulator.generate import generate
from simulator.server import Simulator

FAULT_HELP = (
    "comma-separated key=value: status=429|5xx, retry-after=SECONDS, times=N, path=/PREFIX, "
    "latency-ms=N, jitter-ms=N, and the flag drop; e.g. 'status=429,retry-after=2,times=3,path=/api/data' "
    "(repeatable)"
)


def parse_fault(spec: str) -> Fault:
    """A --fault SPEC as a Fault; raises ValueError with a readable reason."""
    fields: dict[str, object] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        key, sep, value = item.partition("=")
        if key == "drop" and not sep:
            fields["drop"] = True
        elif key == "status":
            fields["status"] = int(value)
        elif key == "retry-after":
            fields["retry_after"] = float(value)
        elif key == "times":
            fields["times"] = int(value)
        elif key == "path":
            fields["path_prefix"] = value
        elif key in ("latency-ms", "jitter-ms"):
            fields[key.removesuffix("-ms")] = float(value) / 1000
        else:
            raise ValueError(f"unknown fault field {item!r}")
    return Fault(**fields)  # type: ignore[arg-type]


def _fault(spec: str) -> Fault:
    try:
        return parse_fault(spec)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"bad --fault {spec!r}: {exc}") from None


def _rate(text: str) -> float:
    try:
        rate = float(text)
    except ValueError:
        rate = -1.0
    if not 0.0 <= rate <= 1.0:
        raise argparse.ArgumentTypeError(f"bad --fault-rate {text!r}: give a share between 0 and 1, e.g. 0.2")
    return rate


def _page_cost(text: str) -> float:
    try:
        cost = float(text)
    except ValueError:
        cost = -1.0
    if not cost >= 0:  # also NaN
        raise argparse.ArgumentTypeError(f"bad --page-cost-ms-per-1000 {text!r}: give milliseconds, e.g. 300")
    return cost


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m simulator", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve a tenant fixture on 127.0.0.1 until Ctrl-C")
    serve.add_argument("fixture", help="path of the tenant fixture (JSON)")
    serve.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    serve.add_argument("--latency-ms", type=float, default=0.0, help="delay every request by N ms")
    serve.add_argument("--jitter-ms", type=float, default=0.0, help="plus a random 0..N ms")
    serve.add_argument(
        "--page-cost-ms-per-1000",
        type=_page_cost,
        default=0.0,
        metavar="N",
        help="serve each page of rows N ms per 1,000 rows late, as Dataverse's time grows with rows (e.g. 300)",
    )
    serve.add_argument("--fault", type=_fault, action="append", default=[], help=FAULT_HELP)
    serve.add_argument(
        "--fault-rate",
        type=_rate,
        default=0.0,
        metavar="P",
        help="fail this share (0..1) of Dataverse, Partner Center and Teams requests: 429 with a short "
        "Retry-After, 503, a dropped connection or a slow answer",
    )
    serve.add_argument("--seed", type=int, default=None, help="seed of --fault-rate (repeatable runs)")
    serve.add_argument(
        "--http", action="store_true", help="plain http instead of https (azure-identity needs https)"
    )
    generate = commands.add_parser(
        "generate",
        help="print a generated tenant fixture (JSON) with planted faults, reproducible from a seed",
    )
    generate.add_argument("--customers", type=_positive, required=True, help="number of customers")
    generate.add_argument("--seed", type=int, default=1, help="the same seed gives the same tenant")
    generate.add_argument("--subscriptions", type=_positive, default=5, help="per customer")
    generate.add_argument("--usage", type=_positive, default=10, help="usage summaries per subscription")
    generate.add_argument(
        "--timeline",
        type=int,
        default=0,
        metavar="DAYS",
        help="also what happens over DAYS (1..60) after now: late invoices, usage landing, fixes, invoicing",
    )
    return parser


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"bad count {text!r}: give a whole number of at least 1")
    return int(text)


def _print_generated(args: argparse.Namespace) -> int:
    if not 0 <= args.timeline <= 60:
        print(f"error: --timeline {args.timeline}: give a number of days from 1 to 60", file=sys.stderr)
        return 2
    generated = generate(
        args.customers,
        args.seed,
        subscriptions=args.subscriptions,
        usage=args.usage,
        timeline_days=args.timeline,
    )
    json.dump(generated.fixture, sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")
    return 0


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "generate":
        return _print_generated(args)
    try:
        fixture = load_fixture(args.fixture)
        simulator = Simulator(fixture, port=args.port, tls=not args.http).start()
    except FixtureError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    if args.latency_ms or args.jitter_ms:
        simulator.inject(latency=args.latency_ms / 1000, jitter=args.jitter_ms / 1000)
    if args.page_cost_ms_per_1000 > 0:
        simulator.set_page_cost(args.page_cost_ms_per_1000)
    for fault in args.fault:
        simulator.faults.add(fault)
    if args.fault_rate:
        simulator.set_fault_rate(args.fault_rate, args.seed)
    sim = simulator
    print(f"Work 365 simulator serving {args.fixture} (now {fixture.now.isoformat()})")
    print(f"  Dataverse        {sim.dataverse_url}/api/data/v9.2/")
    print(f"  Partner Center   {sim.partner_center_url}/v1/invoices")
    print(f"  Entra authority  {sim.authority}  tenant {sim.tenant_id}")
    print(f"  client id        {sim.client_id}  secret {sim.client_secret}")
    print(f"  Teams webhook    {sim.teams_webhook_url}")
    if args.fault_rate:
        print(f"  Fault rate       {args.fault_rate:.0%} of requests (seed {args.seed})")
    if sim.ca_file:
        print(f"  CA certificate   {sim.ca_file}")
    print("Press Ctrl-C to stop.", flush=True)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
