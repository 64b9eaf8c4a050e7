"""The simulator: one loopback HTTP(S) server for Entra ID, Dataverse, Partner Center and Teams.

Every request is counted, then faults are applied (delay, error status or dropped connection), then
it is routed. Dataverse requests run under the tenant's lock, so a `$batch` change set is atomic and
concurrent clients see consistent rows.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import ssl
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

from simulator import batch, partner_center
from simulator.dataverse import API_ROOT, DataverseApi
from simulator.entra import Entra, IssuedToken
from simulator.faults import Fault, FaultRate, Faults
from simulator.fixture import Fixture, load_fixture
from simulator.index import index_lookups
from simulator.recording import RecordedNote, TeamsPost, notes_by_id
from simulator.tenant import AnnotationFilter, AppliedEntry, Tenant
from simulator.tls import server_context, write_self_signed
from simulator.wire import (
    CODE_BAD_REQUEST,
    CODE_THROTTLED,
    CODE_UNAUTHORIZED,
    CODE_UNEXPECTED,
    Headers,
    Request,
    Response,
    dataverse_error,
    json_response,
    not_found_segment,
)

DEFAULT_TENANT_ID = "8f1b2c3d-0000-4000-8000-00000000a365"
DEFAULT_CLIENT_ID = "5e0c9d2a-0000-4000-8000-00000000c11e"
DEFAULT_CLIENT_SECRET = "simulator-secret"  # noqa: S105 - a test value, accepted only by this simulator
MAX_URL = 32_768
TEAMS_PATH = "/teams/webhook"
_PARTNER_CENTER_PREFIX = "/v1/"


class Simulator:
    """Serve a fixture over HTTP(S) on 127.0.0.1. Use as a context manager, or start()/stop()."""

    def __init__(
        self,
        fixture: Fixture | str | Path | Mapping[str, Any],
        *,
        port: int = 0,
        tls: bool = True,
        tenant_id: str = DEFAULT_TENANT_ID,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
    ) -> None:
        self.fixture = fixture if isinstance(fixture, Fixture) else load_fixture(fixture)
        self.tenant = Tenant(self.fixture)
        index_lookups(self.tenant.tables.values())
        self.entra = Entra(tenant_id, client_id, client_secret)
        self.faults = Faults()
        # False: the signed-in identity has no application user in the environment, so Dataverse
        # answers every Web API request 403 "not a member of the organization" (the token is valid).
        self.application_user = True
        self.requests: Counter[tuple[str, str]] = Counter()
        self.teams_posts: list[Any] = []  # the payloads, as parsed
        self.teams_received: list[TeamsPost] = []  # with the simulated time and the raw body
        # Simulated times [start, end) when the Teams sink is down: it answers 503 to every post.
        self.teams_outages: list[tuple[datetime, datetime]] = []
        self.tls = tls
        self._port = port
        self._round_trips: Counter[str] = Counter()
        self._count_lock = threading.Lock()
        self.in_flight = 0  # requests being served now
        self.max_in_flight = 0  # the most served at once, since start (the client's concurrency)
        # The same for Dataverse's requests alone: the app's cap (DIAG_DATAVERSE_MAX_CONCURRENCY)
        # governs these; a Teams post or a token request beside them is not one of them.
        self.dataverse_in_flight = 0
        self.max_dataverse_in_flight = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._cert_dir: Path | None = None
        self.ca_file: str | None = None
        self.dataverse = DataverseApi(self.tenant, lambda: self.base_url, self._batch)
        self.dataverse.on_rows = self._page_cost
        # Seconds each 1,000 rows of a query's page take to serve, as real Dataverse's time grows
        # with the rows it reads (`set_page_cost`). The cost a request owes is slept once its answer
        # is ready, outside the tenant's lock: requests served at once wait at once, as on
        # Dataverse, while the parts of a $batch, run one after another, owe the sum of theirs.
        self.page_cost_per_1000 = 0.0
        self.page_cost_seconds = 0.0  # slept for page costs in all, since start
        # When each page cost was slept (monotonic start, end): overlapping ones were served at once.
        self.page_cost_sleeps: list[tuple[float, float]] = []
        self._owed = threading.local()

    # --- lifecycle --------------------------------------------------------------------------------

    def start(self) -> Simulator:
        if self._server is not None:
            return self
        context = None
        if self.tls:
            self._cert_dir = Path(tempfile.mkdtemp(prefix="work365-sim-"))
            cert, key = write_self_signed(self._cert_dir)
            self.ca_file = str(cert)
            context = server_context(cert, key)
        self._server = _Server(("127.0.0.1", self._port), self, context)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="work365-simulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server, self._thread = None, None
        if self._cert_dir is not None:
            shutil.rmtree(self._cert_dir, ignore_errors=True)
            self._cert_dir, self.ca_file = None, None

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- addresses and credentials ----------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the simulator is not running; call start() or use it as a context manager")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def dataverse_url(self) -> str:
        return self.base_url

    @property
    def partner_center_url(self) -> str:
        return self.base_url

    @property
    def teams_webhook_url(self) -> str:
        return self.base_url + TEAMS_PATH

    @property
    def authority(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def tenant_id(self) -> str:
        return self.entra.tenant_id

    @property
    def client_id(self) -> str:
        return self.entra.client_id

    @property
    def client_secret(self) -> str:
        return self.entra.client_secret

    @property
    def now(self) -> datetime:
        """The simulated clock: the fixture's `now` until `advance_to` moves it."""
        return self.tenant.now

    def advance_to(self, moment: datetime) -> list[AppliedEntry]:
        """Move the simulated clock to `moment` and apply the fixture's timeline entries due by
        then, once each and in order; returns what was applied. Safe while clients are served."""
        return self.tenant.advance_to(moment)

    def pending_timeline(self) -> int:
        """How many timeline entries are still to come."""
        return len(self.tenant.pending_timeline())

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this simulator's certificate (for httpx `verify=`)."""
        return (
            ssl.create_default_context(cafile=self.ca_file) if self.ca_file else ssl.create_default_context()
        )

    # --- what tests inspect -----------------------------------------------------------------------

    @property
    def notes(self) -> list[dict[str, Any]]:
        """Every annotation created or upserted, as stored after the write (served column names)."""
        return self.tenant.notes

    def recorded_notes(self) -> list[RecordedNote]:
        """Every note (annotation) written through the Web API, one per id, as last written, with
        how many writes it took; notes deleted since (with their record) are still listed."""
        with self.tenant.lock:
            return notes_by_id(self.tenant.notes, self.tenant.tables["annotation"])

    @property
    def writes(self) -> list[dict[str, Any]]:
        """Every create, update or delete: {"method", "table" (default name), "id", "body"}."""
        return self.tenant.writes

    @property
    def tokens(self) -> list[IssuedToken]:
        """Every token issued, with the scope it was asked for."""
        return self.entra.issued

    def issue_token(self, scope: str = "") -> str:
        """A valid bearer token without the OAuth round trip (for clients under test with a fake credential)."""
        return self.entra.issue(scope, self.client_id)

    def request_count(self, prefix: str = "/api/data") -> int:
        """HTTP round trips (a $batch envelope is one) whose path starts with `prefix`."""
        with self._count_lock:
            return sum(n for path, n in self._round_trips.items() if path.startswith(prefix))

    def take_max_in_flight(self, *, dataverse: bool = False) -> int:
        """The most requests served at once since the last call (or start), Dataverse's alone when
        `dataverse`; starts a new count of that figure."""
        with self._count_lock:
            if dataverse:
                peak, self.max_dataverse_in_flight = self.max_dataverse_in_flight, self.dataverse_in_flight
            else:
                peak, self.max_in_flight = self.max_in_flight, self.in_flight
            return peak

    def reset_counts(self) -> None:
        with self._count_lock:
            self.requests.clear()
            self._round_trips.clear()

    def rows(self, table: str) -> list[dict[str, Any]]:
        """The rows of a table (default name) as the Web API serves them, without annotations."""
        with self.tenant.lock:
            served = self.tenant.tables[table]
            return [self.tenant.wire_row(served, r, None, AnnotationFilter([])) for r in served.rows.values()]

    def option_value(self, table: str, column: str, label: str) -> int:
        """The option value served for a default label, e.g. ("work365_providerinvoice", "statuscode", "Error")."""
        return self.tenant.tables[table].by_default[column].option_for_label(label).value

    # --- faults -----------------------------------------------------------------------------------

    def inject(
        self,
        latency: float = 0.0,
        jitter: float = 0.0,
        status: int | None = None,
        retry_after: float | None = None,
        times: int | None = None,
        path_prefix: str = "",
        drop: bool = False,
        in_batch: bool = False,
    ) -> None:
        self.faults.add(Fault(latency, jitter, status, retry_after, times, path_prefix, drop, in_batch))

    def set_page_cost(self, ms_per_1000_rows: float) -> None:
        """Serve each page of a query `ms_per_1000_rows` ms per 1,000 rows late (e.g. 300)."""
        if ms_per_1000_rows < 0:
            raise ValueError("the page cost must not be negative")
        self.page_cost_per_1000 = ms_per_1000_rows / 1000

    def _page_cost(self, rows: int) -> None:
        if self.page_cost_per_1000 and rows:
            self._owed.seconds = self._owed_seconds() + self.page_cost_per_1000 * rows / 1000

    def _owed_seconds(self) -> float:
        seconds: float = getattr(self._owed, "seconds", 0.0)
        return seconds

    def clear_faults(self) -> None:
        self.faults.clear()

    def set_fault_rate(self, rate: float, seed: int | None = None, *, slow: float = 0.2) -> None:
        """Fail that share of Dataverse, Partner Center and Teams requests, seeded: 429 with a short
        Retry-After, 503, a dropped connection or a slow answer (`slow` seconds late);
        `faults.injected` counts them by kind."""
        self.faults.set_rate(FaultRate(rate, seed, slow=slow))

    # --- request handling -------------------------------------------------------------------------

    def handle(self, request: Request, target_length: int) -> Response:
        self._count(request, envelope=True)
        dataverse = request.path.startswith("/api/data/")
        with self._count_lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            if dataverse:
                self.dataverse_in_flight += 1
                self.max_dataverse_in_flight = max(self.max_dataverse_in_flight, self.dataverse_in_flight)
        self._owed.seconds = 0.0
        try:
            return self._handle(request, target_length)
        finally:
            slept = None
            if owed := self._owed_seconds():
                began = time.monotonic()
                time.sleep(owed)  # the page cost: no lock held, so other requests' costs overlap
                slept = (began, time.monotonic())
            with self._count_lock:
                self.in_flight -= 1
                if dataverse:
                    self.dataverse_in_flight -= 1
                self.page_cost_seconds += owed
                if slept is not None:
                    self.page_cost_sleeps.append(slept)

    def _handle(self, request: Request, target_length: int) -> Response:
        outcome = self.faults.take(request.path)
        if outcome.delay:
            time.sleep(outcome.delay)
        if outcome.fault is not None:
            return (
                Response(0, drop=True) if outcome.fault.drop else _fault_response(request.path, outcome.fault)
            )
        try:
            return self._route(request, target_length)
        except Exception as exc:  # a simulator bug must reach the test as a 500, not a hung client
            traceback.print_exc(file=sys.stderr)
            return dataverse_error(500, CODE_UNEXPECTED, f"simulator error: {exc!r}")

    def _count(self, request: Request, *, envelope: bool) -> None:
        with self._count_lock:
            self.requests[(request.method, request.path)] += 1
            if envelope:
                self._round_trips[request.path] += 1

    def _route(self, request: Request, target_length: int) -> Response:
        path = request.path
        if path.startswith("/api/data/"):
            if request.method == "GET" and target_length > MAX_URL:
                return dataverse_error(
                    414, CODE_BAD_REQUEST, f"The request URL is longer than {MAX_URL} characters."
                )
            if not self.entra.authorized(request):
                return dataverse_error(
                    401,
                    CODE_UNAUTHORIZED,
                    "The request has no valid bearer token for this environment.",
                    {
                        "WWW-Authenticate": f'Bearer authorization_uri="{self.base_url}/{self.tenant_id}/oauth2/authorize"'
                    },
                )
            if not self.application_user:
                return dataverse_error(
                    403, CODE_UNAUTHORIZED, "The user is not a member of the organization."
                )
            if not path.startswith(API_ROOT):
                return not_found_segment(path).response()
            with self.tenant.lock:
                return self.dataverse.handle(request)
        if path.startswith(_PARTNER_CENTER_PREFIX):
            return partner_center.handle(request, self.tenant.partner_center, self.entra.authorized(request))
        if path == TEAMS_PATH:
            return self._teams(request)
        if self.entra.owns(path):
            return self.entra.handle(request, self.base_url)
        return json_response(
            404, {"error": {"code": "NotFound", "message": f"The simulator serves nothing at {path}."}}
        )

    def _batch(self, request: Request) -> Response:
        def dispatch(inner: Request) -> Response:
            self._count(inner, envelope=False)
            fault = self.faults.take(inner.path, in_batch=True).fault
            if fault is not None:
                return _fault_response(inner.path, fault)
            if not inner.path.startswith(API_ROOT):
                return not_found_segment(inner.path).response()
            return self.dataverse.handle(inner)

        return batch.handle(request, self.tenant, dispatch)

    def _teams(self, request: Request) -> Response:
        if request.method != "POST":
            return json_response(405, {"error": {"code": "MethodNotAllowed", "message": "POST a message."}})
        try:
            payload = request.json()
        except (ValueError, UnicodeDecodeError):
            return json_response(
                400, {"error": {"code": "InvalidRequestContent", "message": "The body is not JSON."}}
            )
        with self.tenant.lock:
            if any(start <= self.tenant.now < end for start, end in self.teams_outages):
                return json_response(
                    503,
                    {"error": {"code": "ServiceUnavailable", "message": "The workflow is down (outage)."}},
                )
            self.teams_posts.append(payload)
            self.teams_received.append(TeamsPost(self.tenant.now, request.body))
        return Response(202)


def _fault_response(path: str, fault: Fault) -> Response:
    status = fault.status or 500
    headers: dict[str, str] = {}
    if fault.retry_after is not None:
        seconds = fault.retry_after
        headers["Retry-After"] = str(int(seconds)) if float(seconds).is_integer() else str(seconds)
    if path.startswith("/api/data/"):
        if status == 429:
            message = "Number of requests exceeded the limit of 6000 over time window of 300 seconds."
            return dataverse_error(status, CODE_THROTTLED, message, headers)
        return dataverse_error(
            status, CODE_UNEXPECTED, "An unexpected error occurred (injected fault).", headers
        )
    if path.startswith(_PARTNER_CENTER_PREFIX) and status == 429:
        wait = headers.get("Retry-After", "1")
        return json_response(
            status,
            {"statusCode": 429, "message": f"Rate limit is exceeded. Try again in {wait} seconds."},
            headers,
        )
    return json_response(status, {"error": {"code": str(status), "message": "Injected fault."}}, headers)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # keep-alive connections must not hold up stop()

    def __init__(
        self, address: tuple[str, int], simulator: Simulator, context: ssl.SSLContext | None
    ) -> None:
        self.simulator = simulator
        self.context = context
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = self.socket.accept()
        if self.context is not None:
            # The TLS handshake runs in the connection's own thread (first read), not in the accept loop.
            sock = self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        with self._connections_lock:
            self._connections.add(sock)
        return sock, address

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that vanish mid-request (and dropped connections) are normal here.
        exc = sys.exc_info()[1]
        if not isinstance(exc, OSError | ssl.SSLError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real clients expect
    # Headers and body leave in separate writes; with Nagle on, each answer waits ~40 ms for an ACK.
    disable_nagle_algorithm = True
    server: _Server
    timeout = 60

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(self.timeout)
            self.request.do_handshake()
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests assert on `Simulator.requests`, not on a log."""

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _serve(self) -> None:
        split = urlsplit(self.path)
        request = Request(
            self.command,
            unquote(split.path),
            split.query,
            Headers(dict(self.headers.items())),
            self._read_body(),
        )
        response = self.server.simulator.handle(request, len(self.path))
        if response.drop:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(response.status, response.reason)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = _serve
