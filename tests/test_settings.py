import json
import logging
import os
import ssl
from pathlib import Path

import httpx
import pytest

from diagnostics.cli import main
from diagnostics.connect import ExplainedCredential, _identity_options, _verify
from diagnostics.errors import ConfigError
from diagnostics.settings import Settings, load_settings
from simulator import Simulator, load_fixture


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


# --- settings that work as shipped ---------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_SETTINGS = ROOT / "local.settings.sample.json"
SCENARIOS = Path(__file__).resolve().parent / "scenarios"


def _sample_values() -> dict[str, str]:
    values: dict[str, str] = json.loads(SAMPLE_SETTINGS.read_text(encoding="utf-8"))["Values"]
    return values


def test_the_shipped_sample_settings_load_as_they_are() -> None:
    settings = load_settings(_sample_values())
    assert settings.dataverse_url == "https://contoso.crm.dynamics.com"
    assert settings.ca_bundle is None
    assert settings.schema_map_file is None
    assert not settings.partner_center_configured


def test_the_cli_runs_with_the_shipped_sample_settings(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in _sample_values().items():
        monkeypatch.setenv(name, value)
    code = main(["scan", "--simulate", str(SCENARIOS / "healthy_invoiced_day15.json"), "--format", "json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert json.loads(captured.out)["statistics"]["by_severity"]["error"] == 0


@pytest.mark.parametrize(
    ("name", "nearest"),
    [
        ("DIAG_PULL_WINDOW_DAY", "DIAG_PULL_WINDOW_DAYS"),
        ("DIAG_DATAVERSE_ULR", "DIAG_DATAVERSE_URL"),
        ("DIAG_PARTNERCENTER_TENANT_ID", "DIAG_PARTNER_CENTER_TENANT_ID"),
        ("diag_at_risk_day", "DIAG_AT_RISK_DAYS"),
    ],
)
def test_a_misspelt_setting_names_the_nearest_known_one(name: str, nearest: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({name: "5"})
    assert str(caught.value) == f"setting {name} is not a setting of this app; did you mean {nearest}?"


def test_an_unrelated_diag_variable_is_only_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="diagnostics.settings")
    load_settings({"DIAG_SOMETHING_ELSE_ENTIRELY": "1", "DIAG_SERVICEBUS__credential": "managedidentity"})
    assert "ignoring DIAG_SOMETHING_ELSE_ENTIRELY" in caplog.text
    assert "SERVICEBUS" not in caplog.text


def test_warn_days_must_be_below_the_window() -> None:
    with pytest.raises(
        ConfigError, match="DIAG_PULL_WINDOW_WARN_DAYS: 15 must be below DIAG_PULL_WINDOW_DAYS"
    ):
        load_settings({"DIAG_PULL_WINDOW_DAYS": "15", "DIAG_PULL_WINDOW_WARN_DAYS": "15"})
    assert load_settings({"DIAG_PULL_WINDOW_DAYS": "10", "DIAG_PULL_WINDOW_WARN_DAYS": "9"})


def test_an_empty_override_is_not_set() -> None:
    assert load_settings(
        {"DIAG_DATAVERSE_URL": "https://a.crm.dynamics.com"}, dataverse_url=""
    ).dataverse_url == ("https://a.crm.dynamics.com")


def test_the_ca_bundle_adds_to_the_default_trust_and_reaches_the_credentials() -> None:
    with Simulator(load_fixture(SCENARIOS / "healthy_invoiced_day15.json")) as sim:
        settings = load_settings({"DIAG_CA_BUNDLE": str(sim.ca_file)})
        context = _verify(settings)
        assert isinstance(context, ssl.SSLContext)
        # certifi's roots and the simulator's CA, not the simulator's alone.
        assert len(context.get_ca_certs()) > 100
        bundle = _identity_options(settings)["connection_verify"]
        text = Path(bundle).read_text(encoding="utf-8")
        assert Path(sim.ca_file).read_text(encoding="utf-8").strip() in text
        assert text.count("BEGIN CERTIFICATE") > 100
        # The simulator's certificate verifies with that context.
        with httpx.Client(verify=context) as client:
            assert client.get(f"{sim.dataverse_url}/api/data/v9.2/").status_code in (200, 401, 404)


def test_a_ca_bundle_that_is_not_pem_is_a_setting_error(tmp_path: Path) -> None:
    junk = tmp_path / "ca.pem"
    junk.write_text("not a certificate", encoding="utf-8")
    with pytest.raises(ConfigError, match="DIAG_CA_BUNDLE"):
        _identity_options(load_settings({"DIAG_CA_BUNDLE": str(junk)}))


def test_a_failing_default_credential_says_what_to_do_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from azure.identity import DefaultAzureCredential  # noqa: PLC0415

    for name in list(os.environ):
        if name.startswith(("AZURE_", "IDENTITY_", "MSI_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PATH", "/nonexistent")  # no az, azd or pwsh to ask
    # Managed identity is left out: its probe would leave this machine.
    real = DefaultAzureCredential(exclude_managed_identity_credential=True)
    with pytest.raises(ConfigError) as caught:
        ExplainedCredential(real, "default").get_token("https://contoso.crm.dynamics.com/.default")
    message = str(caught.value)
    assert "\n" not in message
    assert "az login" in message
    assert "DIAG_DATAVERSE_CREDENTIAL=client_secret" in message


def test_every_autofix_setting_is_in_the_sample_and_the_readme() -> None:
    """The auto-fix settings stay in step: the model, local.settings.sample.json and the README table."""
    names = {f"DIAG_{n.upper()}" for n in Settings.model_fields if n.startswith("autofix_")}
    assert names == {
        "DIAG_AUTOFIX_MAP_ACCOUNTS",
        "DIAG_AUTOFIX_REIMPORT",
        "DIAG_AUTOFIX_MIN_CONFIDENCE",
        "DIAG_AUTOFIX_DRY_RUN",
    }
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    sample = _sample_values()
    for name in names:
        assert name in sample, name
        assert f"| `{name}` |" in readme, name
    defaults = load_settings(_sample_values())
    assert not defaults.autofix_map_accounts
    assert not defaults.autofix_reimport
    assert not defaults.autofix_dry_run
    assert defaults.autofix_min_confidence == 0.9


def test_autofix_confidence_out_of_range_is_named() -> None:
    with pytest.raises(ConfigError, match="DIAG_AUTOFIX_MIN_CONFIDENCE"):
        load_settings({"DIAG_AUTOFIX_MIN_CONFIDENCE": "1.5"})
