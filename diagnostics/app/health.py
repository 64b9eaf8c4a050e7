"""GET /api/health: can this worker reach Dataverse, the broker and the state store, and may it
write its notes?

Each dependency is probed with one cheap call under a time limit, concurrently; the answer lists
each one as "ok" or the one-line reason it is not."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from diagnostics.access import missing_write_privileges
from diagnostics.app.container import Container
from diagnostics.errors import ConfigError, DiagnosticsError
from diagnostics.messages import QUEUE_INVOICE_CHECKS

PROBE_SECONDS = 10.0


@dataclass(frozen=True)
class Health:
    checks: dict[str, str]  # dependency -> "ok" or why not

    @property
    def ok(self) -> bool:
        return all(v == "ok" for v in self.checks.values())


async def _probe(action: Callable[[], Awaitable[object]]) -> str:
    try:
        async with asyncio.timeout(PROBE_SECONDS):
            await action()
    except TimeoutError:
        return f"no answer within {PROBE_SECONDS:.0f} s"
    except DiagnosticsError as exc:
        return str(exc)
    except Exception as exc:  # a probe reports, it never fails the endpoint
        return f"{type(exc).__name__}: {exc}"
    return "ok"


async def _bus(c: Container) -> None:
    ping = getattr(c.bus, "ping", None)
    if ping is not None:
        await ping(QUEUE_INVOICE_CHECKS)
    else:  # a bus without a probe (an unconfigured one says why when used)
        await c.bus.send(QUEUE_INVOICE_CHECKS, [])


async def _write_privileges(c: Container) -> None:
    """The monitor's notes (and the auto-fixes that are on) need write privileges Read does not
    give: name each one missing now, not as a dead letter when the first note is refused."""
    verification = await c.schema.get()
    line = missing_write_privileges(
        verification.privileges,
        c.schema.schema_map,
        notes=True,
        map_accounts=c.settings.autofix_map_accounts,
        reimport=c.settings.autofix_reimport,
    ).line
    if line is not None:
        raise ConfigError(line)


async def health(c: Container) -> Health:
    names = ("dataverse", "write_privileges", "service_bus", "state_store")
    results = await asyncio.gather(
        _probe(lambda: c.dataverse.get("WhoAmI")),
        _probe(lambda: _write_privileges(c)),
        _probe(lambda: _bus(c)),
        _probe(lambda: c.state.get("health", "probe")),
    )
    return Health(dict(zip(names, results, strict=True)))
