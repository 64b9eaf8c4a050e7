"""The tolerant errors.csv / warnings.csv parser (diagnostics/refcsv.py).

Covers every variation of the tenant-fixture contract ("errors.csv and warnings.csv"), the
decisions the parser takes where the contract is silent, and property-style checks: reordering the
columns, switching the delimiter, the line ends or adding a byte-order mark gives the same
references; arbitrary input raises RefFileError or parses, never anything else.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import time

import pytest

from diagnostics.refcsv import (
    ParsedRefs,
    Reference,
    RefFileError,
    RefKind,
    parse_reference_file,
    references_in_message,
)

CUSTOMER_ID = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b"
SUBSCRIPTION_ID = "0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d"

DEMO = (
    "Type,Id,Name,Message\r\n"
    f"Customer,{CUSTOMER_ID},Contoso Ltd,Customer with id {CUSTOMER_ID} could not be resolved\r\n"
    f"Subscription,{SUBSCRIPTION_ID},Azure plan,Subscription {SUBSCRIPTION_ID} could not be resolved\r\n"
    "Currency,NOK,,Currency NOK could not be resolved\r\n"
)


def refs(content: bytes | str) -> list[tuple[RefKind, str]]:
    return [(r.kind, r.id) for r in parse_reference_file(content).references]


def full(parsed: ParsedRefs) -> list[tuple[object, ...]]:
    return [(r.kind, r.id, r.name, r.message, r.raw_type, r.line, r.occurrences) for r in parsed.references]


def assert_unparseable(content: bytes | str, *fragments: str) -> str:
    with pytest.raises(RefFileError) as caught:
        parse_reference_file(content)
    reason = str(caught.value)
    assert "\n" not in reason
    assert "\r" not in reason
    for fragment in fragments:
        assert fragment in reason, reason
    return reason


# --- the demo layout -----------------------------------------------------------------------------


def test_demo_layout() -> None:
    parsed = parse_reference_file(DEMO.encode())
    assert parsed.references == (
        Reference(
            kind=RefKind.CUSTOMER,
            id=CUSTOMER_ID,
            name="Contoso Ltd",
            message=f"Customer with id {CUSTOMER_ID} could not be resolved",
            raw_type="Customer",
            line=2,
        ),
        Reference(
            kind=RefKind.SUBSCRIPTION,
            id=SUBSCRIPTION_ID,
            name="Azure plan",
            message=f"Subscription {SUBSCRIPTION_ID} could not be resolved",
            raw_type="Subscription",
            line=3,
        ),
        Reference(
            kind=RefKind.CURRENCY,
            id="NOK",
            name=None,
            message="Currency NOK could not be resolved",
            raw_type="Currency",
            line=4,
        ),
    )
    assert parsed.skipped_rows == 0
    assert parsed.encoding == "utf-8"
    assert parsed.delimiter == ","
    assert parsed.warnings == ()


def test_str_input_is_accepted() -> None:
    parsed = parse_reference_file(DEMO)
    assert parsed.encoding == "str"
    assert full(parsed) == full(parse_reference_file(DEMO.encode()))


def test_kind_is_a_string_enum() -> None:
    assert RefKind("customer") is RefKind.CUSTOMER
    assert f"{RefKind.CUSTOMER}" == "customer"
    assert isinstance(RefKind.OTHER, str)
    assert issubclass(RefFileError, ValueError)


# --- header names --------------------------------------------------------------------------------


@pytest.mark.parametrize("type_header", ["Type", "Reference Type", "Entity", "Kind"])
@pytest.mark.parametrize("id_header", ["Id", "Reference Id", "Reference", "Value"])
def test_type_and_id_header_synonyms(type_header: str, id_header: str) -> None:
    content = f"{type_header},{id_header}\nCustomer,C1\nSubscription,S1\n"
    assert refs(content) == [(RefKind.CUSTOMER, "C1"), (RefKind.SUBSCRIPTION, "S1")]


@pytest.mark.parametrize("name_header", ["Name", "Description"])
@pytest.mark.parametrize("message_header", ["Message", "Error", "Details"])
def test_name_and_message_header_synonyms(name_header: str, message_header: str) -> None:
    parsed = parse_reference_file(f"{message_header},Type,{name_header},Id\nnot found,Customer,Contoso,C1\n")
    (ref,) = parsed.references
    assert (ref.name, ref.message) == ("Contoso", "not found")


@pytest.mark.parametrize(
    "header",
    [
        "TYPE,ID,NAME,MESSAGE",
        "type,id,name,message",
        "tYpE,iD,nAmE,mEsSaGe",
        " Type , Id , Name , Message ",
        '"Type","Id","Name","Message"',
        "REFERENCE TYPE,reference id,Description,details",
        "Reference_Type,ReferenceID,description,ERROR",
        "reference-type,reference-id,name,message",
    ],
)
def test_header_names_are_case_and_punctuation_insensitive(header: str) -> None:
    parsed = parse_reference_file(f"{header}\nCustomer,C1,Contoso,not found\n")
    assert full(parsed) == [(RefKind.CUSTOMER, "C1", "Contoso", "not found", "Customer", 2, 1)]


def test_unknown_extra_columns_are_ignored() -> None:
    content = "Row,Type,Invoice,Id,Comment\n1,Customer,G0001,C1,x\n"
    assert refs(content) == [(RefKind.CUSTOMER, "C1")]


def test_name_and_message_columns_are_optional() -> None:
    parsed = parse_reference_file("Id,Type\nC1,Customer\n")
    (ref,) = parsed.references
    assert (ref.name, ref.message) == (None, None)


def test_several_generic_id_columns_use_the_preferred_one() -> None:
    parsed = parse_reference_file("Value,Type,Id\nignored,Customer,C1\n")
    assert refs("Value,Type,Id\nignored,Customer,C1\n") == [(RefKind.CUSTOMER, "C1")]
    assert any("several id columns" in w and "Value" in w for w in parsed.warnings)


# --- reference types -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        ("Customer", RefKind.CUSTOMER),
        ("customer", RefKind.CUSTOMER),
        ("CUSTOMER", RefKind.CUSTOMER),
        ("Account", RefKind.CUSTOMER),
        ("account", RefKind.CUSTOMER),
        ("Tenant", RefKind.CUSTOMER),
        ("TENANT", RefKind.CUSTOMER),
        ("Customers", RefKind.CUSTOMER),
        ("Subscription", RefKind.SUBSCRIPTION),
        ("subscription", RefKind.SUBSCRIPTION),
        ("SUBSCRIPTIONS", RefKind.SUBSCRIPTION),
        ("Currency", RefKind.CURRENCY),
        ("currency", RefKind.CURRENCY),
        ("Currencies", RefKind.CURRENCY),
        ("Product", RefKind.PRODUCT),
        ("pRoDuCt", RefKind.PRODUCT),
        (" Product ", RefKind.PRODUCT),
    ],
)
def test_reference_types(raw: str, kind: RefKind) -> None:
    parsed = parse_reference_file(f'Type,Id\n"{raw}",X1\n')
    (ref,) = parsed.references
    assert ref.kind is kind
    assert ref.raw_type == raw.strip()
    assert parsed.warnings == ()


def test_unknown_type_is_kept_as_other_with_its_raw_type() -> None:
    content = "Type,Id\nCustomer,C1\nInvoice,G0001\nMeter,M1\nInvoice,G0002\n"
    parsed = parse_reference_file(content)
    assert full(parsed) == [
        (RefKind.CUSTOMER, "C1", None, None, "Customer", 2, 1),
        (RefKind.OTHER, "G0001", None, None, "Invoice", 3, 1),
        (RefKind.OTHER, "M1", None, None, "Meter", 4, 1),
        (RefKind.OTHER, "G0002", None, None, "Invoice", 5, 1),
    ]
    assert parsed.skipped_rows == 0
    assert "unknown reference type 'Invoice' on 2 row(s) (line 3, 5): kept as other" in parsed.warnings
    assert "unknown reference type 'Meter' on 1 row(s) (line 4): kept as other" in parsed.warnings


def test_empty_type_is_kept_as_other_without_raw_type() -> None:
    parsed = parse_reference_file("Type,Id\n,C1\n")
    assert full(parsed) == [(RefKind.OTHER, "C1", None, None, None, 2, 1)]
    assert any("empty type" in w for w in parsed.warnings)


def test_no_type_column_gives_other_and_says_so() -> None:
    parsed = parse_reference_file("Id,Message\nC1,Customer C1 not found\n")
    assert full(parsed) == [(RefKind.OTHER, "C1", None, "Customer C1 not found", None, 2, 1)]
    assert any("no type column" in w for w in parsed.warnings)


# --- typed id columns (Customer Id / Subscription Id) --------------------------------------------


def test_customer_id_column_without_type() -> None:
    parsed = parse_reference_file("Customer Id,Name\nC1,Contoso\nC2,Fabrikam\n")
    assert full(parsed) == [
        (RefKind.CUSTOMER, "C1", "Contoso", None, None, 2, 1),
        (RefKind.CUSTOMER, "C2", "Fabrikam", None, None, 3, 1),
    ]
    assert parsed.warnings == ()


def test_subscription_id_column_without_type() -> None:
    assert refs("Subscription Id\nS1\n") == [(RefKind.SUBSCRIPTION, "S1")]


def test_row_with_both_typed_ids_gives_two_references() -> None:
    parsed = parse_reference_file(
        "Customer Id,Subscription Id,Message\nC1,S1,both unknown\n,S2,sub only\nC3,,cust only\n"
    )
    assert full(parsed) == [
        (RefKind.CUSTOMER, "C1", None, "both unknown", None, 2, 1),
        (RefKind.SUBSCRIPTION, "S1", None, "both unknown", None, 2, 1),
        (RefKind.SUBSCRIPTION, "S2", None, "sub only", None, 3, 1),
        (RefKind.CUSTOMER, "C3", None, "cust only", None, 4, 1),
    ]


def test_row_type_picks_the_typed_id_it_names() -> None:
    content = "Type,Customer Id,Subscription Id\nSubscription,C1,S1\nCustomer,C2,S2\nCurrency,C3,S3\n"
    assert refs(content) == [
        (RefKind.SUBSCRIPTION, "S1"),
        (RefKind.CUSTOMER, "C2"),
        # a type that names neither column: every filled typed id is a reference
        (RefKind.CUSTOMER, "C3"),
        (RefKind.SUBSCRIPTION, "S3"),
    ]


def test_generic_id_wins_and_typed_ids_are_the_fallback() -> None:
    content = "Type,Id,Customer Id\nSubscription,S1,C1\nCustomer,,C2\n"
    assert refs(content) == [(RefKind.SUBSCRIPTION, "S1"), (RefKind.CUSTOMER, "C2")]


# --- delimiters, quoting, line ends, BOM, blank lines ---------------------------------------------


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_delimiter_is_sniffed_from_the_header(delimiter: str) -> None:
    content = (
        delimiter.join(["Type", "Id", "Name"]) + "\n" + delimiter.join(["Customer", "C1", "Contoso"]) + "\n"
    )
    parsed = parse_reference_file(content)
    assert parsed.delimiter == delimiter
    assert full(parsed) == [(RefKind.CUSTOMER, "C1", "Contoso", None, "Customer", 2, 1)]


def test_semicolon_file_with_commas_in_values() -> None:
    parsed = parse_reference_file("Type;Id;Name;Message\nCustomer;C1;Contoso, Ltd.;not found, map it\n")
    assert parsed.delimiter == ";"
    assert full(parsed) == [(RefKind.CUSTOMER, "C1", "Contoso, Ltd.", "not found, map it", "Customer", 2, 1)]


def test_semicolon_wins_when_the_comma_split_has_no_id_column() -> None:
    # one comma in a header name, two semicolons: only the semicolon split names an id column
    parsed = parse_reference_file("Type;Id;Name, as shown\nCustomer;C1;Contoso\n")
    assert parsed.delimiter == ";"
    assert refs("Type;Id;Name, as shown\nCustomer;C1;Contoso\n") == [(RefKind.CUSTOMER, "C1")]


def test_excel_sep_directive() -> None:
    parsed = parse_reference_file("sep=;\r\nType;Id\r\nCustomer;C1\r\n")
    assert parsed.delimiter == ";"
    assert full(parsed) == [(RefKind.CUSTOMER, "C1", None, None, "Customer", 3, 1)]


def test_quoted_fields() -> None:
    content = (
        "Type,Id,Name,Message\n"
        '"Customer","C1","Contoso, Ltd.","He said ""not found"""\n'
        'Subscription, "S1" ,"Azure, plan", "a, b"\n'
    )
    parsed = parse_reference_file(content)
    assert full(parsed) == [
        (RefKind.CUSTOMER, "C1", "Contoso, Ltd.", 'He said "not found"', "Customer", 2, 1),
        (RefKind.SUBSCRIPTION, "S1", "Azure, plan", "a, b", "Subscription", 3, 1),
    ]


def test_quoted_field_spanning_lines_keeps_line_numbers() -> None:
    content = 'Type,Id,Message\r\nCustomer,C1,"first line\r\nsecond line"\r\nSubscription,S1,x\r\n'
    parsed = parse_reference_file(content)
    assert full(parsed) == [
        (RefKind.CUSTOMER, "C1", None, "first line\r\nsecond line", "Customer", 2, 1),
        (RefKind.SUBSCRIPTION, "S1", None, "x", "Subscription", 4, 1),
    ]


@pytest.mark.parametrize("newline", ["\r\n", "\n", "\r"])
def test_line_ends(newline: str) -> None:
    content = newline.join(["Type,Id", "Customer,C1", "", "Subscription,S1", "", ""])
    parsed = parse_reference_file(content.encode())
    assert full(parsed) == [
        (RefKind.CUSTOMER, "C1", None, None, "Customer", 2, 1),
        (RefKind.SUBSCRIPTION, "S1", None, None, "Subscription", 4, 1),
    ]


def test_utf8_byte_order_mark() -> None:
    parsed = parse_reference_file(b"\xef\xbb\xbf" + DEMO.encode())
    assert parsed.encoding == "utf-8-sig"
    assert full(parsed) == full(parse_reference_file(DEMO.encode()))
    assert parsed.references[0].raw_type == "Customer"


def test_byte_order_mark_in_str_input() -> None:
    assert full(parse_reference_file("\ufeff" + DEMO)) == full(parse_reference_file(DEMO))


@pytest.mark.parametrize(
    "content",
    [
        "\n\nType,Id\nCustomer,C1\n",
        "Type,Id\n\n\nCustomer,C1\n\n\n\n",
        "Type,Id\r\n  \r\nCustomer,C1\r\n\t\r\n",
        "Type,Id\n,\n,,\nCustomer,C1\n,\n",
        "Type;Id\n;\n;;;\nCustomer;C1\n;;\n",
    ],
)
def test_blank_and_delimiter_only_lines_are_ignored(content: str) -> None:
    parsed = parse_reference_file(content)
    assert refs(content) == [(RefKind.CUSTOMER, "C1")]
    assert parsed.skipped_rows == 0
    assert parsed.warnings == ()


# --- whitespace, duplicates, missing ids, odd rows ------------------------------------------------


def test_whitespace_around_values_is_removed() -> None:
    parsed = parse_reference_file("Type , Id , Name\n  Customer  ,\tC1 ,  Contoso Ltd  \n")
    assert full(parsed) == [(RefKind.CUSTOMER, "C1", "Contoso Ltd", None, "Customer", 2, 1)]


def test_blank_name_and_message_are_none() -> None:
    parsed = parse_reference_file("Type,Id,Name,Message\nCustomer,C1,  ,\n")
    (ref,) = parsed.references
    assert (ref.name, ref.message) == (None, None)


def test_duplicates_keep_the_first_row_and_count() -> None:
    content = (
        "Type,Id,Name,Message\n"
        "Customer,C1,Contoso,first\n"
        "Subscription,S1,,x\n"
        "customer,c1,Other name,second\n"
        "Account,C1,,third\n"
        "Subscription,S1,,y\n"
    )
    parsed = parse_reference_file(content)
    assert full(parsed) == [
        (RefKind.CUSTOMER, "C1", "Contoso", "first", "Customer", 2, 3),
        (RefKind.SUBSCRIPTION, "S1", None, "x", "Subscription", 3, 2),
    ]
    assert "3 duplicate row(s) merged into their first occurrence" in parsed.warnings


def test_same_id_with_different_kinds_is_not_a_duplicate() -> None:
    content = "Type,Id\nCustomer,X\nSubscription,X\nFoo,X\nBar,X\nfoo,X\n"
    parsed = parse_reference_file(content)
    assert [(r.kind, r.raw_type, r.occurrences) for r in parsed.references] == [
        (RefKind.CUSTOMER, "Customer", 1),
        (RefKind.SUBSCRIPTION, "Subscription", 1),
        (RefKind.OTHER, "Foo", 2),
        (RefKind.OTHER, "Bar", 1),
    ]


def test_rows_without_id_are_skipped_and_counted() -> None:
    content = "Type,Id,Message\nCustomer,,no id here\nCustomer,C1,ok\nSubscription,   ,blank id\nCurrency\n"
    parsed = parse_reference_file(content)
    assert refs(content) == [(RefKind.CUSTOMER, "C1")]
    assert parsed.skipped_rows == 3
    assert "3 row(s) without an id skipped (line 2, 4, 5)" in parsed.warnings


def test_typed_columns_all_empty_is_a_skipped_row() -> None:
    parsed = parse_reference_file("Customer Id,Subscription Id,Message\n,,nothing\n")
    assert parsed.references == ()
    assert parsed.skipped_rows == 1


def test_many_skipped_lines_are_listed_briefly() -> None:
    content = "Type,Id,Message\n" + "Customer,,x\n" * 25
    parsed = parse_reference_file(content)
    assert parsed.skipped_rows == 25
    (warning,) = parsed.warnings
    assert warning.startswith("25 row(s) without an id skipped (line 2, 3,")
    assert warning.endswith(", …)")


def test_extra_cells_are_joined_into_a_trailing_message() -> None:
    parsed = parse_reference_file("Type,Id,Message\nCustomer,C1,Customer C1 not found,please map it\n")
    (ref,) = parsed.references
    assert ref.message == "Customer C1 not found,please map it"
    assert parsed.warnings == ()


def test_extra_cells_are_ignored_otherwise() -> None:
    parsed = parse_reference_file("Type,Id\nCustomer,C1,surplus\n")
    assert refs("Type,Id\nCustomer,C1,surplus\n") == [(RefKind.CUSTOMER, "C1")]
    assert any("more cells than the header" in w for w in parsed.warnings)


def test_short_rows_have_missing_values() -> None:
    parsed = parse_reference_file("Id,Type,Name,Message\nC1,Customer\n")
    assert full(parsed) == [(RefKind.CUSTOMER, "C1", None, None, "Customer", 2, 1)]


def test_repeated_header_row_is_ignored() -> None:
    content = "Type,Id\nCustomer,C1\nType,Id\nSubscription,S1\n"
    parsed = parse_reference_file(content)
    assert refs(content) == [(RefKind.CUSTOMER, "C1"), (RefKind.SUBSCRIPTION, "S1")]
    assert parsed.skipped_rows == 0
    assert "repeated header row ignored (line 3)" in parsed.warnings


# --- encodings -------------------------------------------------------------------------------------


def test_utf8_non_ascii() -> None:
    parsed = parse_reference_file("Type,Id,Name\nCustomer,C1,Müller Øst AB\n".encode())
    assert parsed.encoding == "utf-8"
    assert parsed.references[0].name == "Müller Øst AB"


def test_cp1252_fallback_says_so() -> None:
    parsed = parse_reference_file("Type;Id;Name;Message\nCustomer;C1;Café Müller;5 € due\n".encode("cp1252"))
    assert parsed.encoding == "cp1252"
    assert parsed.references[0].name == "Café Müller"
    assert parsed.references[0].message == "5 € due"
    assert "not UTF-8: decoded as Windows-1252 (cp1252)" in parsed.warnings


def test_bom_followed_by_cp1252_text() -> None:
    parsed = parse_reference_file(b"\xef\xbb\xbfType,Id,Name\nCustomer,C1,Caf\xe9\n")
    assert parsed.encoding == "cp1252"
    assert full(parsed) == [(RefKind.CUSTOMER, "C1", "Café", None, "Customer", 2, 1)]


def test_utf16_with_byte_order_mark() -> None:
    parsed = parse_reference_file("Type\tId\tName\r\nCustomer\tC1\tMüller\r\n".encode("utf-16"))
    assert parsed.encoding == "utf-16"
    assert parsed.delimiter == "\t"
    assert full(parsed) == [(RefKind.CUSTOMER, "C1", "Müller", None, "Customer", 2, 1)]


def test_neither_utf8_nor_cp1252_is_unparseable() -> None:
    # 0x81 is undefined in Windows-1252 and invalid as a UTF-8 start byte
    assert_unparseable(b"Type,Id\nCustomer,C\x81\x8d1\n", "neither UTF-8 nor Windows-1252", "0x81")


# --- empty, header only --------------------------------------------------------------------------


@pytest.mark.parametrize("content", [b"", b"\xef\xbb\xbf", b"\r\n\r\n", b"   \n\t\n", "", "\ufeff"])
def test_empty_file_is_zero_references(content: bytes | str) -> None:
    parsed = parse_reference_file(content)
    assert parsed.references == ()
    assert parsed.skipped_rows == 0
    assert "empty file: no header and no rows" in parsed.warnings


@pytest.mark.parametrize(
    "content", ["Type,Id,Name,Message", "Type,Id,Name,Message\r\n", "Type;Id\n\n\n", "Customer Id\n"]
)
def test_header_only_is_zero_references(content: str) -> None:
    parsed = parse_reference_file(content.encode())
    assert parsed.references == ()
    assert parsed.skipped_rows == 0
    assert "header only: no reference rows" in parsed.warnings


# --- unparseable ---------------------------------------------------------------------------------


def test_no_id_column_reason_names_the_header_and_the_synonyms() -> None:
    reason = assert_unparseable(b"foo,bar\n1,2\n")
    assert reason == (
        "no id column: the header 'foo,bar' has none of "
        "Id, Reference Id, Reference, Value, Customer Id, Subscription Id"
    )


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        (b"Type,Name,Message\nCustomer,Contoso,x\n", ("no id column", "Type,Name,Message")),
        (b"Type,Name\n", ("no id column",)),
        (b"Customer,C1,Contoso\nSubscription,S1,x\n", ("no header row", "looks like data")),
        (b"Unresolved references found in provider invoice\n", ("no id column",)),
        (b"<!DOCTYPE html>\n<html><body><h1>404</h1></body></html>\n", ("HTML",)),
        (b"<html><head><title>Error</title></head></html>", ("HTML",)),
        (b'<?xml version="1.0"?>\n<errors/>\n', ("XML",)),
        (b'{"errors": [{"type": "Customer", "id": "C1"}]}', ("JSON",)),
        (b"[1, 2, 3]", ("JSON",)),
        (b"PK\x03\x04\x14\x00\x06\x00", ("ZIP", "xlsx")),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", ("Office", "xls")),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", ("PDF",)),
        (b"\x1f\x8b\x08\x00", ("gzip",)),
        (b"Type,Id\x00\nCustomer,C1\n", ("binary",)),
        ("Type,Id\x00\nCustomer,C1\n", ("binary",)),
        (b"\x01\x02\x03\x04\x05\x06Type,Id\n", ("binary",)),
        (b'Type,Id,Message\nCustomer,C1,"never closed\nSubscription,S1,x\n', ("unclosed quote", "line 2")),
    ],
)
def test_unparseable_files(content: bytes | str, fragments: tuple[str, ...]) -> None:
    assert_unparseable(content, *fragments)


def test_long_header_is_shortened_in_the_reason() -> None:
    reason = assert_unparseable(("x" * 300 + ",y\n").encode(), "no id column")
    assert len(reason) < 250


def test_quote_inside_an_unquoted_field_is_not_an_unclosed_quote() -> None:
    parsed = parse_reference_file('Type,Id,Name\nProduct,P1,Monitor 27" wide\n')
    assert parsed.references[0].name == 'Monitor 27" wide'


# --- properties: layout does not change the references ---------------------------------------------

ROWS: list[dict[str, str]] = [
    {
        "Type": "Customer",
        "Id": CUSTOMER_ID,
        "Name": "Contoso, Ltd.",
        "Message": 'Customer "Contoso" not found',
    },
    {
        "Type": "Subscription",
        "Id": SUBSCRIPTION_ID,
        "Name": "Azure plan",
        "Message": "Subscription not found",
    },
    {"Type": "Currency", "Id": "NOK", "Name": "", "Message": "Currency; not set up"},
    {"Type": "Product", "Id": "DZH318Z0BPS6:0001", "Name": "Müller Ø", "Message": ""},
    {"Type": "Customer", "Id": CUSTOMER_ID.upper(), "Name": "dup", "Message": "dup"},
    {"Type": "Widget", "Id": "W1", "Name": "", "Message": "unknown type"},
    {"Type": "Customer", "Id": "", "Name": "no id", "Message": "skipped"},
]


def render(columns: tuple[str, ...], delimiter: str, newline: str) -> str:
    def quote(value: str) -> str:
        if any(ch in value for ch in (delimiter, '"', "\r", "\n", ",", ";")):
            return '"' + value.replace('"', '""') + '"'
        return value

    lines = [delimiter.join(columns)]
    lines += [delimiter.join(quote(row[column]) for column in columns) for row in ROWS]
    return newline.join(lines) + newline


BASELINE = parse_reference_file(render(("Type", "Id", "Name", "Message"), ",", "\n"))


def test_baseline_is_what_the_rows_say() -> None:
    assert full(BASELINE) == [
        (RefKind.CUSTOMER, CUSTOMER_ID, "Contoso, Ltd.", 'Customer "Contoso" not found', "Customer", 2, 2),
        (RefKind.SUBSCRIPTION, SUBSCRIPTION_ID, "Azure plan", "Subscription not found", "Subscription", 3, 1),
        (RefKind.CURRENCY, "NOK", None, "Currency; not set up", "Currency", 4, 1),
        (RefKind.PRODUCT, "DZH318Z0BPS6:0001", "Müller Ø", None, "Product", 5, 1),
        (RefKind.OTHER, "W1", None, "unknown type", "Widget", 7, 1),
    ]
    assert BASELINE.skipped_rows == 1


@pytest.mark.parametrize("columns", list(itertools.permutations(("Type", "Id", "Name", "Message"))))
def test_reordering_columns_delimiter_line_ends_and_bom_give_the_same_references(
    columns: tuple[str, ...],
) -> None:
    for delimiter, newline, bom, encoding in itertools.product(
        (",", ";", "\t"), ("\n", "\r\n", "\r"), (False, True), ("utf-8", "cp1252")
    ):
        data = render(columns, delimiter, newline).encode(encoding)
        if bom:
            data = b"\xef\xbb\xbf" + data
        parsed = parse_reference_file(data)
        assert full(parsed) == full(BASELINE), (columns, delimiter, newline, bom, encoding)
        assert parsed.skipped_rows == BASELINE.skipped_rows
        assert parsed.delimiter == delimiter


@pytest.mark.parametrize(
    ("header", "synonyms"),
    [
        ("Type,Id,Name,Message", ("Reference Type", "Reference Id", "Description", "Details")),
        ("Type,Id,Name,Message", ("Entity", "Value", "Name", "Error")),
        ("Type,Id,Name,Message", ("KIND", "reference", "description", "message")),
    ],
)
def test_synonym_headers_give_the_same_references(header: str, synonyms: tuple[str, ...]) -> None:
    text = render(("Type", "Id", "Name", "Message"), ",", "\n")
    renamed = ",".join(synonyms) + text[len(header) :]
    assert full(parse_reference_file(renamed)) == full(BASELINE)


@pytest.mark.parametrize("seed", range(20))
def test_arbitrary_input_parses_or_raises_ref_file_error(seed: int) -> None:
    rng = random.Random(seed)
    base = render(("Type", "Id", "Name", "Message"), rng.choice(",;"), rng.choice(("\n", "\r\n")))
    for _ in range(50):
        if rng.random() < 0.3:
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
        else:
            chars = list(base)
            for _ in range(rng.randrange(1, 8)):
                position = rng.randrange(len(chars) + 1)
                chars.insert(position, rng.choice(['"', ",", ";", "\n", "\r", " ", "\x00", "é", "x"]))
            data = "".join(chars).encode(rng.choice(("utf-8", "cp1252", "utf-8-sig")), errors="replace")
        reason: str | None = None
        try:
            parsed = parse_reference_file(data)
        except RefFileError as exc:
            reason = str(exc)
        if reason is not None:
            assert reason
            assert "\n" not in reason
        else:
            assert all(r.id and r.id == r.id.strip() for r in parsed.references)
            assert all(r.occurrences >= 1 and r.line >= 1 for r in parsed.references)


# --- size: linear with a small constant --------------------------------------------------------------


def _cpu_seconds(content: bytes) -> float:
    started = time.process_time()
    with contextlib.suppress(RefFileError):
        parse_reference_file(content)
    return time.process_time() - started


def test_a_10_mb_note_parses_in_well_under_a_second() -> None:
    row = f"Customer,{CUSTOMER_ID},Contoso Ltd,Customer with id {CUSTOMER_ID} could not be resolved\r\n"
    content = ("Type,Id,Name,Message\r\n" + row * (10_000_000 // len(row))).encode()
    assert len(content) > 9_900_000
    # about 0.4 s of CPU time here; the bound leaves room for a slow machine
    assert _cpu_seconds(content) < 1.5


MEGABYTE = 1_000_000


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"Id," + b"x," * (MEGABYTE // 2), id="a header of half a million columns"),
        pytest.param(b"\n" * MEGABYTE + b"Type,Id\nCustomer,C1\n", id="a million blank lines first"),
        pytest.param(b"Type,Id\n" + b"\r\n" * MEGABYTE, id="a million blank lines after the header"),
        pytest.param(b"Type,Id\n" + b'"a""b",' * (MEGABYTE // 8), id="quotes everywhere"),
        pytest.param(b"Type,Id,Message\n" + b"a," * (MEGABYTE // 2), id="one very long row"),
        pytest.param(
            b"Type,Id\n" + b"Customer,\n" * (MEGABYTE // 10), id="a hundred thousand rows without id"
        ),
        pytest.param(
            b"Type,Id\n" + b"".join(b"T%d,%d\n" % (i, i) for i in range(MEGABYTE // 14)),
            id="seventy thousand unknown types",
        ),
        pytest.param(b'Type,Id,Message\nCustomer,C1,"' + b"x" * MEGABYTE, id="an unclosed quote"),
    ],
)
def test_pathological_files_parse_in_linear_time_with_bounded_warnings(content: bytes) -> None:
    # each took seconds to minutes with the character-by-character scans this parser used to make
    assert _cpu_seconds(content) < 1.5
    try:
        parsed = parse_reference_file(content)
    except RefFileError as exc:
        reason = str(exc)
    else:
        assert len(parsed.warnings) <= 20
        reason = max(parsed.warnings, key=len, default="")
    assert len(reason) < 300


def test_a_header_of_thousands_of_columns_is_not_a_references_file() -> None:
    assert_unparseable(b"Id" + b",x" * 1500 + b"\n", "1501 columns", "not a references file")


def test_unknown_types_beyond_ten_are_summed_up() -> None:
    content = "Type,Id\n" + "".join(f"T{i},{i}\n" for i in range(25))
    parsed = parse_reference_file(content)
    listed = [w for w in parsed.warnings if w.startswith("unknown reference type")]
    assert len(listed) == 10
    assert "15 more unknown reference type(s) on 15 row(s) (line 12, 13," in " ".join(parsed.warnings)
    assert len(parsed.references) == 25


def test_rows_counts_data_rows_only() -> None:
    parsed = parse_reference_file("Type,Id\n\nCustomer,C1\nType,Id\nCustomer,\n,,\n")
    assert parsed.rows == 2
    assert parsed.skipped_rows == 1


# --- references named in a provider invoice's message ----------------------------------------------


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            "Provider invoice could not be imported: unresolved currency GBP. See errors.csv.",
            [(RefKind.CURRENCY, "GBP")],
        ),
        (
            f"Unresolved references: customer {CUSTOMER_ID}; subscription id: {SUBSCRIPTION_ID}.",
            [(RefKind.CUSTOMER, CUSTOMER_ID), (RefKind.SUBSCRIPTION, SUBSCRIPTION_ID)],
        ),
        (
            f"Customer with id {CUSTOMER_ID} could not be resolved",
            [(RefKind.CUSTOMER, CUSTOMER_ID)],
        ),
        (
            f"Unresolved subscriptions {SUBSCRIPTION_ID}, {CUSTOMER_ID} and {{{SUBSCRIPTION_ID.upper()}}}",
            [(RefKind.SUBSCRIPTION, SUBSCRIPTION_ID), (RefKind.SUBSCRIPTION, CUSTOMER_ID)],
        ),
        ("Provider invoice could not be imported: 1 unresolved reference (1 customer). See errors.csv.", []),
        ("3 unresolved references (2 customer, 1 subscription). See errors.csv in Notes.", []),
        ("unresolved currency and customer", []),
        (f"Correlation id {CUSTOMER_ID}", []),
        ("", []),
        (None, []),
    ],
)
def test_references_in_message(message: str | None, expected: list[tuple[RefKind, str]]) -> None:
    found = references_in_message(message)
    assert [(r.kind, r.id) for r in found] == expected
    assert all(r.line == 0 and r.message == message for r in found)
