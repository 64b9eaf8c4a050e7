"""Fuzzing the inputs a user types: no argument list and no HTTP request ends in "internal error".

The command line is driven in-process with argument lists built from its real subcommands and
options and arbitrary strings (ids, dates, formats, paths that do not exist), against no service:
every run ends with exit 0-3 and at most one line on standard error. A tiny fixture is simulated
now and then, so that valid-looking arguments also reach a scan. The HTTP diagnose handler gets
arbitrary ids and clocks against the simulated sample tenant: a status it documents and, on error,
one line of JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from diagnostics.app.container import use_container
from diagnostics.cli import main
from diagnostics.http_api import diagnose_request
from simulator import Simulator, load_fixture

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "scenarios" / "healthy_before_invoice_day.json"
SAMPLE = ROOT / "simulator" / "samples" / "sample-tenant.json"

# Arbitrary text, and text shaped like what the options expect.
_TEXT = st.text(max_size=30)
_ID = st.one_of(
    _TEXT,
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._/%-]{0,20}", fullmatch=True),
    st.uuids().map(str),
    st.sampled_from(["G0113579246", "..", "../x", "%2e%2e", "G01 2", "G01\n", ""]),
)
_DATE = st.one_of(
    _TEXT,
    st.dates().map(str),
    st.datetimes().map(lambda d: d.isoformat()),
    st.sampled_from(
        ["2026-10-05", "2026-13-01", "2026-02-30", "9999-12-31T23:59:59Z", "0001-01-01", "today"]
    ),
)
_FORMAT = st.one_of(st.sampled_from(["text", "json", "html", "xml", ""]), _TEXT)
# Never a real host: without --simulate nothing may leave the machine (no scheme, no dot, no colon).
_URL = st.one_of(
    st.sampled_from(["", "not a url", "http://127.0.0.1:9", "ftp://127.0.0.1/"]),
    st.text(alphabet="abcxyz-_ /", max_size=12),
)
_MISSING = st.sampled_from(["/nonexistent/tenant.json", "no-such-dir/x.json", "", "."])


def _fixture_paths() -> st.SearchStrategy[str]:
    return st.one_of(_MISSING, _TEXT.map(lambda t: f"/nonexistent/{t}"), st.just(str(TINY)))


def _options(*names: str) -> st.SearchStrategy[list[str]]:
    values = {
        "--simulate": _fixture_paths(),
        "--dataverse-url": _URL,
        "--as-of": _DATE,
        "--format": _FORMAT,
        "--schema-map": _MISSING,
        "--write": _MISSING,
        "--until": _DATE,
        "--reason": _TEXT,
        "--dedup-key": _TEXT,
        "--code": _TEXT,
        "--subject": _ID,
        "--days": _TEXT,
        "--fault-rate": _TEXT,
        "--duplicate-rate": _TEXT,
        "--seed": _TEXT,
    }
    one = st.sampled_from(names).flatmap(lambda n: values[n].map(lambda v: [n, v]))
    return st.lists(st.one_of(one, _TEXT.map(lambda t: [t])), max_size=4).map(
        lambda parts: [a for part in parts for a in part]
    )


_SCAN = ("--simulate", "--dataverse-url", "--as-of", "--format", "--schema-map")
_ARGV = st.one_of(
    _options(*_SCAN).map(lambda o: ["scan", *o]),
    st.tuples(_ID, _options(*_SCAN)).map(lambda t: ["diagnose", t[0], *t[1]]),
    _options(*_SCAN, "--write").map(lambda o: ["schema", "verify", *o]),
    _options("--until", "--reason", "--dedup-key", "--code", "--subject").map(
        lambda o: ["silence", "add", *o]
    ),
    _options("--dedup-key", "--code", "--subject").map(lambda o: ["silence", "remove", *o]),
    _options("--format").map(lambda o: ["silence", "list", *o]),
    # The replay of a real fixture runs for simulated weeks: only paths that do not exist here.
    st.tuples(_MISSING, _options("--days", "--fault-rate", "--duplicate-rate", "--seed", "--format")).map(
        lambda t: ["monitor", "--simulate", t[0], *t[1]]
    ),
    st.lists(_TEXT, max_size=4),
)


@contextlib.contextmanager
def _settings(values: dict[str, str]) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("DIAG_")]:
            patch.delenv(name)
        for name, value in values.items():
            patch.setenv(name, value)
        yield


def _run(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse: --help, or an argument it refuses
            code = exc.code if isinstance(exc.code, int) else 2
    return code, err.getvalue()


def test_no_argument_list_ends_in_an_internal_error(tmp_path: Path) -> None:
    @given(_ARGV)
    def one(argv: list[str]) -> None:
        code, err = _run(argv)
        assert code in (0, 1, 2, 3), (argv, code, err)
        assert err.count("\n") <= 1, (argv, err)
        # The echo of a typed argument may say anything; the CLI's own verdict starts the line.
        assert not err.startswith("error: internal error"), (argv, err)
        assert "Traceback" not in err, (argv, err)

    with _settings({"DIAG_STATE_FILE": str(tmp_path / "state.json")}):
        one()


def test_no_diagnose_request_ends_in_an_internal_error(tmp_path: Path) -> None:
    @given(_ID, st.one_of(st.none(), _DATE))
    def one(invoice: str, as_of: str | None) -> None:
        status, body = asyncio.run(_diagnose(invoice, as_of))
        assert status in (200, 400, 404, 500, 502, 503), (invoice, as_of, status, body)
        if status != 200:
            assert "\n" not in body, (invoice, as_of, body)
            error = json.loads(body)["error"]
            assert isinstance(error, str), (invoice, as_of, body)
            assert error.strip(), (invoice, as_of, body)
            assert not error.startswith("internal error"), (invoice, as_of, body)

    with (
        Simulator(load_fixture(SAMPLE)) as sim,
        _settings(
            {
                "DIAG_STATE_FILE": str(tmp_path / "state.json"),
                "DIAG_DATAVERSE_URL": sim.dataverse_url,
                "DIAG_DATAVERSE_CREDENTIAL": "client_secret",
                "DIAG_DATAVERSE_TENANT_ID": sim.tenant_id,
                "DIAG_DATAVERSE_CLIENT_ID": sim.client_id,
                "DIAG_DATAVERSE_CLIENT_SECRET": sim.client_secret,
                "DIAG_AUTHORITY_HOST": sim.authority,
                "DIAG_CA_BUNDLE": str(sim.ca_file),
            }
        ),
    ):
        one()


async def _diagnose(invoice: str, as_of: str | None) -> tuple[int, str]:
    """One request on a container of its own, closed on this event loop."""
    previous = use_container(None)
    try:
        result = await diagnose_request(invoice, as_of=as_of)
    finally:
        current = use_container(previous)
        if current is not None:
            await current.aclose()
    return result.status, result.body
