"""The canonical log lines' fields as Application Insights custom dimensions.

In Azure the Python worker itself sends the app's `logging` records to Application Insights: with
the app setting `PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY=true` it calls the Azure Monitor
OpenTelemetry distro's `configure_azure_monitor()` (package `azure-monitor-opentelemetry`, in
requirements.txt) when it starts, before it imports `function_app.py`, and hangs its handler on the
root logger. That handler turns each attribute a record got from `extra=` into an OpenTelemetry
attribute, which Application Insights stores in `traces.customDimensions`. Nothing in the app imports
OpenTelemetry (no cold-start cost, nothing to turn off locally): without that setting (the command
line, `func start`, the tests) the records go where `logging` sends them, as before.

OpenTelemetry accepts only str, bool, int, float (and sequences of one of them) as attribute
values: it drops anything else, `None` included, with a warning per record. So every canonical line
passes its fields through `dimensions` before handing them to `extra=`.
"""

from __future__ import annotations

from collections.abc import Mapping

Dimension = str | bool | int | float

# App settings the deployment must set for the worker to send the logs this way (docs/deploy.md).
APP_SETTINGS = (
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
    "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY",
)


def dimensions(fields: Mapping[str, object]) -> dict[str, Dimension]:
    """The fields as OpenTelemetry attribute values: absent ones (None, empty text) left out, so no
    record is dropped or warned about; anything that is not a plain scalar as its text."""
    out: dict[str, Dimension] = {}
    for key, value in fields.items():
        if value is None or value == "":
            continue
        out[key] = value if isinstance(value, str | bool | int | float) else str(value)
    return out
