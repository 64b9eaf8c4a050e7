"""$batch: GET parts, atomic change sets with Content-ID references, limits, continue-on-error."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
from sim_support import API, INVOICE_ACTIVE, INVOICE_ERROR

from simulator import Simulator

BATCH = API + "$batch"


def _get(url: str) -> str:
    return f"Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\nGET {url} HTTP/1.1\r\nAccept: application/json\r\n\r\n"


def _write(method: str, url: str, body: dict[str, Any], content_id: int) -> str:
    return (
        "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
        f"Content-ID: {content_id}\r\n\r\n"
        f"{method} {url} HTTP/1.1\r\nContent-Type: application/json; type=entry\r\n\r\n{json.dumps(body)}\r\n"
    )


def _change_set(parts: list[str], name: str = "changeset_1") -> str:
    inner = "".join(f"--{name}\r\n{p}" for p in parts) + f"--{name}--\r\n"
    return f"Content-Type: multipart/mixed; boundary={name}\r\n\r\n{inner}"


def _send(client: httpx.Client, parts: list[str], prefer: str | None = None) -> httpx.Response:
    body = "".join(f"--batch_x\r\n{p}" for p in parts) + "--batch_x--\r\n"
    headers = {"Content-Type": "multipart/mixed; boundary=batch_x"}
    if prefer:
        headers["Prefer"] = prefer
    return client.post(BATCH, content=body.encode(), headers=headers)


def _answers(response: httpx.Response, status: int = 200) -> list[tuple[int, Any]]:
    """(status, JSON body or None) of every answer, change set answers flattened, in order."""
    assert response.status_code == status, response.text
    text = response.text
    assert re.search(r"boundary=batchresponse_[0-9a-f-]+", response.headers["Content-Type"])
    found = []
    for match in re.finditer(r"HTTP/1\.1 (\d{3}) [^\r\n]*\r\n(.*?)\r\n\r\n(.*?)\r\n--", text, re.S):
        status, body = int(match[1]), match[3].strip()
        found.append((status, json.loads(body) if body.startswith("{") else None))
    return found


def test_get_parts_are_answered_and_counted(sim: Simulator, client: httpx.Client) -> None:
    sim.reset_counts()
    response = _send(
        client,
        [
            _get(f"{API}work365_providerinvoices?$select=work365_name&$filter=statecode%20eq%201"),
            _get("accounts?$select=name"),  # relative to the service root, as Dataverse allows
            _get(
                f"{sim.base_url}{API}work365_providers({'11111111-1111-4111-8111-111111111111'})?$select=work365_name"
            ),
        ],
    )
    answers = _answers(response)
    assert [s for s, _ in answers] == [200, 200, 200]
    assert [r["work365_name"] for r in answers[0][1]["value"]] == ["Microsoft G012345678 2026-10"]
    assert answers[1][1]["value"][0]["name"] == "Contoso"
    assert answers[2][1]["work365_name"] == "Microsoft"
    assert sim.request_count() == 1
    assert sim.requests[("POST", BATCH)] == 1
    assert sim.requests[("GET", API + "work365_providerinvoices")] == 1
    assert sim.requests[("GET", API + "accounts")] == 1


def test_change_set_creates_and_references_content_ids(sim: Simulator, client: httpx.Client) -> None:
    before = len(sim.notes)
    create = {
        "subject": "Diagnosis",
        "notetext": "first",
        "objectid_work365_providerinvoice@odata.bind": f"/work365_providerinvoices({INVOICE_ACTIVE})",
    }
    parts = [_write("POST", API + "annotations", create, 1), _write("PATCH", "$1", {"notetext": "second"}, 2)]
    response = _send(client, [_change_set(parts)])
    answers = _answers(response)
    assert re.search(r"Content-Type: multipart/mixed; boundary=changesetresponse_[0-9a-f-]+", response.text)
    assert "Content-ID: 1\r\n" in response.text
    assert "Content-ID: 2\r\n" in response.text
    assert [s for s, _ in answers] == [204, 204]
    assert [n["notetext"] for n in sim.notes[before:]] == ["first", "second"]
    created = client.get(API + "annotations", params={"$filter": "subject eq 'Diagnosis'"}).json()["value"]
    assert [(n["notetext"], n["_objectid_value"]) for n in created] == [("second", INVOICE_ACTIVE)]


def test_a_failing_change_set_is_undone_and_answers_with_its_failure(
    sim: Simulator, client: httpx.Client
) -> None:
    notes = len(sim.notes)
    good = {
        "subject": "Rolled back",
        "objectid_work365_providerinvoice@odata.bind": f"/work365_providerinvoices({INVOICE_ERROR})",
    }
    bad = {"subject": "x", "not_a_column": 1}
    answers = _answers(
        _send(
            client,
            [
                _change_set(
                    [
                        _write("POST", API + "annotations", good, 1),
                        _write("POST", API + "annotations", bad, 2),
                    ]
                )
            ],
        ),
        status=400,  # a rolled-back change set fails the batch, as any failed part does
    )
    assert len(answers) == 1
    status, body = answers[0]
    assert status == 400
    assert (
        "The property 'not_a_column' does not exist on type 'Microsoft.Dynamics.CRM.annotation'"
        in body["error"]["message"]
    )
    assert len(sim.notes) == notes
    assert (
        client.get(API + "annotations", params={"$filter": "subject eq 'Rolled back'"}).json()["value"] == []
    )


def test_without_continue_on_error_the_batch_stops_at_the_first_failure(client: httpx.Client) -> None:
    parts = [
        _get(API + "accounts?$select=name"),
        _get(API + "nosuchset"),
        _get(API + "accounts?$select=name"),
    ]
    # As Dataverse: the whole batch answers 400, its body the failed request's answer alone.
    stopped = _answers(_send(client, parts), status=400)
    assert [s for s, _ in stopped] == [404]
    assert "nosuchset" in stopped[0][1]["error"]["message"]
    continued = _send(client, parts, prefer="odata.continue-on-error")
    assert [s for s, _ in _answers(continued)] == [200, 404, 200]
    assert continued.headers["Preference-Applied"] == "odata.continue-on-error"


def test_more_than_1000_requests_is_a_400(client: httpx.Client) -> None:
    assert _send(client, [_get("accounts?$select=name")] * 1000).status_code == 200
    response = _send(client, [_get("accounts?$select=name")] * 1001)
    assert response.status_code == 400
    assert "exceeds the limit of 1000" in response.json()["error"]["message"]


def test_malformed_batches_are_400(client: httpx.Client) -> None:
    assert client.post(BATCH, content=b"{}", headers={"Content-Type": "application/json"}).status_code == 400
    not_http = _send(client, ["Content-Type: application/http\r\n\r\nhello\r\n"])
    assert "HTTP request line" in not_http.json()["error"]["message"]
    get_in_change_set = _send(client, [_change_set([_get("accounts")])])
    assert "cannot contain GET" in get_in_change_set.json()["error"]["message"]
