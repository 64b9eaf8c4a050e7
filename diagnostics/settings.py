"""Every app setting, named, typed and validated at start (one pydantic-settings model).

App settings are environment variables with the prefix `DIAG_` (in Azure: the Function app's
application settings; locally: the shell or local.settings.json). A bad value stops the start with
a one-line error that names the setting.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from diagnostics.errors import ConfigError
from diagnostics.references.match import DEFAULT_THRESHOLD

log = logging.getLogger(__name__)

ENV_PREFIX = "DIAG_"
_NCRONTAB = re.compile(r"^\S+( \S+){5}$")


class Thresholds(BaseModel):
    """The day and hour thresholds of the finding contract; the checks take only these."""

    model_config = ConfigDict(frozen=True)

    default_invoice_day: int = 8
    usage_file_day: int = 11
    pull_window_days: int = 15
    pull_window_warn_days: int = 3
    not_synced_grace_hours: int = 24
    contract_gap_days: int = 7
    at_risk_days: int = 3
    stuck_populating_days: int = 1
    reimport_grace_days: int = 1
    schedule_missed_days: int = 1
    gap_lookback_months: int = 3
    # errors.csv / warnings.csv notes larger than this are not downloaded (ERRORS_FILE_UNREADABLE)
    note_max_bytes: int = 5 * 1024 * 1024


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    # Dataverse: the environment URL, e.g. https://contoso.crm.dynamics.com
    dataverse_url: str | None = None
    # How the app authenticates to Dataverse: DefaultAzureCredential (managed identity in Azure,
    # your az login locally), an explicit user-assigned managed identity, or an app secret.
    dataverse_credential: Literal["default", "managed_identity", "client_secret"] = "default"
    dataverse_client_id: str | None = None
    dataverse_tenant_id: str | None = None
    dataverse_client_secret: SecretStr | None = None

    # Partner Center (app-only): optional; without it a missing invoice is reported as unverified.
    partner_center_tenant_id: str | None = None
    partner_center_client_id: str | None = None
    partner_center_client_secret: SecretStr | None = None
    partner_center_url: str = "https://api.partnercenter.microsoft.com"

    # Entra ID authority host for a sovereign cloud (e.g. login.microsoftonline.us); empty = public cloud.
    authority_host: str | None = None
    # A PEM file of extra CAs to trust (a TLS-inspecting proxy); empty = the system's trust store.
    ca_bundle: Path | None = None

    # Attempts per HTTP request (429, 5xx and network errors are retried with back-off).
    http_max_attempts: int = Field(5, ge=1, le=10)

    schedule: str = "0 0 7 * * *"  # NCRONTAB for the timer trigger (six fields)
    # Re-checks of an invoice waiting for its usage come due this long after the planner's daily
    # time (never on it: the morning's planned check cancels the afternoon's re-check when the usage
    # has arrived overnight).
    recheck_delay_hours: int = Field(6, ge=1, le=23)
    schema_map_file: Path | None = None

    # --- the monitor (Function app) ---
    # Service Bus: a connection string locally (DIAG_SERVICEBUS), the namespace with the app's
    # identity in Azure (DIAG_SERVICEBUS__fullyQualifiedNamespace, optional __clientId of a
    # user-assigned identity). The triggers read the same settings through the host.
    servicebus: SecretStr | None = None
    servicebus_namespace: str | None = None
    servicebus_client_id: str | None = None
    # Concurrent Dataverse requests per worker process; Dataverse refuses more than 52 at once per
    # user (service protection), and every instance of the app counts against that (README).
    dataverse_max_concurrency: int = Field(8, ge=1, le=52)
    # A local file for the planner's watermark, pending re-checks and notified fingerprints (the
    # command line, the replay); empty = Table Storage when configured (below), else a temp file.
    state_file: Path | None = None
    # The state store on Azure Table Storage, in the app's own storage account, read from the
    # Functions host's own settings: `AzureWebJobsStorage` (a connection string; locally
    # `UseDevelopmentStorage=true` is Azurite) or its identity-based form (`__accountName` or
    # `__tableServiceUri`, `__credential=managedidentity`, `__clientId`). DIAG_STATE_FILE wins when set.
    state_table: str = "diagnostics"
    storage_connection: SecretStr | None = None
    storage_account_name: str | None = None
    storage_table_uri: str | None = None
    storage_credential: str | None = None
    storage_client_id: str | None = None
    # How long the verified schema (one metadata read) is reused before it is read again.
    schema_cache_seconds: int = Field(3600, ge=0, le=24 * 3600)
    # Longest time one message may take; past it the delivery fails and Service Bus retries it.
    message_deadline_seconds: int = Field(240, ge=10, le=3600)
    # Longest time one on-demand HTTP diagnosis may take, retries included; Azure's front end
    # drops an HTTP request after 230 s, so a diagnosis that cannot finish must fail before that.
    http_deadline_seconds: int = Field(100, ge=5, le=220)
    # Teams: the Workflows webhook URL (the whole URL is the secret; a Key Vault reference in
    # Azure); empty = no Teams posts. An open finding is reminded at most every N days.
    teams_webhook_url: SecretStr | None = None
    teams_repeat_days: int = Field(7, ge=1, le=90)

    default_invoice_day: int = Field(8, ge=1, le=28)
    usage_file_day: int = Field(11, ge=1, le=28)
    pull_window_days: int = Field(15, ge=1, le=60)
    pull_window_warn_days: int = Field(3, ge=0, le=60)
    not_synced_grace_hours: int = Field(24, ge=0, le=24 * 14)
    contract_gap_days: int = Field(7, ge=0, le=27)
    at_risk_days: int = Field(3, ge=0, le=27)
    stuck_populating_days: int = Field(1, ge=0, le=30)
    reimport_grace_days: int = Field(1, ge=0, le=30)
    schedule_missed_days: int = Field(1, ge=0, le=30)
    gap_lookback_months: int = Field(3, ge=0, le=24)
    # A note over this size is reported as too large instead of downloaded (Dataverse allows 128 MB).
    note_max_bytes: int = Field(5 * 1024 * 1024, ge=1024, le=128 * 1024 * 1024)

    # Auto-fix of unresolved references (README "Resolving references"): each kind off by default.
    # Map an empty provider account to the CRM account matched at DIAG_AUTOFIX_MIN_CONFIDENCE or above.
    autofix_map_accounts: bool = False
    # Delete a blocked provider invoice once every reference resolves, so Work 365 re-imports it.
    autofix_reimport: bool = False
    autofix_min_confidence: float = Field(DEFAULT_THRESHOLD, ge=0.5, le=1.0)
    # Record what would be done ("would map …") in the note and the log; write nothing to Work 365.
    autofix_dry_run: bool = False

    # Where runbook links point (the folder of the CODE.md pages, or the app's /api/runbook route).
    # Empty: the app's own route in Azure, the repository's docs/findings in a checkout.
    runbook_base_url: str | None = None

    @field_validator("dataverse_url")
    @classmethod
    def _dataverse_url(cls, value: str | None) -> str | None:
        url = service_url(value)
        # The environment is the origin: a pasted Web API or app URL
        # (https://contoso.crm.dynamics.com/api/data/v9.2/, …/main.aspx?appid=…) means the same.
        return (
            None
            if url is None
            else str(httpx.URL(url).copy_with(path="/", query=None, fragment=None)).rstrip("/")
        )

    @field_validator("runbook_base_url")
    @classmethod
    def _runbook_base_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not value.strip().startswith(("https://", "http://", "file:")):
            raise ValueError("must be an absolute https:// (or file:) URL of the runbook pages")
        return value.strip()

    @field_validator("partner_center_url", "authority_host")
    @classmethod
    def _service_url(cls, value: str | None) -> str | None:
        return service_url(value)

    @field_validator("schedule")
    @classmethod
    def _ncrontab(cls, value: str) -> str:
        if not _NCRONTAB.match(value.strip()):
            raise ValueError("must be an NCRONTAB expression with six fields, e.g. '0 0 7 * * *'")
        return value.strip()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only what load_settings passes: it reads the environment itself, where an empty value
        # means "not set" (pydantic-settings would take DIAG_SCHEMA_MAP_FILE="" as the path ".").
        return (init_settings,)

    @property
    def thresholds(self) -> Thresholds:
        return Thresholds(**{name: getattr(self, name) for name in Thresholds.model_fields})

    @property
    def partner_center_configured(self) -> bool:
        return bool(self.partner_center_tenant_id)


# Settings whose names follow the Functions host's identity-based connection convention.
_HOST_NAMES = {
    "servicebus_namespace": "DIAG_SERVICEBUS__fullyQualifiedNamespace",
    "servicebus_client_id": "DIAG_SERVICEBUS__clientId",
    "storage_connection": "AzureWebJobsStorage",
    "storage_account_name": "AzureWebJobsStorage__accountName",
    "storage_table_uri": "AzureWebJobsStorage__tableServiceUri",
    "storage_credential": "AzureWebJobsStorage__credential",
    "storage_client_id": "AzureWebJobsStorage__clientId",
}


_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


def is_loopback(host: str) -> bool:
    return host.lower() in _LOOPBACK_HOSTS or host.startswith("127.")


def service_url(value: str | None) -> str | None:
    """A service URL: https://, or plain http:// only to this machine (the simulator); tokens and
    tenant data never travel in clear text. Empty means not set; a bare host name gets https://."""
    if value is None or not value.strip():
        return None
    value = value.strip().rstrip("/")
    if "://" not in value:
        value = f"https://{value}"  # a bare host name, as authority hosts are usually written
    if not re.match(r"^https?://[^/\s]+(/\S*)?$", value, re.IGNORECASE):
        raise ValueError("must be a URL such as https://contoso.crm.dynamics.com")
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL:
        raise ValueError("must be a URL such as https://contoso.crm.dynamics.com") from None
    if "." not in url.host and not is_loopback(url.host):
        raise ValueError("must be a URL such as https://contoso.crm.dynamics.com")
    if url.scheme != "https" and not is_loopback(url.host):
        raise ValueError("must start with https:// (plain http only to localhost, for the simulator)")
    return value


_HIDDEN = frozenset({"servicebus", "storage_connection"})  # connection strings hold keys


def _env_name(field: str) -> str:
    return _HOST_NAMES.get(field) or f"{ENV_PREFIX}{field.upper()}"


def _lookup(env: Mapping[str, str], field: str) -> str:
    """The setting's value; the host's `__` names are matched without regard to case."""
    name = _env_name(field)
    if field not in _HOST_NAMES:
        return env.get(name, "")
    return next((v for k, v in env.items() if k.casefold() == name.casefold()), "")


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    field = str(err["loc"][0]) if err["loc"] else "?"
    got = err.get("input")
    shown = "" if got is None or "secret" in field or field in _HIDDEN else f" (got {str(got)[:60]!r})"
    message = str(err["msg"]).removeprefix("Value error, ")
    return f"setting {_env_name(field)}: {message}{shown}"


def _check_partner_center(settings: Settings) -> None:
    names = ("partner_center_tenant_id", "partner_center_client_id", "partner_center_client_secret")
    given = [n for n in names if getattr(settings, n)]
    if given and len(given) != len(names):
        missing = ", ".join(_env_name(n) for n in names if n not in given)
        raise ConfigError(f"setting {missing}: Partner Center is half configured; set all three or none")


def _check_dataverse_credential(settings: Settings) -> None:
    if settings.dataverse_credential == "client_secret":
        for name in ("dataverse_tenant_id", "dataverse_client_id", "dataverse_client_secret"):
            if not getattr(settings, name):
                raise ConfigError(
                    f"setting {_env_name(name)}: required when DIAG_DATAVERSE_CREDENTIAL=client_secret"
                )
    if settings.dataverse_credential == "managed_identity" and not settings.dataverse_client_id:
        raise ConfigError(
            "setting DIAG_DATAVERSE_CLIENT_ID: required when DIAG_DATAVERSE_CREDENTIAL=managed_identity "
            "(the client id of the user-assigned identity)"
        )


def _check_unknown_names(env: Mapping[str, str]) -> None:
    """A `DIAG_*` variable that is no setting is a misspelling until shown otherwise: one close to a
    known name stops the start (it would silently leave that setting at its default); any other is
    logged and ignored."""
    known = {_env_name(name) for name in Settings.model_fields}
    folded = {name.casefold() for name in known}
    for name in env:
        if not name.upper().startswith(ENV_PREFIX) or name.casefold() in folded:
            continue
        if "__" in name and name.split("__", 1)[0].casefold() in folded:
            continue  # the host's identity-based connection names (DIAG_SERVICEBUS__credential, …)
        close = difflib.get_close_matches(name.upper(), [k.upper() for k in known], n=1, cutoff=0.8)
        if close:
            nearest = next(k for k in known if k.upper() == close[0])
            raise ConfigError(
                f"setting {cut_name(name)} is not a setting of this app; did you mean {nearest}?"
            )
        log.warning("ignoring %s: not a setting of this app", cut_name(name))


def cut_name(name: str) -> str:
    return name if len(name) <= 60 else name[:59] + "…"


def _check_thresholds(settings: Settings) -> None:
    if settings.pull_window_warn_days >= settings.pull_window_days:
        raise ConfigError(
            f"setting DIAG_PULL_WINDOW_WARN_DAYS: {settings.pull_window_warn_days} must be below "
            f"DIAG_PULL_WINDOW_DAYS ({settings.pull_window_days}), or the window would always be closing"
        )


def load_settings(environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Read and validate every setting; raise ConfigError naming the first bad one."""
    env = os.environ if environ is None else environ
    _check_unknown_names(env)
    # An empty setting means "not set" (local.settings.json lists every setting, most left empty).
    values: dict[str, object] = {
        name: _lookup(env, name) for name in Settings.model_fields if _lookup(env, name).strip()
    }
    for value in values.values():
        if isinstance(value, str) and value.startswith("@Microsoft.KeyVault("):
            # An unresolved Key Vault reference stays literal in the setting (platform-apis.md 6.5).
            name = next(k for k, v in values.items() if v is value)
            raise ConfigError(
                f"setting {_env_name(name)}: the Key Vault reference did not resolve; "
                "check the app's identity has 'Key Vault Secrets User' on the vault"
            )
    values.update(
        {k: v for k, v in overrides.items() if v is not None and not (isinstance(v, str) and not v.strip())}
    )
    try:
        # Environment reading is done above so that tests pass their own mapping.
        settings = Settings.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(_first_error(exc)) from None
    _check_partner_center(settings)
    _check_dataverse_credential(settings)
    _check_thresholds(settings)
    if settings.servicebus and settings.servicebus_namespace:
        raise ConfigError(
            "setting DIAG_SERVICEBUS: set either the connection string or "
            "DIAG_SERVICEBUS__fullyQualifiedNamespace, not both"
        )
    _check_storage(settings)
    return settings


def _check_storage(settings: Settings) -> None:
    credential = (settings.storage_credential or "").strip().casefold()
    if credential and credential != "managedidentity":
        raise ConfigError(
            "setting AzureWebJobsStorage__credential: only 'managedidentity' is understood "
            "(leave it empty to sign in with DefaultAzureCredential)"
        )
    try:
        service_url(settings.storage_table_uri)  # https, or http to this machine (Azurite)
    except ValueError:
        raise ConfigError(
            "setting AzureWebJobsStorage__tableServiceUri: must be a URL such as "
            "https://<account>.table.core.windows.net (plain http only to localhost)"
        ) from None
    if settings.storage_account_name and not re.match(r"^[a-z0-9]{3,24}$", settings.storage_account_name):
        raise ConfigError(
            "setting AzureWebJobsStorage__accountName: must be a storage account name "
            "(3-24 lowercase letters and digits)"
        )
    if not re.match(r"^[A-Za-z][A-Za-z0-9]{2,62}$", settings.state_table):
        raise ConfigError(
            f"setting DIAG_STATE_TABLE: {settings.state_table!r} is not a table name "
            "(3-63 letters and digits, starting with a letter)"
        )
