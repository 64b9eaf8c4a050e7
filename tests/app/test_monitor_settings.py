"""The monitor's settings: Service Bus by connection string or by namespace (the host's `__` names,
any case), the Dataverse concurrency cap, and the state file."""

from __future__ import annotations

from pathlib import Path

import pytest

from diagnostics.adapters.servicebus import ServiceBusMessageBus
from diagnostics.app.container import UnconfiguredBus, bus_from_settings, default_state_file
from diagnostics.errors import ConfigError
from diagnostics.settings import load_settings


def test_defaults() -> None:
    settings = load_settings({})
    assert settings.dataverse_max_concurrency == 8
    assert settings.schema_cache_seconds == 3600
    assert settings.servicebus is None
    assert settings.servicebus_namespace is None
    assert isinstance(bus_from_settings(settings), UnconfiguredBus)
    assert default_state_file().name == "work365-diagnostics-state.json"


def test_the_namespace_is_read_under_the_hosts_name_in_any_case() -> None:
    settings = load_settings(
        {
            "DIAG_SERVICEBUS__fullyQualifiedNamespace": "contoso.servicebus.windows.net",
            "DIAG_SERVICEBUS__CLIENTID": "abc",
        }
    )
    assert settings.servicebus_namespace == "contoso.servicebus.windows.net"
    assert settings.servicebus_client_id == "abc"


def test_a_connection_string_is_a_secret_and_builds_the_bus() -> None:
    text = "Endpoint=sb://127.0.0.1:5672;SharedAccessKeyName=k;SharedAccessKey=c2VjcmV0;UseDevelopmentEmulator=true"
    settings = load_settings({"DIAG_SERVICEBUS": text})
    assert "c2VjcmV0" not in repr(settings)
    assert isinstance(bus_from_settings(settings), ServiceBusMessageBus)


def test_a_bad_connection_string_names_the_setting_without_repeating_it() -> None:
    settings = load_settings({"DIAG_SERVICEBUS": "SharedAccessKey=topsecret"})
    with pytest.raises(ConfigError, match="DIAG_SERVICEBUS") as caught:
        bus_from_settings(settings)
    assert "topsecret" not in str(caught.value)


def test_both_service_bus_settings_at_once_is_an_error() -> None:
    with pytest.raises(ConfigError, match="not both"):
        load_settings({"DIAG_SERVICEBUS": "Endpoint=sb://x", "DIAG_SERVICEBUS__fullyQualifiedNamespace": "x"})


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"DIAG_DATAVERSE_MAX_CONCURRENCY": "0"}, "DIAG_DATAVERSE_MAX_CONCURRENCY"),
        ({"DIAG_DATAVERSE_MAX_CONCURRENCY": "53"}, "DIAG_DATAVERSE_MAX_CONCURRENCY"),
        ({"DIAG_SCHEMA_CACHE_SECONDS": "-1"}, "DIAG_SCHEMA_CACHE_SECONDS"),
        ({"DIAG_MESSAGE_DEADLINE_SECONDS": "5"}, "DIAG_MESSAGE_DEADLINE_SECONDS"),
    ],
)
def test_bad_values_name_the_setting(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_settings(env)


def test_the_state_file_setting(tmp_path: Path) -> None:
    assert load_settings({"DIAG_STATE_FILE": str(tmp_path / "s.json")}).state_file == tmp_path / "s.json"
