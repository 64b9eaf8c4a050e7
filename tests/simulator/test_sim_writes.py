"""Creating and upserting notes (recorded in Simulator.notes), and the other writes the tool may make."""

from __future__ import annotations

import base64
import uuid

import httpx
from sim_support import ACCOUNT, API, INVOICE_ACTIVE, INVOICE_ERROR, INVOICE_POPULATING

from simulator import Simulator

NOTES = API + "annotations"
BIND = "objectid_work365_providerinvoice@odata.bind"


def test_create_a_note_answers_204_with_its_entity_id_and_records_it(
    sim: Simulator, client: httpx.Client
) -> None:
    body = {
        "subject": "Usage diagnostics",
        "notetext": "PI_MISSING",
        "filename": "diagnosis.json",
        "mimetype": "application/json",
        "documentbody": base64.b64encode(b"{}").decode(),
        BIND: f"/work365_providerinvoices({INVOICE_ACTIVE})",
    }
    response = client.post(NOTES, json=body)
    assert response.status_code == 204
    assert response.content == b""
    entity_id = response.headers["OData-EntityId"]
    assert entity_id.startswith(f"{sim.base_url}{API}annotations(")
    note_id = entity_id.rsplit("(", 1)[1].rstrip(")")
    recorded = sim.notes[-1]
    assert recorded["annotationid"] == note_id
    assert recorded["_objectid_value"] == INVOICE_ACTIVE
    assert recorded["objecttypecode"] == "work365_providerinvoice"
    assert recorded["isdocument"] is True
    assert recorded["createdon"] == "2026-11-12T09:00:00Z"  # the fixture's clock
    read = client.get(
        NOTES, params={"$filter": f"_objectid_value eq {INVOICE_ACTIVE}", "$select": "subject,notetext"}
    )
    assert [(n["subject"], n["notetext"]) for n in read.json()["value"]] == [
        ("Usage diagnostics", "PI_MISSING")
    ]
    assert sim.writes[-1] == {"method": "POST", "table": "annotation", "id": note_id, "body": body}


def test_create_with_return_representation_answers_201_with_the_row(client: httpx.Client) -> None:
    response = client.post(
        NOTES,
        params={"$select": "subject,_objectid_value"},
        json={
            "subject": "Represented",
            BIND: f"{client.base_url}{API}work365_providerinvoices({INVOICE_ERROR})",
        },
        headers={"Prefer": "return=representation"},
    )
    assert response.status_code == 201
    body = response.json()
    assert body["subject"] == "Represented"
    assert body["_objectid_value"] == INVOICE_ERROR
    assert set(body) == {"@odata.context", "@odata.etag", "subject", "_objectid_value", "annotationid"}
    assert response.headers["Preference-Applied"] == "return=representation"


def test_upsert_by_client_chosen_id_creates_then_updates(sim: Simulator, client: httpx.Client) -> None:
    note_id = str(uuid.uuid5(uuid.NAMESPACE_URL, "diagnosis-note"))
    url = f"{NOTES}({note_id})"
    first = client.patch(
        url,
        json={"subject": "Diagnosis", "notetext": "v1", BIND: f"/work365_providerinvoices({INVOICE_ERROR})"},
    )
    assert first.status_code == 204
    assert first.headers["OData-EntityId"].endswith(f"annotations({note_id})")
    etag = client.get(url).json()["@odata.etag"]
    second = client.patch(url, json={"notetext": "v2"}, headers={"Prefer": "return=representation"})
    assert second.status_code == 200
    assert second.json()["notetext"] == "v2"
    assert second.json()["_objectid_value"] == INVOICE_ERROR
    assert [n["notetext"] for n in sim.notes if n["annotationid"] == note_id] == ["v1", "v2"]
    assert (
        client.patch(url, json={"notetext": "v3"}, headers={"If-Match": etag}).status_code == 412
    )  # stale etag
    assert client.patch(url, json={"notetext": "v3"}, headers={"If-None-Match": "*"}).status_code == 412
    missing = f"{NOTES}({uuid.uuid4()})"
    assert client.patch(missing, json={"notetext": "x"}, headers={"If-Match": "*"}).status_code == 404


def test_bad_writes_are_answered_like_dataverse(client: httpx.Client) -> None:
    absent = "99999999-9999-4999-8999-999999999999"
    missing_target = client.post(NOTES, json={BIND: f"/work365_providerinvoices({absent})"})
    assert missing_target.status_code == 404
    assert (
        missing_target.json()["error"]["message"]
        == f"work365_providerinvoice With Id = {absent} Does Not Exist"
    )
    wrong_set = client.post(NOTES, json={BIND: f"/accounts({ACCOUNT})"})
    assert wrong_set.status_code == 400
    unknown = client.post(NOTES, json={"subjekt": "x"})
    assert unknown.status_code == 400
    assert unknown.json()["error"]["message"].startswith(
        "The property 'subjekt' does not exist on type 'Microsoft.Dynamics.CRM.annotation'."
    )
    assert client.post(NOTES, json={"objectid_nosuchtable@odata.bind": "/x(1)"}).status_code == 400
    assert (
        client.post(NOTES, content=b"{not json", headers={"Content-Type": "application/json"}).status_code
        == 400
    )
    assert client.post(NOTES, json={"isdocument": "yes"}).status_code == 400


def test_status_update_keeps_state_consistent_and_rejects_unknown_values(client: httpx.Client) -> None:
    url = f"{API}work365_providerinvoices({INVOICE_POPULATING})"
    assert client.patch(url, json={"statuscode": 870420003}).status_code == 204
    row = client.get(url, params={"$select": "statuscode,statecode"}).json()
    assert (row["statuscode"], row["statecode"]) == (870420003, 1)
    bad = client.patch(url, json={"statuscode": 7})
    assert bad.status_code == 400
    assert "outside the valid range" in bad.json()["error"]["message"]
    target = "/work365_providers(11111111-1111-4111-8111-111111111111)"
    # A custom lookup navigates under its schema name; its logical name is no navigation property.
    by_logical = client.patch(url, json={"work365_providerinvoice_provider@odata.bind": target})
    assert by_logical.status_code == 400
    assert "undeclared property 'work365_providerinvoice_provider'" in by_logical.json()["error"]["message"]
    provider = client.patch(url, json={"work365_Providerinvoice_Provider@odata.bind": target})
    assert provider.status_code == 204


def test_delete_a_row(sim: Simulator, client: httpx.Client) -> None:
    created = client.post(API + "accounts", json={"name": "Fabrikam"})
    url = created.headers["OData-EntityId"].removeprefix(sim.base_url)
    assert client.get(url).json()["name"] == "Fabrikam"
    assert client.delete(url).status_code == 204
    assert client.get(url).status_code == 404
    assert client.delete(url).status_code == 404
    assert sim.writes[-1]["method"] == "DELETE"
