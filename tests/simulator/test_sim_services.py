"""Entra ID with the real azure-identity credential, Partner Center's invoice list, the Teams sink."""

from __future__ import annotations

import httpx
import pytest
from azure.core.exceptions import ClientAuthenticationError
from sim_support import API, client_for, tenant_dict

from simulator import Simulator
from simulator.connect import sim_credential

PC_SCOPE = "https://api.partnercenter.microsoft.com/.default"


def test_azure_identity_gets_tokens_the_services_accept(sim: Simulator) -> None:
    sim.reset_counts()
    credential = sim_credential(sim, connection_verify=sim.ca_file)
    dataverse_scope = f"{sim.dataverse_url}/.default"
    token = credential.get_token(dataverse_scope)
    again = credential.get_token(dataverse_scope)
    assert again.token == token.token  # MSAL's cache: one POST for both
    assert sim.requests[("POST", f"/{sim.tenant_id}/oauth2/v2.0/token")] == 1
    assert sim.requests[("GET", f"/{sim.tenant_id}/v2.0/.well-known/openid-configuration")] == 1
    assert token.expires_on > 0
    pc_token = credential.get_token(PC_SCOPE)
    assert [(t.scope, t.token) for t in sim.tokens[-2:]] == [
        (dataverse_scope, token.token),
        (PC_SCOPE, pc_token.token),
    ]
    with (
        client_for(sim, token=token.token) as dataverse,
        client_for(sim, token=pc_token.token) as partner_center,
    ):
        assert dataverse.get(API + "accounts", params={"$select": "name"}).status_code == 200
        assert partner_center.get("/v1/invoices").status_code == 200


def test_azure_identity_trusts_the_simulator_through_requests_ca_bundle(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert sim.ca_file is not None
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", sim.ca_file)
    assert sim_credential(sim).get_token(PC_SCOPE).token.startswith("sim-")


def test_a_wrong_secret_fails_authentication(sim: Simulator) -> None:
    with pytest.raises(ClientAuthenticationError, match="AADSTS7000215"):
        sim_credential(sim, secret="wrong", connection_verify=sim.ca_file).get_token(PC_SCOPE)


def test_token_endpoint_errors_are_entra_shaped(sim: Simulator) -> None:
    form = {
        "grant_type": "client_credentials",
        "client_id": sim.client_id,
        "client_secret": sim.client_secret,
    }
    with httpx.Client(base_url=sim.base_url, verify=sim.ssl_context()) as http:
        no_default = http.post(
            f"/{sim.tenant_id}/oauth2/v2.0/token", data=form | {"scope": "https://x/user_impersonation"}
        )
        assert (no_default.status_code, no_default.json()["error"]) == (400, "invalid_scope")
        other_tenant = http.post("/contoso/oauth2/v2.0/token", data=form | {"scope": PC_SCOPE})
        assert other_tenant.status_code == 400
        assert "AADSTS90002" in other_tenant.json()["error_description"]
        unknown_client = http.post(
            f"/{sim.tenant_id}/oauth2/v2.0/token", data=form | {"client_id": "x", "scope": PC_SCOPE}
        )
        assert unknown_client.json()["error"] == "unauthorized_client"
        config = http.get(f"/{sim.tenant_id}/v2.0/.well-known/openid-configuration").json()
        assert config["token_endpoint"] == f"{sim.base_url}/{sim.tenant_id}/oauth2/v2.0/token"


def test_partner_center_pages_with_links_next(sim: Simulator) -> None:
    with client_for(sim) as http:
        pages = [http.get("/v1/invoices", params={"size": 2, "offset": 0}, headers={"MS-RequestId": "r-1"})]
        assert pages[0].headers["MS-RequestId"] == "r-1"
        while "next" in pages[-1].json()["links"]:
            pages.append(http.get("/v1" + pages[-1].json()["links"]["next"]["uri"]))
    bodies = [p.json() for p in pages]
    assert [[i["id"] for i in b["items"]] for b in bodies] == [
        ["G000000000", "G000000001"],
        ["G000000002", "G000000003"],
        ["G000000004"],
    ]
    assert bodies[0]["links"]["next"] == {"uri": "/invoices?size=2&offset=2", "method": "GET", "headers": []}
    assert bodies[0]["attributes"] == {"objectType": "Collection"}
    assert [b["totalCount"] for b in bodies] == [2, 2, 1]
    assert bodies[2]["links"]["self"]["uri"] == "/invoices?size=2&offset=4"
    assert bodies[1]["items"][0]["totalCharges"] == 21.0


def test_partner_center_refusals(sim: Simulator) -> None:
    with httpx.Client(base_url=sim.base_url, verify=sim.ssl_context()) as anonymous:
        assert anonymous.get("/v1/invoices").status_code == 401
    with client_for(sim) as http:
        assert http.get("/v1/invoices/G000000001").status_code == 403  # get-by-id needs App+User
        assert http.get("/v1/invoices", params={"size": "x"}).status_code == 400


@pytest.mark.parametrize(("section", "status"), [({"unreachable": True}, 503), ({"enabled": False}, 401)])
def test_partner_center_unreachable_or_not_configured(section: dict[str, bool], status: int) -> None:
    raw = tenant_dict()
    raw["partner_center"] |= section
    with Simulator(raw, tls=False) as sim:
        response = httpx.get(
            sim.base_url + "/v1/invoices", headers={"Authorization": f"Bearer {sim.issue_token(PC_SCOPE)}"}
        )
        assert response.status_code == status
        assert set(response.json()) >= {"code", "description"}


def test_teams_webhook_records_posts_and_answers_202(sim: Simulator) -> None:
    card = {
        "type": "message",
        "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": {}}],
    }
    with httpx.Client(verify=sim.ssl_context()) as http:
        response = http.post(sim.teams_webhook_url, json=card)
        assert (response.status_code, response.content) == (202, b"")
        assert http.post(sim.teams_webhook_url, content=b"not json").status_code == 400
    assert sim.teams_posts[-1] == card


def test_unknown_paths_and_simulator_state(sim: Simulator) -> None:
    with httpx.Client(base_url=sim.base_url, verify=sim.ssl_context()) as http:
        assert http.get("/nothing/here").status_code == 404
    assert sim.dataverse_url == sim.partner_center_url == sim.base_url
    assert sim.authority == f"127.0.0.1:{sim.port}"
    assert sim.base_url.startswith("https://127.0.0.1:")
    stopped = Simulator(tenant_dict())
    with pytest.raises(RuntimeError, match="not running"):
        _ = stopped.base_url


def test_partner_center_by_id_when_the_fixture_allows_it() -> None:
    raw = tenant_dict()
    raw["partner_center"]["invoice_by_id"] = True
    raw["partner_center"]["invoices"][1]["billingPeriodStartDate"] = "2026-10-01T00:00:00Z"
    with Simulator(raw, tls=False) as sim:
        headers = {"Authorization": f"Bearer {sim.issue_token(PC_SCOPE)}", "MS-RequestId": "r-9"}
        one = httpx.get(sim.base_url + "/v1/invoices/G000000001", headers=headers)
        missing = httpx.get(sim.base_url + "/v1/invoices/G999", headers=headers)
        statement = httpx.get(sim.base_url + "/v1/invoices/G000000001/documents/statement", headers=headers)
        listed = httpx.get(sim.base_url + "/v1/invoices", headers=headers).json()["items"]

    assert one.status_code == 200
    assert one.json()["billingPeriodStartDate"] == "2026-10-01T00:00:00Z"
    assert one.json()["attributes"] == {"objectType": "Invoice"}
    assert one.headers["MS-RequestId"] == "r-9"
    assert missing.status_code == 404
    assert statement.status_code == 403  # statements stay App+User only
    assert "billingPeriodStartDate" not in listed[1]
