"""The Function app's settings in the template against what the code reads: every setting of the
settings model (diagnostics/settings.py) and every connection and %setting% of the triggers
(function_app.py) is provided, or deliberately optional (OPTIONAL, with its reason); the template
sets no `DIAG_*` setting the code does not read; and what it sets loads in the app."""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from typing import Any

import pytest
from pydantic import SecretStr

from diagnostics import queues
from diagnostics.adapters import telemetry
from diagnostics.errors import ConfigError
from diagnostics.settings import ENV_PREFIX, Settings, _env_name, load_settings
from tests.infra.template import (
    ROOT,
    Templates,
    Unresolved,
    body,
    evaluate,
    module_call,
    one_resource,
    scope_of,
)

# Settings the code reads that the template leaves unset on purpose, each with its reason. Set any
# of them through the `additionalAppSettings` parameter.
OPTIONAL = {
    # Only for DIAG_DATAVERSE_CREDENTIAL=client_secret; in Azure the app signs in with its identity.
    "DIAG_DATAVERSE_TENANT_ID": "client_secret sign-in only",
    "DIAG_DATAVERSE_CLIENT_SECRET": "client_secret sign-in only",
    # Connection strings and local files: for a workstation, never in Azure (identity instead).
    "DIAG_SERVICEBUS": "a connection string (keys); Azure uses DIAG_SERVICEBUS__fullyQualifiedNamespace",
    "AzureWebJobsStorage": "a connection string (keys); Azure uses AzureWebJobsStorage__accountName",
    "AzureWebJobsStorage__tableServiceUri": "the table endpoint follows from __accountName",
    "DIAG_STATE_FILE": "a local file instead of the table; the table is the state in Azure",
    # Public cloud, no TLS-inspecting proxy, the schema Work 365 ships: the defaults fit.
    "DIAG_PARTNER_CENTER_URL": "Partner Center's public endpoint by default",
    "DIAG_AUTHORITY_HOST": "a sovereign cloud's Entra authority only",
    "DIAG_CA_BUNDLE": "extra CAs for a TLS-inspecting proxy only",
    "DIAG_SCHEMA_MAP_FILE": "only when `schema verify` finds the environment's schema differs",
    "DIAG_RUNBOOK_BASE_URL": "empty: the app's own /api/runbook route",
    # Tunables whose defaults are the documented behaviour (README "Settings").
    "DIAG_HTTP_MAX_ATTEMPTS": "default",
    "DIAG_RECHECK_DELAY_HOURS": "default",
    "DIAG_SCHEMA_CACHE_SECONDS": "default",
    "DIAG_MESSAGE_DEADLINE_SECONDS": "default (the queues' lock outlasts it: test_resources)",
    "DIAG_HTTP_DEADLINE_SECONDS": "default",
    "DIAG_TEAMS_REPEAT_DAYS": "default",
    "DIAG_DEFAULT_INVOICE_DAY": "threshold default",
    "DIAG_USAGE_FILE_DAY": "threshold default",
    "DIAG_PULL_WINDOW_DAYS": "threshold default",
    "DIAG_PULL_WINDOW_WARN_DAYS": "threshold default",
    "DIAG_NOT_SYNCED_GRACE_HOURS": "threshold default",
    "DIAG_CONTRACT_GAP_DAYS": "threshold default",
    "DIAG_AT_RISK_DAYS": "threshold default",
    "DIAG_STUCK_POPULATING_DAYS": "threshold default",
    "DIAG_REIMPORT_GRACE_DAYS": "threshold default",
    "DIAG_SCHEDULE_MISSED_DAYS": "threshold default",
    "DIAG_GAP_LOOKBACK_MONTHS": "threshold default",
    "DIAG_NOTE_MAX_BYTES": "threshold default",
    # The auto-fixes are off by default: an opt-in that needs write privileges (README "Resolving
    # references").
    "DIAG_AUTOFIX_MAP_ACCOUNTS": "opt-in, off by default",
    "DIAG_AUTOFIX_REIMPORT": "opt-in, off by default",
    "DIAG_AUTOFIX_MIN_CONFIDENCE": "opt-in's threshold, default",
    "DIAG_AUTOFIX_DRY_RUN": "opt-in, off by default",
}

# Flex Consumption takes the runtime and the package from functionAppConfig and refuses these.
FORBIDDEN_ON_FLEX = {
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_EXTENSION_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_CONTENTSHARE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
}
HOST_STORAGE = "AzureWebJobsStorage"  # the Functions host's own connection, always needed

# A deployment with everything given (main.bicep's parameters) and what Azure fills in for the
# values main.bicep passes from other modules' outputs.
CLIENT_ID = "2f3c9a51-7d64-4b8e-9a0c-5e1d2b3c4d5e"
FULL_MAIN = {
    "environmentName": "prod",
    "location": "westeurope",
    "dataverseUrl": "https://contoso.crm.dynamics.com",
    "teamsWebhookUrl": "https://prod-01.westeurope.logic.azure.com/workflows/abc/triggers/manual/paths/invoke?sig=x",
    "partnerCenterTenantId": "9c1e7b24-1111-4a2b-8c3d-000000000001",
    "partnerCenterClientId": "9c1e7b24-2222-4a2b-8c3d-000000000002",
    "partnerCenterClientSecret": "not-a-real-secret",
}
MINIMAL_MAIN = {
    "environmentName": "prod",
    "location": "westeurope",
    "dataverseUrl": "https://contoso.crm.dynamics.com",
}
VAULT = "https://kv-abc.vault.azure.net/"
FROM_AZURE = {
    "name": "func-abc",
    "planName": "plan-abc",
    "identityId": "/subscriptions/0/resourceGroups/rg-prod/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-abc",
    "identityClientId": CLIENT_ID,
    "storageAccountName": "stabc",
    "deploymentContainerUrl": "https://stabc.blob.core.windows.net/app-package-func-abc",
    "appInsightsConnectionString": "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/",
    "serviceBusFullyQualifiedNamespace": "sb-abc.servicebus.windows.net",
}
FULL_SECRETS = {
    "teamsWebhookSecretUri": f"{VAULT}secrets/teams-webhook-url",
    "partnerCenterSecretUri": f"{VAULT}secrets/partner-center-client-secret",
}
MINIMAL_SECRETS = {"teamsWebhookSecretUri": "", "partnerCenterSecretUri": ""}


def app_settings(
    templates: Templates, main_given: Mapping[str, Any], from_azure: Mapping[str, Any]
) -> dict[str, str]:
    """The `appsettings` the template deploys for main.bicep's parameters `main_given`."""
    main_scope = scope_of(templates.main, main_given)
    passed = {}
    for name, expr in module_call(templates, "function-app").get("params", {}).items():
        try:
            passed[name] = evaluate(expr, main_scope)
        except Unresolved:
            assert name in from_azure, f"main.bicep passes {name} from elsewhere; give it in the test"
            passed[name] = from_azure[name]
    module = templates.modules["function-app"]
    config = one_resource(module, "Microsoft.Web/sites/config")
    assert body(config)["name"] == "appsettings"
    return evaluate(body(config)["properties"], scope_of(module, passed))


def full_settings(templates: Templates) -> dict[str, str]:
    return app_settings(templates, FULL_MAIN, {**FROM_AZURE, **FULL_SECRETS})


def minimal_settings(templates: Templates) -> dict[str, str]:
    return app_settings(templates, MINIMAL_MAIN, {**FROM_AZURE, **MINIMAL_SECRETS})


# ---- what the code reads ----


def names_the_settings_model_reads() -> set[str]:
    return {_env_name(field) for field in Settings.model_fields}


def trigger_bindings() -> tuple[set[str], set[str], set[str]]:
    """function_app.py's Service Bus connections, queue names and %app setting% references, as the
    worker reads them (constants resolved from diagnostics.queues)."""
    tree = ast.parse((ROOT / "function_app.py").read_text(encoding="utf-8"))
    connections, queue_names, referenced = set(), set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg in {"connection", "queue_name"}:
            value = node.value
            resolved = getattr(queues, value.id) if isinstance(value, ast.Name) else ast.literal_eval(value)
            (connections if node.arg == "connection" else queue_names).add(resolved)
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            referenced |= set(re.findall(r"%([A-Za-z0-9_]+)%", node.value))
    return connections, queue_names, referenced


def test_the_triggers_are_read_from_function_app():
    connections, queue_names, referenced = trigger_bindings()
    assert connections == {"DIAG_SERVICEBUS"}
    assert queue_names == {"invoice-checks", "reference-resolution"}
    assert referenced == {"DIAG_SCHEDULE"}


# ---- the checks ----


def settings_problems(settings: Mapping[str, str]) -> list[str]:
    problems = []
    code_reads = names_the_settings_model_reads()
    connections, _, referenced = trigger_bindings()
    # Every setting the code reads: provided, or deliberately optional.
    problems += [
        f"{name}: read by diagnostics/settings.py, not set by the template and not in OPTIONAL"
        for name in sorted(code_reads - set(settings) - set(OPTIONAL))
    ]
    # The host resolves %NAME% in trigger attributes at start: unset, the app does not start.
    problems += [
        f"{name}: function_app.py refers to %{name}%, not set" for name in sorted(referenced - set(settings))
    ]
    # Each connection identity-based: the namespace with the app's identity, never a secret.
    for connection in sorted(connections):
        for suffix, expected in (
            ("fullyQualifiedNamespace", None),
            ("credential", "managedidentity"),
            ("clientId", None),
        ):
            name = f"{connection}__{suffix}"
            if not settings.get(name) or (expected and settings[name] != expected):
                problems.append(
                    f"{name}: the trigger connection {connection} needs it{f' = {expected}' if expected else ''}"
                )
    for name in (HOST_STORAGE, *connections):
        if name in settings:
            problems.append(
                f"{name}: a connection string (keys); the template must use the identity-based {name}__* settings"
            )
    for suffix, expected in (("accountName", None), ("credential", "managedidentity"), ("clientId", None)):
        name = f"{HOST_STORAGE}__{suffix}"
        if not settings.get(name) or (expected and settings[name] != expected):
            problems.append(
                f"{name}: the host's storage by identity needs it{f' = {expected}' if expected else ''}"
            )
    # No DIAG_* setting the code does not read (a misspelt one would leave a default in force).
    known_prefixes = {f"{c}__".casefold() for c in connections}
    problems += [
        f"{name}: set by the template, read by no code"
        for name in sorted(settings)
        if name.upper().startswith(ENV_PREFIX)
        and name not in code_reads
        and not any(name.casefold().startswith(p) for p in known_prefixes)
    ]
    problems += [
        f"{name}: Flex Consumption refuses this setting" for name in sorted(FORBIDDEN_ON_FLEX & set(settings))
    ]
    # The worker sends the app's logs to Application Insights only with these (adapters/telemetry.py).
    problems += [
        f"{name}: the worker's telemetry needs it (diagnostics/adapters/telemetry.py)"
        for name in telemetry.APP_SETTINGS
        if not settings.get(name)
    ]
    if settings.get("PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY", "true").casefold() != "true":
        problems.append("PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY: must be true")
    # Secrets only as Key Vault references.
    key_vault_reference = re.compile(r"@Microsoft\.KeyVault\(SecretUri=https://[^)]+\)")
    secrets = {
        _env_name(name)
        for name, field in Settings.model_fields.items()
        if field.annotation == SecretStr | None
    }
    problems += [
        f"{name}: a secret, must be a Key Vault reference"
        for name in sorted(secrets & set(settings))
        if not key_vault_reference.fullmatch(settings[name])
    ]
    return problems


def test_the_template_sets_what_the_code_reads():
    assert settings_problems(full_settings(Templates.load())) == []


def test_the_optional_list_holds_only_settings_the_code_reads_and_the_template_leaves_unset():
    stale = set(OPTIONAL) - names_the_settings_model_reads()
    assert not stale, f"OPTIONAL names settings no code reads: {sorted(stale)}"
    both = set(OPTIONAL) & set(full_settings(Templates.load()))
    assert not both, f"OPTIONAL names settings the template sets: {sorted(both)}"


@pytest.mark.parametrize(
    ("mutation", "problem"),
    [
        (("  DIAG_STATE_TABLE: stateTableName\n", ""), "DIAG_STATE_TABLE: read by diagnostics/settings.py"),
        (("  DIAG_SCHEDULE: schedule\n", ""), "DIAG_SCHEDULE: function_app.py refers to %DIAG_SCHEDULE%"),
        (
            ("  DIAG_SCHEDULE: schedule\n", "  DIAG_SCHEDULES: schedule\n"),
            "DIAG_SCHEDULES: set by the template, read by no code",
        ),
        (
            (
                "DIAG_SERVICEBUS__credential: 'managedidentity'",
                "DIAG_SERVICEBUS__credential: 'connectionstring'",
            ),
            "DIAG_SERVICEBUS__credential: the trigger connection",
        ),
        (
            ("  DIAG_SERVICEBUS__fullyQualifiedNamespace:", "  DIAG_SERVICEBUS:"),
            "DIAG_SERVICEBUS: a connection string",
        ),
        (
            ("  AzureWebJobsStorage__accountName:", "  AzureWebJobsStorage:"),
            "AzureWebJobsStorage: a connection string",
        ),
        (
            (
                "  AZURE_CLIENT_ID: identityClientId\n",
                "  AZURE_CLIENT_ID: identityClientId\n  FUNCTIONS_WORKER_RUNTIME: 'python'\n",
            ),
            "FUNCTIONS_WORKER_RUNTIME: Flex Consumption refuses",
        ),
        (
            ("'@Microsoft.KeyVault(SecretUri=${teamsWebhookSecretUri})'", "teamsWebhookSecretUri"),
            "DIAG_TEAMS_WEBHOOK_URL: a secret",
        ),
        (
            ("  PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY: 'true'\n", ""),
            "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY: the worker's",
        ),
        (
            ("ENABLE_TELEMETRY: 'true'", "ENABLE_TELEMETRY: 'false'"),
            "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY: must be true",
        ),
    ],
    ids=[
        "missing",
        "unset-schedule",
        "misspelt",
        "connection-credential",
        "connection-string",
        "host-storage-keys",
        "flex-refuses",
        "secret-in-clear",
        "no-telemetry",
        "telemetry-off",
    ],
)
def test_settings_problems_are_found(mutation, problem):
    settings = full_settings(Templates.load({"function-app.bicep": mutation}))
    assert any(p.startswith(problem) for p in settings_problems(settings)), settings_problems(settings)


def _as_the_platform_resolves(settings: Mapping[str, str]) -> dict[str, str]:
    """Key Vault references replaced by a secret's value, as App Service does before the app runs."""
    return {
        name: "https://example.invalid/secret" if value.startswith("@Microsoft.KeyVault(") else value
        for name, value in settings.items()
    }


@pytest.mark.parametrize(
    "settings_of", [full_settings, minimal_settings], ids=["everything-given", "minimal"]
)
def test_the_deployed_settings_load_in_the_app(settings_of):
    settings = settings_of(Templates.load())
    loaded = load_settings(_as_the_platform_resolves(settings))
    assert loaded.dataverse_url == "https://contoso.crm.dynamics.com"
    assert loaded.dataverse_credential == "managed_identity"
    assert loaded.dataverse_client_id == loaded.servicebus_client_id == loaded.storage_client_id == CLIENT_ID
    assert loaded.servicebus_namespace == "sb-abc.servicebus.windows.net"
    assert loaded.storage_account_name == "stabc"
    assert loaded.state_table == Settings.model_fields["state_table"].default
    assert loaded.dataverse_max_concurrency <= Settings.model_fields["dataverse_max_concurrency"].default
    assert settings["APPLICATIONINSIGHTS_CONNECTION_STRING"] == FROM_AZURE["appInsightsConnectionString"]
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == f"Authorization=AAD;ClientId={CLIENT_ID}"
    assert loaded.partner_center_configured == (settings_of is full_settings)
    assert (loaded.teams_webhook_url is not None) == (settings_of is full_settings)


def test_unresolved_settings_do_not_load():
    """The same load fails on a broken template: it is a check, not a formality."""
    broken = Templates.load(
        {
            "function-app.bicep": (
                "DIAG_DATAVERSE_CREDENTIAL: 'managed_identity'",
                "DIAG_DATAVERSE_CREDENTIAL: 'managed-identity'",
            )
        }
    )
    with pytest.raises(ConfigError, match="DIAG_DATAVERSE_CREDENTIAL"):
        load_settings(_as_the_platform_resolves(minimal_settings(broken)))
    # A Key Vault reference the platform could not resolve stops the app, naming the setting.
    with pytest.raises(ConfigError, match="the Key Vault reference did not resolve"):
        load_settings(full_settings(Templates.load()))
