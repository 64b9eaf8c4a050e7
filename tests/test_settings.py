import pytest

from diagnostics.errors import ConfigError
from diagnostics.settings import load_settings


def test_defaults_are_the_contract_thresholds() -> None:
    t = load_settings({}).thresholds
    assert (t.default_invoice_day, t.usage_file_day, t.pull_window_days, t.pull_window_warn_days) == (
        8,
        11,
        15,
        3,
    )
    assert (t.not_synced_grace_hours, t.contract_gap_days, t.at_risk_days) == (24, 7, 3)


def test_settings_come_from_prefixed_environment_variables() -> None:
    settings = load_settings(
        {"DIAG_PULL_WINDOW_DAYS": "20", "DIAG_DATAVERSE_URL": "https://contoso.crm.dynamics.com/"}
    )
    assert settings.thresholds.pull_window_days == 20
    assert settings.dataverse_url == "https://contoso.crm.dynamics.com"


def test_empty_settings_mean_unset() -> None:
    settings = load_settings({"DIAG_CA_BUNDLE": "", "DIAG_PARTNER_CENTER_TENANT_ID": " "})
    assert settings.ca_bundle is None
    assert not settings.partner_center_configured


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"DIAG_PULL_WINDOW_DAYS": "abc"}, "DIAG_PULL_WINDOW_DAYS"),
        ({"DIAG_PULL_WINDOW_DAYS": "0"}, "DIAG_PULL_WINDOW_DAYS"),
        ({"DIAG_DEFAULT_INVOICE_DAY": "31"}, "DIAG_DEFAULT_INVOICE_DAY"),
        ({"DIAG_SCHEDULE": "every day"}, "DIAG_SCHEDULE"),
        ({"DIAG_DATAVERSE_URL": "contoso"}, "DIAG_DATAVERSE_URL"),
        ({"DIAG_DATAVERSE_CREDENTIAL": "password"}, "DIAG_DATAVERSE_CREDENTIAL"),
        ({"DIAG_PARTNER_CENTER_TENANT_ID": "t"}, "DIAG_PARTNER_CENTER_CLIENT_ID"),
        ({"DIAG_DATAVERSE_CREDENTIAL": "client_secret"}, "DIAG_DATAVERSE_TENANT_ID"),
        ({"DIAG_DATAVERSE_CREDENTIAL": "managed_identity"}, "DIAG_DATAVERSE_CLIENT_ID"),
        (
            {
                "DIAG_PARTNER_CENTER_CLIENT_SECRET": "@Microsoft.KeyVault(SecretUri=https://v.vault.azure.net/secrets/pc/)"
            },
            "DIAG_PARTNER_CENTER_CLIENT_SECRET",
        ),
    ],
)
def test_a_bad_setting_is_named_in_one_line(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    message = str(caught.value)
    assert named in message
    assert "\n" not in message


def test_secrets_are_never_echoed_in_errors() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(
            {"DIAG_DATAVERSE_CREDENTIAL": "client_secret", "DIAG_DATAVERSE_CLIENT_SECRET": "s3cr3t-value"}
        )
    assert "s3cr3t-value" not in str(caught.value)
