"""The resources' settings that the app's behaviour rests on: the queues (names from function_app.py,
duplicate detection covering the message ids, dead-lettering, time to live), the Flex Consumption
scale cap that keeps Dataverse under its concurrency limit, identity-only access everywhere, and the
exact role assignments. Each check returns its problems and is also run on a broken copy."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest

from diagnostics.settings import Settings
from tests.infra.template import (
    ROOT,
    Scope,
    Templates,
    body,
    condition,
    decorator,
    dotted,
    evaluate,
    module_call,
    module_scope,
    one_resource,
    resources_of_type,
    scope_of,
)
from tests.infra.test_app_settings import trigger_bindings

MAIN = {
    "environmentName": "prod",
    "location": "westeurope",
    "dataverseUrl": "https://contoso.crm.dynamics.com",
}
DATAVERSE_CONCURRENT_PER_USER = 52  # service protection: platform-apis.md 2.12, README "Concurrency"
_ISO_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")


def duration(text: str) -> timedelta:
    """An ISO 8601 duration as Service Bus writes them (days, hours, minutes, seconds)."""
    match = _ISO_DURATION.match(text)
    if not match or text in {"P", "PT"}:
        raise ValueError(f"not an ISO 8601 duration of days and time: {text!r}")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def test_duration_reads_service_bus_durations():
    assert duration("P2D") == timedelta(days=2)
    assert duration("PT5M") == timedelta(minutes=5)
    assert duration("P1DT12H") == timedelta(days=1, hours=12)
    with pytest.raises(ValueError, match="not an ISO 8601"):
        duration("2 days")


# ---- Service Bus ----


def readme_max_delivery_count() -> int:
    """The README promises what the queues do (section Queues): 'a max delivery count (10)'."""
    match = re.search(r"max delivery count \((\d+)\)", (ROOT / "README.md").read_text(encoding="utf-8"))
    assert match, "README no longer states the queues' max delivery count"
    return int(match.group(1))


def queue_problems(templates: Templates) -> list[str]:
    scope = module_scope(templates, "servicebus", MAIN)
    module = templates.modules["servicebus"]
    problems = []
    namespace = body(one_resource(module, "Microsoft.ServiceBus/namespaces"))
    if evaluate(namespace["sku"]["name"], scope) not in {"Standard", "Premium"}:
        problems.append(
            "namespace: Basic has no scheduled re-checks' companions (duplicate detection, topics)"
        )
    if evaluate(namespace["properties"].get("disableLocalAuth"), scope) is not True:
        problems.append("namespace: disableLocalAuth must be true (identity only, no SAS keys)")
    queue = one_resource(module, "Microsoft.ServiceBus/namespaces/queues")
    loop = queue["config"].get("loop_type", {}).get("detail", {})
    names = set(scope.lookup(loop["array_name"])) if loop else {evaluate(body(queue)["name"], scope)}
    _, code_queues, _ = trigger_bindings()
    if names != code_queues:
        problems.append(f"queues {sorted(names)} differ from function_app.py's {sorted(code_queues)}")
    # The queue's properties, for one queue of the loop (they are the same for each).
    item_scope = Scope(
        values={**scope.values, loop.get("item_name", "_"): sorted(names)[0]}, names=scope.names
    )
    props = evaluate(body(queue)["properties"], item_scope)
    if props.get("requiresDuplicateDetection") is not True:
        problems.append("queue: requiresDuplicateDetection must be true (message ids are check:<unit>:<day>)")
    window = duration(props.get("duplicateDetectionHistoryTimeWindow", "PT10M"))
    # A message id carries its UTC day, so one day covers every repeat publish of it; 7 days is
    # the most Service Bus allows.
    if not timedelta(days=1) <= window <= timedelta(days=7):
        problems.append(f"queue: duplicate detection window {window} must be 1 to 7 days")
    if props.get("maxDeliveryCount") != readme_max_delivery_count():
        problems.append(
            f"queue: maxDeliveryCount {props.get('maxDeliveryCount')} is not the README's {readme_max_delivery_count()}"
        )
    if props.get("deadLetteringOnMessageExpiration") is not True:
        problems.append("queue: deadLetteringOnMessageExpiration must be true (never drop an expired check)")
    ttl = duration(props.get("defaultMessageTimeToLive", "P14D"))
    pull_window = Settings.model_fields["pull_window_days"].default
    if ttl < timedelta(days=pull_window + 1):
        problems.append(
            f"queue: time to live {ttl} is shorter than the {pull_window}-day pull window + 1 day"
        )
    lock = duration(props.get("lockDuration", "PT1M"))
    deadline = timedelta(seconds=Settings.model_fields["message_deadline_seconds"].default)
    if not deadline < lock <= timedelta(minutes=5):
        problems.append(
            f"queue: lock {lock} must outlast DIAG_MESSAGE_DEADLINE_SECONDS ({deadline}) and be at most 5 min"
        )
    if props.get("requiresSession"):
        problems.append("queue: sessions are not used by the triggers")
    return problems


def test_the_queues_match_the_app():
    assert queue_problems(Templates.load()) == []


@pytest.mark.parametrize(
    ("file", "mutation", "problem"),
    [
        ("main.bicep", ("  'reference-resolution'\n", "  'reference-resolutions'\n"), "queues ["),
        (
            "servicebus.bicep",
            ("requiresDuplicateDetection: true", "requiresDuplicateDetection: false"),
            "queue: requiresDuplicateDetection",
        ),
        (
            "servicebus.bicep",
            (
                "param duplicateDetectionWindow string = 'P2D'",
                "param duplicateDetectionWindow string = 'PT10M'",
            ),
            "queue: duplicate detection window",
        ),
        (
            "servicebus.bicep",
            ("param maxDeliveryCount int = 10", "param maxDeliveryCount int = 5"),
            "queue: maxDeliveryCount",
        ),
        (
            "servicebus.bicep",
            ("deadLetteringOnMessageExpiration: true", "deadLetteringOnMessageExpiration: false"),
            "queue: deadLetteringOnMessageExpiration",
        ),
        (
            "servicebus.bicep",
            ("param messageTimeToLive string = 'P16D'", "param messageTimeToLive string = 'P14D'"),
            "queue: time to live",
        ),
        ("servicebus.bicep", ("lockDuration: 'PT5M'", "lockDuration: 'PT1M'"), "queue: lock"),
        (
            "servicebus.bicep",
            ("disableLocalAuth: true", "disableLocalAuth: false"),
            "namespace: disableLocalAuth",
        ),
    ],
    ids=[
        "queue-name",
        "no-dedup",
        "short-window",
        "delivery-count",
        "expiry-dropped",
        "short-ttl",
        "short-lock",
        "sas-keys",
    ],
)
def test_queue_problems_are_found(file, mutation, problem):
    problems = queue_problems(Templates.load({file: mutation}))
    assert any(p.startswith(problem) for p in problems), problems


# ---- the Function app ----


def function_app_problems(templates: Templates) -> list[str]:
    problems = []
    module = templates.modules["function-app"]
    scope = module_scope(templates, "function-app", MAIN)
    # The scale cap: every instance signs in as the same Dataverse application user.
    instances = [
        decorator(templates.main["parameters"]["maximumInstanceCount"], "max_value"),
        decorator(module["parameters"]["maximumInstanceCount"], "max_value"),
    ]
    per_worker = decorator(module["parameters"]["dataverseMaxConcurrency"], "max_value")
    if None in instances or per_worker is None:
        problems.append("maximumInstanceCount and dataverseMaxConcurrency must carry @maxValue")
    elif max(instances) > 4:
        problems.append(f"maximumInstanceCount may reach {max(instances)}: at most 4 (README 'Concurrency')")
    elif max(instances) * per_worker > DATAVERSE_CONCURRENT_PER_USER:
        problems.append(
            f"{max(instances)} instances x {per_worker} requests exceed Dataverse's {DATAVERSE_CONCURRENT_PER_USER}"
        )
    plan = body(one_resource(module, "Microsoft.Web/serverfarms"))
    if (
        plan["sku"] != {"name": "FC1", "tier": "FlexConsumption"}
        or plan["properties"].get("reserved") is not True
    ):
        problems.append("plan: must be Flex Consumption (FC1) on Linux (reserved)")
    site = body(one_resource(module, "Microsoft.Web/sites"))
    if site.get("kind") != "functionapp,linux":
        problems.append("site: kind must be functionapp,linux")
    identity = site.get("identity", {})
    if identity.get("type") != "UserAssigned":
        problems.append("site: the identity must be the user-assigned one only")
    props = site["properties"]
    if props.get("httpsOnly") is not True:
        problems.append("site: httpsOnly must be true")
    if props.get("keyVaultReferenceIdentity") != "identityId":
        problems.append("site: keyVaultReferenceIdentity must be the user-assigned identity")
    config = props["functionAppConfig"]
    if config["runtime"] != {"name": "python", "version": "3.11"}:
        problems.append(f"site: runtime {config['runtime']} is not python 3.11")
    scale = config["scaleAndConcurrency"]
    if scale.get("maximumInstanceCount") != "maximumInstanceCount":
        problems.append("site: maximumInstanceCount must be the capped parameter")
    if scale.get("instanceMemoryMB") != 2048:
        problems.append("site: instanceMemoryMB must be 2048")
    storage = config["deployment"]["storage"]
    if storage["type"] != "blobContainer" or storage["authentication"] != {
        "type": "UserAssignedIdentity",
        "userAssignedIdentityResourceId": "identityId",
    }:
        problems.append("site: the deployment package must be read with the user-assigned identity")
    if (
        scope.values.get("dataverseMaxConcurrency", 0)
        > Settings.model_fields["dataverse_max_concurrency"].default
    ):
        problems.append("site: DIAG_DATAVERSE_MAX_CONCURRENCY above the app's default")
    return problems


def test_the_function_app_is_flex_consumption_capped_for_dataverse():
    assert function_app_problems(Templates.load()) == []


@pytest.mark.parametrize(
    ("file", "mutation", "problem"),
    [
        (
            "main.bicep",
            ("@maxValue(4)\nparam maximumInstanceCount", "@maxValue(10)\nparam maximumInstanceCount"),
            "maximumInstanceCount may reach 10",
        ),
        (
            "function-app.bicep",
            ("@maxValue(4)\nparam maximumInstanceCount", "param maximumInstanceCount"),
            "maximumInstanceCount and",
        ),
        (
            "function-app.bicep",
            ("maximumInstanceCount: maximumInstanceCount\n", "maximumInstanceCount: 100\n"),
            "site: maximumInstanceCount",
        ),
        ("function-app.bicep", ("version: '3.11'", "version: '3.12'"), "site: runtime"),
        (
            "function-app.bicep",
            ("type: 'UserAssigned'\n", "type: 'SystemAssigned, UserAssigned'\n"),
            "site: the identity",
        ),
        ("function-app.bicep", ("    name: 'FC1'\n", "    name: 'Y1'\n"), "plan: must be Flex"),
    ],
    ids=["cap-main", "cap-missing", "cap-bypassed", "runtime", "system-identity", "plan"],
)
def test_function_app_problems_are_found(file, mutation, problem):
    problems = function_app_problems(Templates.load({file: mutation}))
    assert any(p.startswith(problem) for p in problems), problems


# ---- storage, Key Vault, Application Insights ----


def data_service_problems(templates: Templates) -> list[str]:
    problems = []
    storage = templates.modules["storage"]
    account = body(one_resource(storage, "Microsoft.Storage/storageAccounts"))["properties"]
    expected = {
        "allowSharedKeyAccess": False,
        "minimumTlsVersion": "TLS1_2",
        "allowBlobPublicAccess": False,
        "supportsHttpsTrafficOnly": True,
    }
    problems += [
        f"storage: {key} must be {value}" for key, value in expected.items() if account.get(key) != value
    ]
    # The state table the app uses: created under the name DIAG_STATE_TABLE gets.
    table = body(one_resource(storage, "Microsoft.Storage/storageAccounts/tableServices/tables"))
    main_scope = scope_of(templates.main, MAIN)
    state_table = evaluate(module_call(templates, "storage")["params"]["stateTableName"], main_scope)
    settings_table = evaluate(module_call(templates, "function-app")["params"]["stateTableName"], main_scope)
    if table["name"] != "stateTableName" or state_table != settings_table:
        problems.append("storage: the table must be the one DIAG_STATE_TABLE names")
    if state_table != Settings.model_fields["state_table"].default:
        problems.append(
            f"storage: table {state_table!r} is not the app's default {Settings.model_fields['state_table'].default!r}"
        )
    vault = body(one_resource(templates.modules["keyvault"], "Microsoft.KeyVault/vaults"))["properties"]
    expected = {"enableRbacAuthorization": True, "enableSoftDelete": True, "enablePurgeProtection": True}
    problems += [
        f"key vault: {key} must be {value}" for key, value in expected.items() if vault.get(key) != value
    ]
    component = body(one_resource(templates.modules["monitoring"], "Microsoft.Insights/components"))[
        "properties"
    ]
    if component.get("DisableLocalAuth") is not True:
        problems.append("application insights: DisableLocalAuth must be true (Entra-authenticated telemetry)")
    return problems


def test_storage_key_vault_and_telemetry_accept_identities_only():
    assert data_service_problems(Templates.load()) == []


@pytest.mark.parametrize(
    ("file", "mutation", "problem"),
    [
        (
            "storage.bicep",
            ("allowSharedKeyAccess: false", "allowSharedKeyAccess: true"),
            "storage: allowSharedKeyAccess",
        ),
        (
            "main.bicep",
            ("param stateTableName string = 'diagnostics'", "param stateTableName string = 'state'"),
            "storage: table 'state'",
        ),
        (
            "keyvault.bicep",
            ("enablePurgeProtection: true", "enablePurgeProtection: false"),
            "key vault: enablePurgeProtection",
        ),
        (
            "keyvault.bicep",
            ("enableRbacAuthorization: true", "enableRbacAuthorization: false"),
            "key vault: enableRbacAuthorization",
        ),
        ("monitoring.bicep", ("DisableLocalAuth: true", "DisableLocalAuth: false"), "application insights"),
    ],
    ids=["shared-key", "table-name", "purge-protection", "access-policies", "local-auth"],
)
def test_data_service_problems_are_found(file, mutation, problem):
    problems = data_service_problems(Templates.load({file: mutation}))
    assert any(p.startswith(problem) for p in problems), problems


# ---- role assignments ----

APP, USER = "identityPrincipalId", "userPrincipalId"
BLOB_DATA_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
TABLE_DATA_CONTRIBUTOR = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"
SERVICE_BUS_RECEIVER = "4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0"
SERVICE_BUS_SENDER = "69a216fc-b8fb-44d8-bc22-1f3c2cd27a39"
SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
SECRETS_OFFICER = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"
METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"
STORAGE, SERVICE_BUS, VAULT, INSIGHTS = (
    "Microsoft.Storage/storageAccounts",
    "Microsoft.ServiceBus/namespaces",
    "Microsoft.KeyVault/vaults",
    "Microsoft.Insights/components",
)

# (principal, role, the type of the resource it is granted on); infra/README.md gives the reasons.
EXPECTED_ROLES = {
    (APP, BLOB_DATA_OWNER, STORAGE),  # host storage and the deployment package
    (APP, TABLE_DATA_CONTRIBUTOR, STORAGE),  # the alert state table
    (APP, SERVICE_BUS_RECEIVER, SERVICE_BUS),  # the queue triggers
    (APP, SERVICE_BUS_SENDER, SERVICE_BUS),  # publishing checks, scheduling re-checks
    (APP, SECRETS_USER, VAULT),  # Key Vault references
    (APP, METRICS_PUBLISHER, INSIGHTS),  # Entra-authenticated telemetry
    (USER, TABLE_DATA_CONTRIBUTOR, STORAGE),  # `diagnostics silence …`
    (USER, SERVICE_BUS_RECEIVER, SERVICE_BUS),  # reading dead letters
    (USER, SERVICE_BUS_SENDER, SERVICE_BUS),  # resubmitting them
    (USER, SECRETS_OFFICER, VAULT),  # rotating the two secrets
}


def role_assignments(templates: Templates) -> tuple[set[tuple[str, str, str]], list[str]]:
    """Every role assignment of every template as (principal, role id, scope type), and problems of
    form: an app grant that is conditional, a user grant that is not, a wrong principal type."""
    found: set[tuple[str, str, str]] = set()
    problems: list[str] = []
    for file, template in [("main", templates.main), *templates.modules.items()]:
        scope = scope_of(template)
        for name, resource in resources_of_type(template, "Microsoft.Authorization/roleAssignments").items():
            config = body(resource)
            props = config["properties"]
            role_id = evaluate(props["roleDefinitionId"]["function"]["parameters"]["resource_name_1"], scope)
            target = template["resources"].get(config.get("scope", ""), {}).get("type", "(no scope)")
            principal = props["principalId"]
            found.add((principal, role_id, target))
            conditional = condition(resource) is not None
            if principal == APP and (conditional or props.get("principalType") != "ServicePrincipal"):
                problems.append(f"{file}.{name}: the app's grants are unconditional, to a ServicePrincipal")
            if principal == USER and not conditional:
                problems.append(f"{file}.{name}: the deploying user's grants only when principalId is given")
    return found, problems


def role_problems(templates: Templates) -> list[str]:
    found, problems = role_assignments(templates)
    problems += [f"missing role assignment {grant}" for grant in sorted(EXPECTED_ROLES - found)]
    problems += [f"unexpected role assignment {grant}" for grant in sorted(found - EXPECTED_ROLES)]
    # The principals are the app's identity and the deploying user, as main.bicep passes them.
    rbac = module_call(templates, "rbac")["params"]
    if dotted(rbac.get(APP)) != "identity.outputs.principalId":
        problems.append("rbac: identityPrincipalId must be identity.outputs.principalId")
    if rbac.get(USER) != "principalId":
        problems.append("rbac: userPrincipalId must be main's principalId")
    return problems


def test_the_role_assignments_are_exactly_what_the_app_needs():
    assert role_problems(Templates.load()) == []


def _roles_text(old: str, new: str) -> dict[str, tuple[str, str]]:
    return {"rbac.bicep": (old, new)}


@pytest.mark.parametrize(
    ("mutation", "problem"),
    [
        (
            _roles_text(
                "    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)\n    principalId: identityPrincipalId",
                "    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)\n    principalId: identityPrincipalId",
            ),
            "missing role assignment ('identityPrincipalId', '0a9a7e1f",
        ),
        (
            _roles_text(
                "storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'",
                "storageBlobDataOwner: 'b24988ac-6180-42a0-ab88-20f7382dd24c'",
            ),
            "unexpected role assignment ('identityPrincipalId', 'b24988ac",
        ),
        (
            _roles_text(
                "  name: guid(serviceBus.id, identityPrincipalId, roles.serviceBusDataSender)\n  scope: serviceBus",
                "  name: guid(serviceBus.id, identityPrincipalId, roles.serviceBusDataSender)\n  scope: storage",
            ),
            "missing role assignment ('identityPrincipalId', '69a216fc",
        ),
        (
            _roles_text(
                "resource userSecretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(userPrincipalId)) {",
                "resource userSecretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = {",
            ),
            "rbac.userSecretsOfficer: the deploying user's grants only",
        ),
        (
            {"main.bicep": ("    userPrincipalId: principalId\n", "    userPrincipalId: principalType\n")},
            "rbac: userPrincipalId",
        ),
        (
            {
                "main.bicep": (
                    "identityPrincipalId: identity.outputs.principalId",
                    "identityPrincipalId: identity.outputs.clientId",
                )
            },
            "rbac: identityPrincipalId",
        ),
    ],
    ids=["role-missing", "role-widened", "wrong-scope", "user-unconditional", "wrong-user", "wrong-identity"],
)
def test_role_problems_are_found(mutation: dict[str, Any], problem):
    problems = role_problems(Templates.load(mutation))
    assert any(p.startswith(problem) for p in problems), problems
