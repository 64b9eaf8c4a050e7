"""docs/deploy.md cannot drift from the code: each troubleshooting message it quotes is produced here
by running the app in that condition (the simulator, the real clients, the real settings), and its
privilege tables name exactly what the tool checks and what the README says."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import socket
from pathlib import Path

import azure.functions as func
import pytest
from azure.servicebus.aio import ServiceBusClient

import function_app
from broker.testing import running_broker
from diagnostics.access import privilege_name as access_privilege
from diagnostics.access import required_privileges
from diagnostics.adapters.http import RetryPolicy
from diagnostics.adapters.servicebus import ServiceBusMessageBus
from diagnostics.adapters.telemetry import APP_SETTINGS
from diagnostics.app.container import Container, use_container
from diagnostics.app.notify import MonitorNotifier
from diagnostics.checks import READS
from diagnostics.errors import ConfigError
from diagnostics.messages import InvoiceUnit
from diagnostics.ports import MessageBus
from diagnostics.service import scan
from diagnostics.settings import Settings, load_settings
from simulator import Simulator, load_fixture
from simulator.access import privilege_name
from simulator.connect import connection
from simulator.server import TEAMS_PATH
from tests.app.conftest import BLOCKED
from tests.deploy.conftest import ROOT, SAMPLE, guide
from tests.fakes import FakeBus, FakeClock, InMemoryStateStore, RecordingNotifier
from tests.notify.test_notifier import blocked, report
from tests.sim_env import use_simulator_settings


async def _no_sleep(_: float) -> None:
    return None


# The app's own retry policy (5 attempts: DIAG_HTTP_MAX_ATTEMPTS' default), without its pauses.
NO_PAUSE = RetryPolicy(sleep=_no_sleep, jitter=lambda d: d)


def quoted(message: str) -> None:
    """The message, word for word, is in the guide."""
    assert " ".join(message.split()) in guide(), f"docs/deploy.md does not quote: {message}"


def _installed(sim: Simulator, bus: MessageBus | None = None, **changes: object) -> Container:
    conn = dataclasses.replace(connection(sim, retry=NO_PAUSE), **changes)  # type: ignore[arg-type]
    built = Container.from_connection(
        conn,
        settings=load_settings({}),
        bus=bus or FakeBus(),
        state=InMemoryStateStore(),
        notifier=RecordingNotifier(),
        clock=FakeClock(sim.now),
    )
    use_container(built)
    return built


async def _health() -> tuple[int, dict[str, object]]:
    response = await function_app.health(func.HttpRequest(method="GET", url="/api/health", body=b""))
    assert isinstance(response, func.HttpResponse)
    return response.status_code, json.loads(response.get_body())


@pytest.fixture(autouse=True)
async def _fresh_container() -> object:
    previous = use_container(None)
    yield
    current = use_container(previous)
    if current is not None and current is not previous:
        await current.aclose()


# --- section 6: what a good answer looks like ---------------------------------------------------


async def test_a_healthy_answer_is_the_one_the_guide_shows(sim: Simulator) -> None:
    with running_broker() as broker:
        client = ServiceBusClient.from_connection_string(broker.connection_string, retry_total=0)
        _installed(sim, bus=ServiceBusMessageBus(client))
        status, body = await _health()
    text = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    [shown] = [line for line in text.splitlines() if line.startswith('{"status": "ok"')]
    assert (status, body) == (200, json.loads(shown))


# --- 1. no application user ------------------------------------------------------------------------


async def test_no_application_user(sim: Simulator) -> None:
    sim.application_user = False
    _installed(sim)
    status, body = await _health()
    assert status == 503
    checks = body["checks"]
    assert isinstance(checks, dict)
    assert "403 (0x80072560" in checks["dataverse"]
    quoted(checks["dataverse"])


# --- 2. a Read privilege below Organization --------------------------------------------------------


async def test_a_read_privilege_below_organization() -> None:
    doc = json.loads(SAMPLE.read_text(encoding="utf-8"))
    doc["dataverse"]["read_depth"] = {"work365_provideraccount": "User"}
    with Simulator(load_fixture(doc)) as sim:
        report = await scan(connection(sim, retry=NO_PAUSE), sim.now)
    [limited] = [f for f in report.findings if f.code == "READ_ACCESS_LIMITED"]
    head = limited.title.split(";")[0]  # what follows counts the checks stopped, which grows with them
    assert "work365_provideraccount" in head
    quoted(head)
    quoted(limited.remediation[1])


# --- 3. a write privilege missing ----------------------------------------------------------------


async def test_a_write_privilege_missing() -> None:
    doc = json.loads(SAMPLE.read_text(encoding="utf-8"))
    doc["dataverse"]["denied_privileges"] = ["prvCreateNote"]
    with Simulator(load_fixture(doc)) as sim:
        _installed(sim)
        status, body = await _health()
    assert status == 503
    checks = body["checks"]
    assert isinstance(checks, dict)
    assert checks["dataverse"] == "ok"
    assert "prvCreateNote" in checks["write_privileges"]
    quoted(checks["write_privileges"])


# --- 4. a wrong DIAG_DATAVERSE_URL -----------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_wrong_dataverse_url(sim: Simulator) -> None:
    _installed(sim, dataverse_url=f"https://127.0.0.1:{_closed_port()}")
    status, body = await _health()
    assert status == 503
    checks = body["checks"]
    assert isinstance(checks, dict)
    said = str(checks["dataverse"])
    reached, _, hint = said.partition(" (")  # the network error between them is the machine's own
    assert reached.endswith("could not be reached after 5 attempts")
    quoted("could not be reached after 5 attempts")
    quoted(hint.split("): ", 1)[1])


# --- 5. the identity lacks its Service Bus roles -------------------------------------------------


async def test_the_identity_lacks_its_service_bus_roles(sim: Simulator) -> None:
    with running_broker() as broker:
        broker.refused = "Unauthorized access. 'Send' claim(s) are required to perform this operation."
        # The SDK's own retries off: the refusal is the same every time.
        client = ServiceBusClient.from_connection_string(broker.connection_string, retry_total=0)
        _installed(sim, bus=ServiceBusMessageBus(client))
        status, body = await _health()
    assert status == 503
    checks = body["checks"]
    assert isinstance(checks, dict)
    assert checks["dataverse"] == "ok"
    said = str(checks["service_bus"])
    assert said.startswith("Service Bus refused opening a sender on invoice-checks")
    quoted(said.rsplit("): ", 1)[1])


# --- 6. a misspelt DIAG_ setting, 7. an unresolved Key Vault reference --------------------------


async def test_a_misspelt_setting(sim: Simulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    use_simulator_settings(
        monkeypatch, sim, DIAG_STATE_FILE=str(tmp_path / "state.json"), DIAG_PULL_WINDOW_DAY="20"
    )
    status, body = await _health()
    assert (status, body["status"]) == (503, "misconfigured")
    quoted(str(body["error"]))


def test_an_unresolved_key_vault_reference() -> None:
    reference = "@Microsoft.KeyVault(VaultName=kv-w365;SecretName=teams-webhook-url)"
    with pytest.raises(ConfigError) as raised:
        load_settings({"DIAG_TEAMS_WEBHOOK_URL": reference})
    assert "DIAG_TEAMS_WEBHOOK_URL" in str(raised.value)
    quoted(str(raised.value))


# --- 8. the Teams webhook refuses the post ---------------------------------------------------------


@pytest.mark.parametrize("status", [404, 403])
async def test_the_teams_webhook_refuses(
    sim: Simulator, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    built = Container.from_connection(
        connection(sim, retry=NO_PAUSE),
        settings=load_settings({"DIAG_TEAMS_WEBHOOK_URL": sim.teams_webhook_url + "?sig=s3cret"}),
        bus=FakeBus(),
        state=InMemoryStateStore(),
        clock=FakeClock(sim.now),
    )
    try:
        assert isinstance(built.notifier, MonitorNotifier)
        sim.inject(status=status, path_prefix=TEAMS_PATH)
        with caplog.at_level(logging.WARNING, logger="diagnostics"):
            await built.notifier.notify(
                InvoiceUnit(invoice_id=BLOCKED), report(sim.now, [blocked()]), at=sim.now
            )
    finally:
        await built.aclose()
    assert sim.requests[("POST", TEAMS_PATH)] == 1  # a 4xx is not retried
    [line] = [r.getMessage() for r in caplog.records if "Teams post failed" in r.getMessage()]
    quoted("the Teams post failed; the next run posts it:")
    assert f"answered {status}" in line
    quoted(line.rsplit("): ", 1)[1])
    assert "s3cret" not in caplog.text


# --- the privileges -------------------------------------------------------------------------------


def _read_privileges(text: str) -> set[str]:
    return set(re.findall(r"`(prvRead\w+)` \| Organization", text))


def test_the_guide_asks_for_exactly_the_read_privileges_the_tool_checks_as_the_readme_does() -> None:
    text = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    with Simulator(load_fixture(SAMPLE)) as sim:
        expected = {privilege_name(sim.tenant.tables[t]) for t in READS.tables()}
    assert _read_privileges(text) == expected
    assert _read_privileges(readme) == expected
    assert "`prvReadUser` | any" in text


def _required(**enabled: bool) -> set[str]:
    needs = required_privileges(**{"notes": False, "map_accounts": False, "reimport": False, **enabled})
    return {access_privilege(n.table, n.table, n.access) for n in needs}


def _row(text: str, starts: str) -> set[str]:
    [row] = [line for line in text.splitlines() if line.startswith(starts)]
    return set(re.findall(r"`(prv\w+)`", row))


def test_the_guide_asks_for_exactly_the_write_privileges_the_tool_checks() -> None:
    text = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    notes = _row(text, "| Note | `prvCreateNote`") | _row(text, "| Provider Invoice, Provider,")
    assert notes == _required(notes=True)
    assert _row(text, "| `DIAG_AUTOFIX_MAP_ACCOUNTS=true`") == _required(map_accounts=True)
    assert _row(text, "| `DIAG_AUTOFIX_REIMPORT=true`") == _required(reimport=True)
    fields = Settings.model_fields
    assert {"autofix_map_accounts", "autofix_reimport"} <= set(fields)


def test_the_guide_is_linked_from_the_readmes_first_screen() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert any("docs/deploy.md" in line for line in readme[:15])
    assert not any("docs/deploy.md" in line for line in readme[:5])  # make demo / make test come first


# --- the deployment the guide describes -----------------------------------------------------------

INFRA = ROOT / "infra"


@pytest.mark.skipif(not (INFRA / "main.bicep").exists(), reason="infra/ is not in this checkout")
def test_the_deployment_sets_what_the_guide_says_it_sets() -> None:
    """The app settings of section 7 (telemetry), and the outputs, parameters and secret names the
    guide's commands use, are in infra/."""
    bicep = "\n".join(p.read_text(encoding="utf-8") for p in sorted(INFRA.rglob("*.bicep")))
    parameters = (INFRA / "main.parameters.json").read_text(encoding="utf-8")
    missing = [s for s in APP_SETTINGS if s not in bicep]
    assert not missing, f"infra/ does not set {missing} (docs/deploy.md section 7)"
    for output in ("AZURE_MANAGED_IDENTITY_CLIENT_ID", "AZURE_RESOURCE_GROUP", "AZURE_FUNCTION_APP_NAME"):
        assert f"output {output} " in bicep, output
    assert "output FUNCTION_APP_URL " in bicep
    for value in (
        "DIAG_DATAVERSE_URL",
        "DIAG_TEAMS_WEBHOOK_URL",
        "DIAG_PARTNER_CENTER_TENANT_ID",
        "DIAG_PARTNER_CENTER_CLIENT_ID",
        "DIAG_PARTNER_CENTER_CLIENT_SECRET",
    ):
        assert "${" + value in parameters, value
    for secret in ("teams-webhook-url", "partner-center-client-secret"):
        assert f"'{secret}'" in bicep, secret


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_the_guides_links_to_its_own_sections_resolve() -> None:
    text = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    anchors = {_slug(line.lstrip("#")) for line in text.splitlines() if line.startswith("## ")}
    linked = set(re.findall(r"\]\(#([\w\-]+)\)", text))
    assert linked
    assert linked <= anchors, linked - anchors
    for target in re.findall(r"\]\((\.\./[^)#]+|[\w./-]+\.md)\)", text):
        path = (ROOT / "docs" / target).resolve()
        assert path.exists() or path.is_relative_to(ROOT / "infra"), target
