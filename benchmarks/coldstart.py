"""Benchmark: what `import function_app` adds to `import azure.functions` (issue 9, item 6).

Each sample is a fresh interpreter (the import cache is the point), timed inside the process: wall
time (`perf_counter`) and the importing thread's CPU time (`thread_time`, robust to a loaded box);
the figures are medians. The app's import is measured after three baselines:
- `interpreter`: `azure.functions` alone, the issue's literal definition;
- `worker`: what the Functions Python worker (azure_functions_worker, Python 3.11) has imported
  before it indexes the app: grpc and protobuf (its channel to the host), then, on the worker init
  request, `azure.functions` and `azurefunctions.extensions.base` (its binding registries);
- `deployed`: the worker as this app is deployed. With PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY=true
  (infra/modules/function-app.bicep) the worker's init request also calls the Azure Monitor
  distro's `configure_azure_monitor` before it loads the binding registries and indexes the app;
  the distro brings azure-core, requests and urllib3, on which azure-servicebus also stands.
  This is the cold start the app really adds in Azure; the issue's target is judged on it.

Here the distro is configured as the worker does (the `azure_functions` resource detector), with an
ingestion endpoint on loopback, statsbeat and offline storage off and the process ended before any
export, so that nothing leaves the machine: it sends nothing, and can only import less than in Azure.

Each figure is split into the Service Bus SDK-type extension (`azurefunctions.extensions.bindings.
servicebus`: azure-servicebus, uamqp, its gRPC settlement stubs) and the rest of the app. The
extension cannot be deferred: the worker resolves the triggers' annotations when it indexes the
app, right after importing it, and recognises them through the extension's registry; moving the
import into a lazy name would only move the same time from the import into the indexing.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys

_PROBE = """
import os, time
{preload}
wall0, cpu0 = time.perf_counter(), time.thread_time()
import azurefunctions.extensions.bindings.servicebus
wall1, cpu1 = time.perf_counter(), time.thread_time()
import function_app
wall2, cpu2 = time.perf_counter(), time.thread_time()
print(wall1 - wall0, wall2 - wall1, cpu1 - cpu0, cpu2 - cpu1, flush=True)
os._exit(0)  # no exit handlers: the distro's exporters must not try to send anything
"""
_INTERPRETER = "import azure.functions"
# The worker's own imports before it indexes the app (its gRPC channel, its binding registries).
_WORKER = (
    "import grpc, google.protobuf.message, google.protobuf.wrappers_pb2\n"
    "import azure.functions, azurefunctions.extensions.base"
)
# The worker's init request with telemetry on configures the distro before the binding registries.
_DEPLOYED = (
    "import grpc, google.protobuf.message, google.protobuf.wrappers_pb2\n"
    "from azure.monitor.opentelemetry import configure_azure_monitor\n"
    "configure_azure_monitor(connection_string=os.environ['APPLICATIONINSIGHTS_CONNECTION_STRING'], "
    "logger_name='', disable_offline_storage=True)\n"
    "import azure.functions, azurefunctions.extensions.base"
)
BASELINES = {"interpreter": _INTERPRETER, "worker": _WORKER, "deployed": _DEPLOYED}
# Loopback only, and never reached: the probe ends before the first export.
_TELEMETRY_ENV = {
    "APPLICATIONINSIGHTS_CONNECTION_STRING": (
        "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=http://127.0.0.1:9/"
    ),
    "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
    "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "azure_functions",  # as the worker sets it: no VM metadata call
}


def _medians(runs: int, preload: str) -> dict[str, float]:
    """Seconds: the extension's and the app's own import, wall and CPU, medians over `runs`."""
    samples = []
    for _ in range(runs):
        out = subprocess.run(  # noqa: S603 - this interpreter, a fixed probe
            [sys.executable, "-c", _PROBE.format(preload=preload)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, **_TELEMETRY_ENV},
        ).stdout
        samples.append([float(x) for x in out.split()])
    ext_wall, app_wall, ext_cpu, app_cpu = (
        statistics.median(column) for column in zip(*samples, strict=True)
    )
    return {
        "extension_s": ext_wall,
        "app_s": app_wall,
        "added_s": ext_wall + app_wall,
        "extension_cpu_s": ext_cpu,
        "added_cpu_s": ext_cpu + app_cpu,
    }


def cold_start(runs: int) -> dict[str, float]:
    """Seconds, medians over `runs` fresh processes per baseline, keyed `<baseline>_<figure>`."""
    return {
        f"{baseline}_{figure}": value
        for baseline, preload in BASELINES.items()
        for figure, value in _medians(runs, preload).items()
    }


def explain(cold: dict[str, float]) -> str:
    ms = {k: v * 1000 for k, v in cold.items()}

    def line(baseline: str) -> str:
        return (
            f"{ms[f'{baseline}_added_s']:.0f} ms ({ms[f'{baseline}_added_cpu_s']:.0f} ms CPU), of which the "
            f"Service Bus extension {ms[f'{baseline}_extension_s']:.0f} ms"
        )

    return (
        f"cold start, what `import function_app` adds (medians): in the worker as deployed (telemetry on) "
        f"{line('deployed')}; in the worker without telemetry {line('worker')}; after `import "
        f"azure.functions` alone {line('interpreter')}. The app's own modules: "
        f"{ms['interpreter_app_s']:.0f} ms. The extension (azure-servicebus, uamqp) is needed when the "
        "worker indexes the functions, right after the import: deferring it moves, not saves, that time"
    )


if __name__ == "__main__":
    result = cold_start(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
    print(explain(result))
