"""Benchmark: what `import function_app` adds to `import azure.functions` (issue 9, item 6).

Each sample is a fresh interpreter (the import cache is the point), timed inside the process with
`perf_counter`; the figures are medians. Two baselines:
- `azure.functions` alone: the issue's definition;
- as in the Functions Python worker, which has also imported `grpc` and `protobuf` (it talks to the
  host over gRPC) before it imports the app: what the app really adds there.

Each is split into the Service Bus SDK-type extension (`azurefunctions.extensions.bindings.
servicebus`: azure-servicebus, uamqp, its gRPC settlement stubs) and the rest of the app. The
extension cannot be deferred: the worker resolves the triggers' annotations when it indexes the
app, right after importing it, and recognises them through the extension's registry; moving the
import into a lazy name would only move the same time from the import into the indexing.
"""

from __future__ import annotations

import statistics
import subprocess
import sys

_PROBE = """
import time
started = time.perf_counter()
import azure.functions
{preload}
base = time.perf_counter()
import azurefunctions.extensions.bindings.servicebus
extension = time.perf_counter()
import function_app
done = time.perf_counter()
print(base - started, extension - base, done - extension)
"""
# What the Python worker has imported before the app: its gRPC channel to the host.
_WORKER_PRELOAD = "import grpc, google.protobuf.message, google.protobuf.wrappers_pb2"


def _median_split(runs: int, preload: str) -> tuple[float, float, float]:
    samples = []
    for _ in range(runs):
        out = subprocess.run(  # noqa: S603 - this interpreter, a fixed probe
            [sys.executable, "-c", _PROBE.format(preload=preload)], capture_output=True, text=True, check=True
        ).stdout
        samples.append([float(x) for x in out.split()])
    base, extension, app = (statistics.median(column) for column in zip(*samples, strict=True))
    return base, extension, app


def cold_start(runs: int) -> dict[str, float]:
    """Seconds, medians over `runs` fresh processes per baseline."""
    base, extension, app = _median_split(runs, "")
    worker_base, worker_extension, worker_app = _median_split(runs, _WORKER_PRELOAD)
    return {
        "azure_functions_s": base,
        "extension_s": extension,
        "app_s": app,
        "added_s": extension + app,
        "worker_base_s": worker_base,
        "worker_extension_s": worker_extension,
        "worker_added_s": worker_extension + worker_app,
    }


def explain(cold: dict[str, float]) -> str:
    ms = {k: v * 1000 for k, v in cold.items()}
    return (
        f"cold start: azure.functions {ms['azure_functions_s']:.0f} ms; then the Service Bus extension "
        f"{ms['extension_s']:.0f} ms and the app's own modules {ms['app_s']:.0f} ms. In the worker "
        f"(grpc already loaded) the app adds {ms['worker_added_s']:.0f} ms, of which the extension "
        f"{ms['worker_extension_s']:.0f} ms. The extension (azure-servicebus, uamqp) is needed when the "
        "worker indexes the functions, right after the import: deferring it moves, not saves, that time"
    )


if __name__ == "__main__":
    result = cold_start(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
    print(explain(result))
