"""Fuzzing the errors.csv / warnings.csv parser and the message reader (diagnostics/refcsv.py).

Properties: any input parses or raises RefFileError with a one-line reason (nothing else escapes);
what parses is well formed and bounded; a file generated from known references, in any layout the
contract allows, parses back to exactly those references.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import example, given
from hypothesis import strategies as st

from diagnostics.refcsv import ParsedRefs, RefFileError, RefKind, parse_reference_file, references_in_message

_PIECES = st.sampled_from(
    [
        "Type",
        "Id",
        "Name",
        "Message",
        "Customer",
        "Subscription",
        "Currency",
        "Widget",
        "sep=;",
        ",",
        ";",
        "\t",
        '"',
        '""',
        "\r\n",
        "\n",
        "\r",
        " ",
        "",
        "\ufeff",
        "é",
        "€",
        "\x01",
        "<",
        "{",
        "x",
    ]
)


def _check_outcome(content: bytes | str) -> ParsedRefs | None:
    try:
        parsed = parse_reference_file(content)
    except RefFileError as exc:
        reason = str(exc)
        assert reason
        assert "\n" not in reason
        assert "\r" not in reason
        assert len(reason) < 400
        return None
    for ref in parsed.references:
        assert ref.id
        assert ref.id == ref.id.strip()
        assert ref.occurrences >= 1
        assert ref.line >= 1
        assert ref.kind in RefKind
    assert parsed.skipped_rows <= parsed.rows
    assert len(parsed.references) <= 2 * parsed.rows
    assert parsed.delimiter in (",", ";", "\t")
    assert all("\n" not in w and "\r" not in w and len(w) < 400 for w in parsed.warnings)
    assert len(parsed.warnings) <= 30
    return parsed


@given(st.binary(max_size=400))
@example(b'Type,Id\nCustomer,"C1')
@example(b"\xff\xfe" + "Type\tId\n\x00".encode("utf-16-le"))
def test_any_bytes_parse_or_fail_with_one_line(content: bytes) -> None:
    _check_outcome(content)


@given(st.lists(_PIECES, max_size=60).map("".join))
def test_csv_like_text_parses_or_fails_with_one_line(text: str) -> None:
    _check_outcome(text)
    _check_outcome(text.encode("utf-8"))


@given(st.text(max_size=300))
def test_any_text_parses_or_fails_with_one_line(text: str) -> None:
    _check_outcome(text)


@dataclass(frozen=True)
class _Row:
    type: str
    id: str
    name: str
    message: str


_KIND_WORDS = {
    "Customer": RefKind.CUSTOMER,
    "tenant": RefKind.CUSTOMER,
    "Subscription": RefKind.SUBSCRIPTION,
    "CURRENCY": RefKind.CURRENCY,
    "Product": RefKind.PRODUCT,
}
_VALUE = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\x00\ufeff"),
    max_size=12,
)
_ROWS = st.lists(
    st.builds(
        _Row,
        type=st.sampled_from(sorted(_KIND_WORDS)),
        id=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9:\-]{0,20}", fullmatch=True),
        name=_VALUE,
        message=_VALUE | st.sampled_from(["spans\nlines", "two\r\nlines", 'a "quoted" word']),
    ),
    min_size=1,
    max_size=12,
)


def _quote(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


@given(
    rows=_ROWS,
    order=st.permutations(["Type", "Id", "Name", "Message"]),
    delimiter=st.sampled_from([",", ";", "\t"]),
    newline=st.sampled_from(["\n", "\r\n", "\r"]),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16"]),
    blank_lines=st.booleans(),
)
def test_generated_files_parse_back_to_their_references(
    rows: list[_Row], order: list[str], delimiter: str, newline: str, encoding: str, blank_lines: bool
) -> None:
    lines = [delimiter.join(order)]
    for row in rows:
        values = {"Type": row.type, "Id": row.id, "Name": row.name, "Message": row.message}
        lines.append(delimiter.join(_quote(values[column]) for column in order))
        if blank_lines:
            lines.append(delimiter * 2)
    content = (newline.join(lines) + newline).encode(encoding)

    parsed = parse_reference_file(content)

    expected: dict[tuple[RefKind, str], tuple[str | None, str | None, int]] = {}
    for row in rows:
        key = (_KIND_WORDS[row.type], row.id.casefold())
        if key in expected:
            name, message, count = expected[key]
            expected[key] = (name, message, count + 1)
        else:
            expected[key] = (row.name.strip() or None, row.message.strip() or None, 1)
    got = {(r.kind, r.id.casefold()): (r.name, r.message, r.occurrences) for r in parsed.references}
    assert got == expected
    assert parsed.delimiter == delimiter
    assert parsed.skipped_rows == 0
    lines_seen = [r.line for r in parsed.references]
    assert lines_seen == sorted(lines_seen)


_GUID = st.uuids().map(str)


@given(st.text(max_size=300))
def test_any_message_gives_well_formed_references(message: str) -> None:
    for ref in references_in_message(message):
        assert ref.kind in (RefKind.CUSTOMER, RefKind.SUBSCRIPTION, RefKind.CURRENCY)
        assert ref.id
        assert ref.id in message
        assert ref.line == 0


@given(
    kind=st.sampled_from(
        [
            ("customer", RefKind.CUSTOMER),
            ("Tenant ID", RefKind.CUSTOMER),
            ("subscription", RefKind.SUBSCRIPTION),
        ]
    ),
    ids=st.lists(_GUID, min_size=1, max_size=4, unique=True),
    before=st.sampled_from(["", "Import failed: unresolved ", "Could not resolve "]),
    after=st.sampled_from(["", ".", ". See errors.csv in Notes."]),
)
def test_ids_named_after_their_kind_are_found(
    kind: tuple[str, RefKind], ids: list[str], before: str, after: str
) -> None:
    message = f"{before}{kind[0]} {', '.join(ids)}{after}"
    found = references_in_message(message)
    assert [(r.kind, r.id) for r in found] == [(kind[1], i) for i in ids]
