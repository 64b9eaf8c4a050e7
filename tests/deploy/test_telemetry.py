"""The canonical log lines reach Application Insights with their fields as custom dimensions.

In Azure the worker hangs the Azure Monitor distro's OpenTelemetry `LoggingHandler` on the root
logger (PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY=true). Here the same SDK handler, with an
in-memory exporter, receives what the app logs, and the Azure Monitor exporter's own mapping turns
each record into the envelope Application Insights stores (`properties` = `customDimensions`)."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.monitor.opentelemetry.exporter.export.logs._exporter import _convert_log_to_envelope
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from diagnostics.adapters.teams import TeamsWebhook
from diagnostics.adapters.telemetry import APP_SETTINGS, dimensions
from diagnostics.app.container import Container
from diagnostics.app.delivery import deliver
from diagnostics.app.handle_check import handle_check
from diagnostics.app.plan import plan_today
from diagnostics.app.resolve_references import handle_references
from diagnostics.messages import (
    QUEUE_INVOICE_CHECKS,
    QUEUE_REFERENCE_RESOLUTION,
    CheckRequest,
    InvoiceUnit,
    encode,
)
from diagnostics.service import scan
from simulator import Simulator
from simulator.connect import connection
from tests.app.conftest import BLOCKED, DAY, parts
from tests.deploy.conftest import ROOT, guide
from tests.fakes import FakeMessageActions, ReceivedMessage

Dimensions = dict[str, str]


@pytest.fixture
def exported(caplog: pytest.LogCaptureFixture) -> Iterator[InMemoryLogRecordExporter]:
    """The distro's logging handler (the one `configure_azure_monitor` hangs on the root logger) on the app's logger, exporting to memory; any warning
    the SDK logs (an attribute it had to drop) fails the test."""
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    handler = LoggingHandler(level=logging.INFO, logger_provider=provider)
    app = logging.getLogger("diagnostics")
    level = app.level
    app.addHandler(handler)
    app.setLevel(logging.INFO)
    caplog.set_level(logging.WARNING, logger="opentelemetry")
    try:
        yield exporter
    finally:
        app.removeHandler(handler)
        app.setLevel(level)
        provider.shutdown()
    dropped = [r.getMessage() for r in caplog.records if r.name.startswith("opentelemetry")]
    assert dropped == []


def lines(exporter: InMemoryLogRecordExporter, starts: str) -> list[tuple[str, Dimensions]]:
    """(message, customDimensions) of each exported record whose message starts so, as Application
    Insights receives them."""
    out = []
    for record in exporter.get_finished_logs():
        envelope = _convert_log_to_envelope(record)
        data: Any = envelope.data.base_data  # type: ignore[union-attr]
        if data.message.startswith(starts):
            out.append((data.message, dict(data.properties)))
    return out


def fields_of(message: str) -> Dimensions:
    """The `key=value` fields of a canonical line's text."""
    return dict(re.findall(r"(\w+)=(.*?)(?= \w+=|$)", message))


def check(unit: InvoiceUnit) -> ReceivedMessage:
    request = CheckRequest(unit=unit, day=DAY, reason="planned")
    return ReceivedMessage(encode(request), message_id=request.message_id, delivery_count=2)


async def test_a_handled_message_carries_every_field_of_its_line_as_a_custom_dimension(
    container: Container, exported: InMemoryLogRecordExporter
) -> None:
    actions = FakeMessageActions()
    await deliver(
        QUEUE_INVOICE_CHECKS,
        check(InvoiceUnit(invoice_id=BLOCKED)),
        actions,
        handle_check,
        container=lambda: container,
    )
    [(message, dims)] = lines(exported, "message handled")
    text = fields_of(message)
    assert {"queue", "message_id", "delivery_count", "outcome", "unit", "findings", "requests"} <= set(text)
    for key, value in text.items():
        assert dims[key] == value, key
    assert dims["outcome"] == "complete"
    assert dims["queue"] == QUEUE_INVOICE_CHECKS
    assert dims["unit"] == f"pi:{BLOCKED}"
    assert dims["delivery_count"] == "2"
    assert int(dims["findings"]) > 0


async def test_a_dead_lettered_message_carries_the_outcome_and_the_reason(
    container: Container, exported: InMemoryLogRecordExporter
) -> None:
    await deliver(
        QUEUE_INVOICE_CHECKS,
        ReceivedMessage(b"not json", message_id="m-bad"),
        FakeMessageActions(),
        handle_check,
        container=lambda: container,
    )
    [(_, dims)] = lines(exported, "message not handled")
    assert dims["outcome"] == "deadletter:MalformedMessage"
    assert dims["message_id"] == "m-bad"
    assert dims["error"]
    assert "unit" not in dims  # nothing was handled: absent, not "None"


async def test_the_timer_run_carries_what_it_published(
    container: Container, exported: InMemoryLogRecordExporter
) -> None:
    result = await plan_today(container=lambda: container)
    [(_, dims)] = lines(exported, "plan done")
    assert dims["outcome"] == "planned"
    assert dims["published"] == str(result.published)
    assert dims["past_due"] == "False"
    assert int(dims["requests"]) > 0
    assert float(dims["duration_s"]) >= 0


async def test_a_diagnosis_line_says_what_it_does_not_have_as_its_text_does(
    sim: Simulator, exported: InMemoryLogRecordExporter
) -> None:
    await scan(connection(sim), sim.now)  # a whole-period scan: no invoice
    [(_, dims)] = lines(exported, "diagnosis")
    assert dims["diag_outcome"] in {"ok", "needs_attention"}
    assert dims["diag_period"] == "2026-10"
    assert dims["diag_invoice"] == "-"  # as in the line's text


def test_dimensions_keep_scalars_and_leave_out_what_is_absent() -> None:
    assert dimensions({"a": 1, "b": None, "c": "", "d": True, "e": 0.5, "f": ["x"], "g": "y"}) == {
        "a": 1,
        "d": True,
        "e": 0.5,
        "f": "['x']",
        "g": "y",
    }


async def test_the_guides_queries_name_only_dimensions_the_lines_carry(
    container: Container, exported: InMemoryLogRecordExporter
) -> None:
    await plan_today(container=lambda: container)
    for message in (check(InvoiceUnit(invoice_id=BLOCKED)), ReceivedMessage(b"{}", message_id="m-bad")):
        await deliver(
            QUEUE_INVOICE_CHECKS, message, FakeMessageActions(), handle_check, container=lambda: container
        )
    carried = {
        key for starts in ("plan done", "message") for _, dims in lines(exported, starts) for key in dims
    }
    named = set(
        re.findall(r"customDimensions\.(\w+)", (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8"))
    )
    assert named
    assert named <= carried


def test_the_deployment_turns_it_on_and_the_package_is_pinned() -> None:
    text = guide()
    for setting in APP_SETTINGS:
        assert f"`{setting}`" in text
    assert '"telemetryMode": "OpenTelemetry"' in text
    host = json.loads((ROOT / "host.json").read_text(encoding="utf-8"))
    assert host["telemetryMode"] == "OpenTelemetry"
    requirements = (ROOT / "requirements.txt").read_text(encoding="utf-8")
    assert re.search(r"^azure-monitor-opentelemetry==[\d.]+", requirements, re.MULTILINE)


def test_function_app_does_not_import_opentelemetry() -> None:
    """The worker configures it; the app's import stays as light as before (cold start)."""
    source = Path(ROOT / "function_app.py").read_text(encoding="utf-8")
    assert "opentelemetry" not in source


def _documented(starts: str) -> tuple[str, set[str]]:
    """(logger, custom dimensions) the guide's table in section 7 gives for the line starting so."""
    section = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8").split("## 7.")[1].split("## 8.")[0]
    [row] = [r for r in section.splitlines() if r.startswith(f"| `{starts}`")]
    _, logger, named = row.split(" | ")
    return logger.strip("`"), set(re.findall(r"`(\w+)`", named))


async def test_the_guides_table_names_every_dimension_of_every_line_and_its_logger(
    sim: Simulator, container: Container, exported: InMemoryLogRecordExporter
) -> None:
    await plan_today(container=lambda: container)
    for message in (check(InvoiceUnit(invoice_id=BLOCKED)), ReceivedMessage(b"{}", message_id="m-bad")):
        await deliver(
            QUEUE_INVOICE_CHECKS, message, FakeMessageActions(), handle_check, container=lambda: container
        )
    bus, _, _ = parts(container)
    [references] = bus.bodies(QUEUE_REFERENCE_RESOLUTION)  # the check handed its references off
    await deliver(
        QUEUE_REFERENCE_RESOLUTION,
        ReceivedMessage(references, message_id="refs"),
        FakeMessageActions(),
        handle_references,
        container=lambda: container,
    )
    await scan(connection(sim), sim.now)
    for starts, documented_as in (
        ("plan done", "plan done"),
        ("message handled", "message handled"),
        ("message not handled", "message handled"),
        ("diagnosis", "diagnosis"),
    ):
        logger, documented = _documented(documented_as)
        found = lines(exported, starts)
        assert found, starts
        for _, dims in found:
            assert dims.pop("logger_name") == logger, starts
            ours = {key for key in dims if "." not in key}  # not the SDK's own code.* attributes
            assert ours <= documented, (starts, ours - documented)


async def test_the_teams_webhooks_secret_never_reaches_a_trace(sim: Simulator) -> None:
    """The distro also traces every httpx request (a dependency per call, its URL included): the
    webhook's `sig` must come out redacted."""

    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    instrumentor = HTTPXClientInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        webhook = TeamsWebhook(
            sim.teams_webhook_url + "?api-version=1&sig=s3cretSig", verify=sim.ssl_context()
        )
        try:
            await webhook.post({"type": "message", "attachments": []})  # raises unless accepted
        finally:
            await webhook.aclose()
    finally:
        instrumentor.uninstrument()
    assert len(sim.teams_received) == 1
    [span] = spans.get_finished_spans()
    attributes = {key: str(value) for key, value in (span.attributes or {}).items()}
    assert any("/teams/webhook" in value for value in attributes.values())
    assert not any("s3cretSig" in value for value in attributes.values()), attributes
