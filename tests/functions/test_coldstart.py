"""The cold-start benchmark's premise (benchmarks/coldstart.py): in the worker as deployed, the
telemetry distro has already imported what azure-servicebus stands on, so what `import function_app`
adds there is azure-servicebus, uamqp and the extension, not azure-core and requests again."""

from __future__ import annotations

import os
import subprocess
import sys

from benchmarks.coldstart import _TELEMETRY_ENV, BASELINES, _medians

_LOADED = """
import os, sys
{preload}
before = set(sys.modules)
import function_app
print(*sorted(name for name in ("azure.core", "requests", "urllib3", "grpc") if name in before))
print(*sorted(name for name in ("azure.servicebus", "uamqp") if name in set(sys.modules) - before))
os._exit(0)
"""


def _loaded(baseline: str) -> tuple[list[str], list[str]]:
    out = subprocess.run(
        [sys.executable, "-c", _LOADED.format(preload=BASELINES[baseline])],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **_TELEMETRY_ENV},
    ).stdout.splitlines()
    return out[0].split(), out[1].split()


def test_the_deployed_worker_has_imported_what_servicebus_stands_on_and_the_app_adds_the_rest() -> None:
    before, added = _loaded("deployed")
    assert before == ["azure.core", "grpc", "requests", "urllib3"]
    assert added == ["azure.servicebus", "uamqp"]


def test_after_azure_functions_alone_the_app_imports_azure_core_itself() -> None:
    before, added = _loaded("interpreter")
    assert before == []
    assert added == ["azure.servicebus", "uamqp"]


def test_the_app_adds_less_cpu_in_the_deployed_worker_than_after_azure_functions_alone() -> None:
    deployed = _medians(1, BASELINES["deployed"])
    alone = _medians(1, BASELINES["interpreter"])
    assert 0 < deployed["added_cpu_s"] < alone["added_cpu_s"]
    assert deployed["extension_s"] <= deployed["added_s"]
