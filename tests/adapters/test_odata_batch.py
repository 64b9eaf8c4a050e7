from __future__ import annotations

import json

import pytest

from diagnostics.adapters.odata_batch import (
    BatchFormatError,
    BatchRequest,
    ChangeSet,
    decode_batch,
    encode_batch,
)


def test_encode_batch_writes_get_parts_with_crlf_and_a_close_delimiter() -> None:
    body = encode_batch(
        "batch_x",
        [
            BatchRequest(
                "https://org/api/data/v9.2/accounts?$select=name", {"Prefer": "odata.maxpagesize=5"}
            ),
            BatchRequest("https://org/api/data/v9.2/EntityDefinitions?$select=LogicalName", {}),
        ],
    )

    assert body == (
        b"--batch_x\r\n"
        b"Content-Type: application/http\r\n"
        b"Content-Transfer-Encoding: binary\r\n"
        b"\r\n"
        b"GET https://org/api/data/v9.2/accounts?$select=name HTTP/1.1\r\n"
        b"Prefer: odata.maxpagesize=5\r\n"
        b"\r\n"
        b"--batch_x\r\n"
        b"Content-Type: application/http\r\n"
        b"Content-Transfer-Encoding: binary\r\n"
        b"\r\n"
        b"GET https://org/api/data/v9.2/EntityDefinitions?$select=LogicalName HTTP/1.1\r\n"
        b"\r\n"
        b"--batch_x--\r\n"
    )


def _answer(boundary: str, parts: list[str], newline: str = "\r\n") -> bytes:
    text = "preamble to ignore" + newline
    for part in parts:
        text += f"--{boundary}{newline}{part}{newline}"
    return (text + f"--{boundary}--{newline}epilogue").encode()


def _part(status: str, body: str, newline: str = "\r\n") -> str:
    return newline.join(
        [
            "Content-Type: application/http",
            "Content-Transfer-Encoding: binary",
            "",
            f"HTTP/1.1 {status}",
            "Content-Type: application/json; odata.metadata=minimal",
            "OData-Version: 4.0",
            "",
            body,
        ]
    )


@pytest.mark.parametrize("newline", ["\r\n", "\n"])
def test_decode_batch_reads_parts_in_order_with_crlf_or_lf(newline: str) -> None:
    ok = json.dumps({"value": [{"name": "A"}]}, indent=2).replace("\n", newline)
    failed = json.dumps({"error": {"code": "0x80060888", "message": "Resource not found"}})
    body = _answer(
        "batchresponse_1",
        [_part("200 OK", ok, newline), _part("404 Not Found", failed, newline)],
        newline,
    )

    answers = decode_batch('multipart/mixed; boundary="batchresponse_1"', body)

    assert [a.status for a in answers] == [200, 404]
    assert json.loads(answers[0].body) == {"value": [{"name": "A"}]}
    assert answers[0].headers["odata-version"] == "4.0"
    assert json.loads(answers[1].body)["error"]["code"] == "0x80060888"


def test_decode_batch_accepts_an_unquoted_boundary_and_a_part_without_headers() -> None:
    part = 'Content-Type: application/http\r\n\r\nHTTP/1.1 200 OK\r\n\r\n{"value": []}'
    no_content = "Content-Type: application/http\r\n\r\nHTTP/1.1 204 No Content\r\n"
    body = _answer("b1", [part, no_content])

    answers = decode_batch("multipart/mixed; boundary=b1", body)

    assert [(a.status, a.body) for a in answers] == [(200, '{"value": []}'), (204, "")]


def test_decode_batch_ignores_a_boundary_lookalike_inside_a_body() -> None:
    # Only `--boundary` at the start of a line is a delimiter.
    part = _part("200 OK", '{"value": [{"note": "x --b1 y"}]}')
    answers = decode_batch("multipart/mixed; boundary=b1", _answer("b1", [part]))

    assert json.loads(answers[0].body) == {"value": [{"note": "x --b1 y"}]}


def test_decode_batch_rejects_a_cut_off_answer() -> None:
    body = b"--b1\r\n" + _part("200 OK", "{}").encode()

    with pytest.raises(BatchFormatError, match="closing delimiter"):
        decode_batch("multipart/mixed; boundary=b1", body)


@pytest.mark.parametrize("content_type", ["application/json", "multipart/mixed", ""])
def test_decode_batch_rejects_an_answer_that_is_not_multipart_with_a_boundary(content_type: str) -> None:
    with pytest.raises(BatchFormatError, match="multipart/mixed"):
        decode_batch(content_type, b"{}")


def test_decode_batch_rejects_a_part_that_is_not_an_http_message() -> None:
    text = "Content-Type: text/plain\r\n\r\nhello"
    with pytest.raises(BatchFormatError, match="application/http"):
        decode_batch("multipart/mixed; boundary=b1", _answer("b1", [text]))

    garbage = "Content-Type: application/http\r\n\r\nnot a status line\r\n\r\n{}"
    with pytest.raises(BatchFormatError, match="status line"):
        decode_batch("multipart/mixed; boundary=b1", _answer("b1", [garbage]))


def _created(content_id: str, entity: str) -> str:
    return "\r\n".join(
        [
            "Content-Type: application/http",
            "Content-Transfer-Encoding: binary",
            f"Content-ID: {content_id}",
            "",
            "HTTP/1.1 204 No Content",
            "OData-Version: 4.0",
            f"OData-EntityId: https://org/api/data/v9.2/{entity}",
            "",
            "",
        ]
    )


def test_decode_batch_flattens_a_change_set_answer_nested_in_its_own_multipart() -> None:
    # The shape of Microsoft's change-set example: the change set's close delimiter is followed
    # directly by the batch's next delimiter, and the GET after it is answered at the top level.
    inner = "changesetresponse_64cc"
    change_set = (
        f"Content-Type: multipart/mixed; boundary={inner}\r\n\r\n"
        f"--{inner}\r\n{_created('1', 'tasks(e7)')}\r\n"
        f"--{inner}\r\n{_created('2', 'tasks(e8)')}\r\n"
        f"--{inner}--"
    )
    body = _answer("batchresponse_f27e", [change_set, _part("200 OK", '{"value": []}')])

    answers = decode_batch("multipart/mixed; boundary=batchresponse_f27e", body)

    assert [(a.status, a.content_id) for a in answers] == [(204, "1"), (204, "2"), (200, None)]
    assert answers[1].headers["odata-entityid"] == "https://org/api/data/v9.2/tasks(e8)"
    assert json.loads(answers[2].body) == {"value": []}


def test_decode_batch_refuses_a_change_set_nested_in_a_change_set() -> None:
    deeper = "Content-Type: multipart/mixed; boundary=c2\r\n\r\n--c2--"
    outer = f"Content-Type: multipart/mixed; boundary=c1\r\n\r\n--c1\r\n{deeper}\r\n--c1--"
    with pytest.raises(BatchFormatError, match="do not nest"):
        decode_batch("multipart/mixed; boundary=b1", _answer("b1", [outer]))


def test_encode_batch_writes_a_change_set_as_a_nested_multipart_with_content_ids() -> None:
    writes = [
        BatchRequest("https://org/api/data/v9.2/annotations", {}, "POST", {"subject": "a"}, "1"),
        BatchRequest("https://org/api/data/v9.2/annotations(x)", {}, "PATCH", {"subject": "b"}, "2"),
    ]
    body = encode_batch("batch_x", [ChangeSet("changeset_y", writes)]).decode()

    assert body.startswith('--batch_x\r\nContent-Type: multipart/mixed; boundary="changeset_y"\r\n\r\n')
    assert body.count("--changeset_y\r\n") == 2
    assert "Content-ID: 2\r\n\r\nPATCH https://org/api/data/v9.2/annotations(x) HTTP/1.1\r\n" in body
    assert '{"subject": "a"}\r\n--changeset_y' in body
    assert body.endswith("--changeset_y--\r\n--batch_x--\r\n")


@pytest.mark.parametrize(
    "requests",
    [
        [BatchRequest("https://org/x", {}, "POST", {}, None)],
        [
            BatchRequest("https://org/x", {}, "POST", {}, "1"),
            BatchRequest("https://org/y", {}, "POST", {}, "1"),
        ],
        [BatchRequest("https://org/x", {}, "GET", None, "1")],
    ],
)
def test_a_change_set_needs_distinct_content_ids_and_no_gets(requests: list[BatchRequest]) -> None:
    with pytest.raises(ValueError, match=r"Content-ID|GET"):
        encode_batch("b", [ChangeSet("c", requests)])
