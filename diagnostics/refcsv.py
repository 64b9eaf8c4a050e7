"""The tolerant parser of the errors.csv / warnings.csv notes on a Work 365 provider invoice.

Work 365 attaches `errors.csv` (references that block the import: customers, subscriptions,
currencies) and `warnings.csv` (non-blocking, typically subscriptions without a product) to a
provider invoice. Their layout is not published, so this parser accepts every variation that the
tenant-fixture contract lists, and decides the cases the contract leaves open as follows.

What the contract requires
--------------------------
* A header row; any column order; header names case-insensitive, from these synonyms:
  type — Type, Reference Type, Entity, Kind; id — Id, Reference Id, Reference, Value, Customer Id,
  Subscription Id; name — Name, Description; message — Message, Error, Details.
* Reference types Customer (also Account, Tenant), Subscription, Currency, Product, any case.
* Comma or semicolon delimiter, sniffed from the header line; quoted fields; a UTF-8 byte-order
  mark; CRLF, LF (or CR) line ends; blank lines anywhere.

Decisions where the contract is silent
--------------------------------------
* The header is the first non-blank line. The delimiter is the one of `,` `;` tab that splits it
  into a header naming an id column, the most frequent first (ties: comma, then semicolon).
* Header names are compared on their letters and digits only, so `Reference_Id`, `ReferenceID`
  and `reference-id` all mean "Reference Id".
* Typed id columns: a `Customer Id` or `Subscription Id` column gives the kind of its values, so a
  file needs no type column. A row may carry both: it then yields one customer and one subscription
  reference — unless the row also has a type that names one of them (`Subscription` with both ids
  filled), in which case only the id of that kind is the reference and the other is context.
  When a generic id column (Id, Reference Id, Reference, Value) exists it is the reference and the
  typed columns are context; a row whose generic id is empty falls back to its typed ids.
  Several generic id columns: the first in the order Id, Reference Id, Reference, Value is used
  (a warning names the others).
* Whitespace around headers and values is removed (`skipinitialspace` also lets a quoted field
  follow `, `). An empty cell is a missing value.
* Rows whose cells are all empty (`;;;` lines that spreadsheets export) count as blank lines.
* Plural type names (Customers, Subscriptions, Currencies, Products …) are accepted.
* A type the parser does not know, or an empty type, gives kind OTHER with the raw type kept
  (None when empty or there is no type column); the file is not failed, a warning names it. The
  parser never guesses a kind from the message or from the shape of the id.
* A row without an id is skipped and counted in `skipped_rows` (a warning names its lines).
* Duplicates — the same kind and id, ids compared case-insensitively (GUIDs and ISO codes are
  case-insensitive), OTHER references also by raw type — are merged: the first row is kept as it is
  and `occurrences` counts the rows.
* Extra cells beyond the header: when the last header column is the message or the name (an
  unquoted message that contains the delimiter), they are joined back into it; otherwise they are
  ignored with a warning. Missing trailing cells are missing values.
* A row that repeats the header (two files pasted together) is ignored with a warning.
* An Excel `sep=;` first line sets the delimiter and is skipped. A tab delimiter is accepted too.
* `line` is the 1-based physical line on which the row starts, counting the header and blank lines.
* Bytes are decoded as UTF-8 (`encoding` "utf-8", or "utf-8-sig" with a byte-order mark), else as
  Windows-1252 ("cp1252", with a warning); a UTF-16 byte-order mark gives "utf-16". Text passed as
  `str` is used as it is ("str"), a leading byte-order mark dropped.
* An empty file, or a header with no rows, parses to zero references: a valid result (with a
  warning saying so), distinct from a file that cannot be parsed.
* Unparseable (`RefFileError`, one-line reason): no recognisable id column in the header; binary
  data (NUL bytes, control characters, a ZIP/Excel/PDF signature); HTML, XML or JSON instead of
  CSV; bytes that are neither UTF-8 nor Windows-1252; a quoted field that is never closed.

The module is pure: no I/O, no clock, no logging.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

__all__ = ["ParsedRefs", "RefFileError", "RefKind", "Reference", "parse_reference_file"]


class RefKind(StrEnum):
    CUSTOMER = "customer"
    SUBSCRIPTION = "subscription"
    CURRENCY = "currency"
    PRODUCT = "product"
    OTHER = "other"


@dataclass(frozen=True)
class Reference:
    """One unresolved (errors.csv) or incomplete (warnings.csv) reference."""

    kind: RefKind
    id: str
    name: str | None
    message: str | None
    raw_type: str | None  # the type cell as written; None when empty or the file has no type column
    line: int  # 1-based physical line where the (first) row starts
    occurrences: int = 1  # rows that named this reference


@dataclass(frozen=True)
class ParsedRefs:
    references: tuple[Reference, ...]  # in the order of their first row
    skipped_rows: int  # rows that could not give a reference (no id)
    encoding: str  # "utf-8", "utf-8-sig", "cp1252", "utf-16" or "str"
    delimiter: str  # ",", ";" or "\t"
    warnings: tuple[str, ...]  # one line each; what was tolerated


class RefFileError(ValueError):
    """The file cannot be parsed at all; the message is a one-line reason."""


# --- header vocabulary -------------------------------------------------------------------------

_TYPE_HEADERS = ("Type", "Reference Type", "Entity", "Kind")
_ID_HEADERS = ("Id", "Reference Id", "Reference", "Value")  # generic, in order of preference
_TYPED_ID_HEADERS: dict[str, RefKind] = {
    "Customer Id": RefKind.CUSTOMER,
    "Subscription Id": RefKind.SUBSCRIPTION,
}
_NAME_HEADERS = ("Name", "Description")
_MESSAGE_HEADERS = ("Message", "Error", "Details")
_ALL_ID_HEADERS = ", ".join((*_ID_HEADERS, *_TYPED_ID_HEADERS))

_KINDS: dict[str, RefKind] = {
    "customer": RefKind.CUSTOMER,
    "customers": RefKind.CUSTOMER,
    "account": RefKind.CUSTOMER,
    "accounts": RefKind.CUSTOMER,
    "tenant": RefKind.CUSTOMER,
    "tenants": RefKind.CUSTOMER,
    "subscription": RefKind.SUBSCRIPTION,
    "subscriptions": RefKind.SUBSCRIPTION,
    "currency": RefKind.CURRENCY,
    "currencies": RefKind.CURRENCY,
    "product": RefKind.PRODUCT,
    "products": RefKind.PRODUCT,
}

_DELIMITERS = (",", ";", "\t")  # order breaks ties
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_SEP_DIRECTIVE = re.compile(r"^\s*sep=(.)\s*$", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_MAX_LINES_LISTED = 10

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "a ZIP archive (an Excel .xlsx workbook?), not CSV"),
    (b"\xd0\xcf\x11\xe0", "an Office binary file (an Excel .xls workbook?), not CSV"),
    (b"%PDF", "a PDF document, not CSV"),
    (b"\x1f\x8b", "gzip-compressed data, not CSV"),
)


def _key(header: str) -> str:
    """Compare header names on their letters and digits only, case-insensitively."""
    return "".join(ch for ch in header.casefold() if ch.isalnum())


def _excerpt(text: str, limit: int = 80) -> str:
    """A short, single-line rendering of a piece of the file for an error message."""
    flat = _CONTROL.sub("?", text.replace("\t", " ").replace("\r", " ").replace("\n", " ")).strip()
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _lines_text(lines: Sequence[int]) -> str:
    shown = ", ".join(str(n) for n in lines[:_MAX_LINES_LISTED])
    return shown + (", …" if len(lines) > _MAX_LINES_LISTED else "")


# --- decoding ----------------------------------------------------------------------------------


def _decode(content: bytes | str) -> tuple[str, str, list[str]]:
    """Return (text, encoding, warnings) or raise RefFileError for binary data."""
    if isinstance(content, str):
        text = content.removeprefix("\ufeff")
        if "\x00" in text:
            raise RefFileError("binary data (NUL characters), not a CSV text file")
        return text, "str", []
    for signature, what in _SIGNATURES:
        if content.startswith(signature):
            raise RefFileError(what)
    if content.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return content.decode("utf-16"), "utf-16", []
        except UnicodeDecodeError as exc:
            raise RefFileError(
                f"not text: a UTF-16 byte-order mark but invalid UTF-16 ({exc.reason})"
            ) from None
    if b"\x00" in content:
        raise RefFileError("binary data (NUL bytes), not a CSV text file")
    if content.startswith(b"\xef\xbb\xbf"):
        try:
            return content.decode("utf-8-sig"), "utf-8-sig", []
        except UnicodeDecodeError:
            pass  # a BOM followed by Windows-1252 text: fall through to cp1252
    else:
        try:
            return content.decode("utf-8"), "utf-8", []
        except UnicodeDecodeError:
            pass
    try:
        text = content.removeprefix(b"\xef\xbb\xbf").decode("cp1252")
    except UnicodeDecodeError as exc:
        byte = content[exc.start]
        raise RefFileError(
            "not text: the bytes are neither UTF-8 nor Windows-1252"
            f" (byte 0x{byte:02x} at offset {exc.start})"
        ) from None
    return text, "cp1252", ["not UTF-8: decoded as Windows-1252 (cp1252)"]


def _reject_non_csv(first_line: str, text: str) -> None:
    """Raise RefFileError for content that is plainly not CSV (markup, JSON, binary noise)."""
    head = first_line.lstrip()
    if head.startswith("<"):
        what = "XML" if head.startswith("<?xml") else "HTML or XML"
        raise RefFileError(f"{what}, not CSV (starts with '{_excerpt(head, 40)}')")
    if head.startswith(("{", "[")):
        raise RefFileError(f"JSON, not CSV (starts with '{_excerpt(head, 40)}')")
    controls = len(_CONTROL.findall(text))
    if _CONTROL.search(first_line) or controls * 10 > len(text):
        raise RefFileError("binary data (control characters), not a CSV text file")


# --- header ------------------------------------------------------------------------------------


@dataclass
class _Columns:
    type: int | None = None
    id: int | None = None
    typed: list[tuple[int, RefKind]] = field(default_factory=list)
    name: int | None = None
    message: int | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def has_id(self) -> bool:
        return self.id is not None or bool(self.typed)


def _first(keys: Sequence[str], synonyms: Sequence[str]) -> tuple[int | None, list[int]]:
    """The column of the most preferred synonym (then the leftmost), and the other matches."""
    matches = [
        (rank, index)
        for rank, synonym in enumerate(synonyms)
        for index, key in enumerate(keys)
        if key == _key(synonym)
    ]
    if not matches:
        return None, []
    matches.sort()
    return matches[0][1], [index for _, index in matches[1:]]


def _map_header(cells: Sequence[str]) -> _Columns:
    keys = [_key(cell) for cell in cells]
    columns = _Columns()
    columns.type, _ = _first(keys, _TYPE_HEADERS)
    columns.id, other_ids = _first(keys, _ID_HEADERS)
    if other_ids and columns.id is not None:
        ignored = ", ".join(cells[index] for index in sorted(other_ids))
        columns.warnings.append(f"several id columns: using '{cells[columns.id]}', ignoring {ignored}")
    typed_keys = {_key(name): kind for name, kind in _TYPED_ID_HEADERS.items()}
    seen_kinds: set[RefKind] = set()
    for index, key in enumerate(keys):
        kind = typed_keys.get(key)
        if kind is not None and kind not in seen_kinds:
            seen_kinds.add(kind)
            columns.typed.append((index, kind))
    columns.name, _ = _first(keys, _NAME_HEADERS)
    columns.message, _ = _first(keys, _MESSAGE_HEADERS)
    return columns


def _split_line(line: str, delimiter: str) -> list[str]:
    rows = list(csv.reader([line], delimiter=delimiter, skipinitialspace=True))
    return [cell.strip() for cell in rows[0]] if rows else []


def _count_outside_quotes(line: str, delimiter: str) -> int:
    count, quoted = 0, False
    for ch in line:
        if ch == '"':
            quoted = not quoted
        elif ch == delimiter and not quoted:
            count += 1
    return count


def _sniff_delimiter(header_line: str) -> str:
    """The delimiter under which the header names an id column; most occurrences first."""
    counts = {delimiter: _count_outside_quotes(header_line, delimiter) for delimiter in _DELIMITERS}
    ranked = sorted(_DELIMITERS, key=lambda delimiter: -counts[delimiter])  # stable: ties keep order
    for delimiter in ranked:
        if counts[delimiter] and _map_header(_split_line(header_line, delimiter)).has_id:
            return delimiter
    return ranked[0] if counts[ranked[0]] else ","


def _no_id_column_reason(header_line: str, cells: Sequence[str]) -> str:
    if cells and _key(cells[0]) in _KINDS:
        return (
            f"no header row: the first line '{_excerpt(header_line)}' looks like data; "
            f"expected a header naming one of {_ALL_ID_HEADERS}"
        )
    return f"no id column: the header '{_excerpt(header_line)}' has none of {_ALL_ID_HEADERS}"


# --- quoting -----------------------------------------------------------------------------------


def _check_quotes(text: str, delimiter: str) -> None:
    """Raise RefFileError when a quoted field is never closed (csv would swallow the rest)."""
    line, quoted, at_field_start, opened_on = 1, False, True, 0
    index, length = 0, len(text)
    while index < length:
        ch = text[index]
        if quoted:
            if ch == '"':
                if index + 1 < length and text[index + 1] == '"':
                    index += 1
                else:
                    quoted = False
        elif ch == '"' and at_field_start:
            quoted, at_field_start, opened_on = True, False, line
        elif ch in (delimiter, "\r", "\n"):
            at_field_start = True
        elif not (ch == " " and at_field_start):
            at_field_start = False
        if ch == "\n" or (ch == "\r" and text[index + 1 : index + 2] != "\n"):
            line += 1
        index += 1
    if quoted:
        raise RefFileError(f"unclosed quote: the quoted field that starts on line {opened_on} never ends")


# --- rows --------------------------------------------------------------------------------------


def _kind_of(raw_type: str | None) -> RefKind:
    if raw_type is None:
        return RefKind.OTHER
    return _KINDS.get(_key(raw_type), RefKind.OTHER)


@dataclass
class _RowReader:
    """Reads the rows after the header and keeps what was found and what was tolerated."""

    columns: _Columns
    header_keys: list[str]
    delimiter: str
    rows: int = 0
    references: dict[tuple[RefKind, str, str], Reference] = field(default_factory=dict)
    skipped: list[int] = field(default_factory=list)
    unknown_types: dict[str, list[int]] = field(default_factory=dict)
    empty_types: list[int] = field(default_factory=list)
    extra_cells: list[int] = field(default_factory=list)
    repeated_headers: list[int] = field(default_factory=list)
    duplicates: int = 0

    def read(self, raw_row: list[str], line: int) -> None:
        cells = [value.strip() for value in raw_row]
        if [_key(value) for value in cells] == self.header_keys:
            self.repeated_headers.append(line)
            return
        self.rows += 1
        width = len(self.header_keys)
        if len(cells) > width:
            last = width - 1
            if last in (self.columns.message, self.columns.name):
                # an unquoted message (or name) that contains the delimiter: join it back
                cells = [*cells[:last], self.delimiter.join(raw_row[last:]).strip()]
            else:
                self.extra_cells.append(line)

        def cell(index: int | None) -> str | None:
            if index is None or index >= len(cells):
                return None
            return cells[index] or None

        raw_type = cell(self.columns.type)
        found: list[tuple[RefKind, str]] = []
        generic = cell(self.columns.id)
        if generic is not None:
            found.append((_kind_of(raw_type), generic))
            if self.columns.type is not None and raw_type is None:
                self.empty_types.append(line)
            elif raw_type is not None and found[0][0] is RefKind.OTHER:
                self.unknown_types.setdefault(raw_type, []).append(line)
        else:
            # typed id columns: the column name gives the kind; a row type naming one of them
            # picks that id as the reference, otherwise every filled typed id is one
            typed = [
                (kind, value) for index, kind in self.columns.typed if (value := cell(index)) is not None
            ]
            row_kind = _kind_of(raw_type) if raw_type is not None else None
            found = [pair for pair in typed if pair[0] is row_kind] or typed
        if not found:
            self.skipped.append(line)
            return
        name, message = cell(self.columns.name), cell(self.columns.message)
        for kind, ref_id in found:
            self._add(
                Reference(kind=kind, id=ref_id, name=name, message=message, raw_type=raw_type, line=line)
            )

    def _add(self, reference: Reference) -> None:
        raw = (reference.raw_type or "").casefold() if reference.kind is RefKind.OTHER else ""
        key = (reference.kind, raw, reference.id.casefold())
        first = self.references.get(key)
        if first is None:
            self.references[key] = reference
            return
        self.duplicates += 1
        self.references[key] = replace(first, occurrences=first.occurrences + 1)

    def warnings(self) -> list[str]:
        out = list(self.columns.warnings)
        if self.rows == 0:
            out.append("header only: no reference rows")
        if self.skipped:
            out.append(f"{len(self.skipped)} row(s) without an id skipped (line {_lines_text(self.skipped)})")
        for raw, lines in self.unknown_types.items():
            out.append(
                f"unknown reference type '{raw}' on {len(lines)} row(s)"
                f" (line {_lines_text(lines)}): kept as other"
            )
        if self.empty_types:
            lines = self.empty_types
            out.append(f"{len(lines)} row(s) with an empty type (line {_lines_text(lines)}): kept as other")
        if self.extra_cells:
            lines = self.extra_cells
            out.append(
                f"{len(lines)} row(s) with more cells than the header"
                f" (line {_lines_text(lines)}): extra cells ignored"
            )
        if self.repeated_headers:
            out.append(f"repeated header row ignored (line {_lines_text(self.repeated_headers)})")
        if self.duplicates:
            out.append(f"{self.duplicates} duplicate row(s) merged into their first occurrence")
        if self.columns.type is None and self.columns.id is not None:
            out.append("no type column: references in the generic id column are of kind other")
        return out


# --- entry point -------------------------------------------------------------------------------


def _locate_header(text: str) -> tuple[str | None, int | None, str | None]:
    """(first non-blank line, line of an Excel `sep=` directive, the delimiter it sets)."""
    sep_line: int | None = None
    delimiter: str | None = None
    for number, raw_line in enumerate(_LINE_BREAK.split(text), start=1):
        if not raw_line.strip(" \t,;"):
            continue
        directive = _SEP_DIRECTIVE.match(raw_line)
        if directive and sep_line is None:
            sep_line, delimiter = number, directive.group(1)
            continue
        return raw_line, sep_line, delimiter
    return None, sep_line, delimiter


def parse_reference_file(content: bytes | str) -> ParsedRefs:
    """Parse an errors.csv / warnings.csv note body.

    Returns the de-duplicated references in file order, how many rows were skipped, the encoding
    and delimiter used and what was tolerated. Raises RefFileError (a ValueError with a one-line
    reason) when the content cannot be parsed at all. An empty file or a header without rows is a
    valid result with no references.
    """
    text, encoding, warnings = _decode(content)
    header_line, sep_line, delimiter = _locate_header(text)
    if header_line is None:
        warnings.append("empty file: no header and no rows")
        return ParsedRefs((), 0, encoding, delimiter or ",", tuple(warnings))
    _reject_non_csv(header_line, text)
    if delimiter is None:
        delimiter = _sniff_delimiter(header_line)
    _check_quotes(text, delimiter)

    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, skipinitialspace=True)
    rows: _RowReader | None = None
    previous_end = 0
    try:
        for raw_row in reader:
            line, previous_end = previous_end + 1, reader.line_num
            if line == sep_line or not any(value.strip() for value in raw_row):
                continue  # blank lines, delimiter-only lines and the sep= directive
            if rows is None:
                cells = [value.strip() for value in raw_row]
                columns = _map_header(cells)
                if not columns.has_id:
                    raise RefFileError(_no_id_column_reason(header_line, cells))
                rows = _RowReader(columns, [_key(value) for value in cells], delimiter)
            else:
                rows.read(raw_row, line)
    except csv.Error as exc:
        raise RefFileError(f"CSV error on line {reader.line_num}: {exc}") from None
    if rows is None:  # e.g. a first line of empty quoted cells
        raise RefFileError("no header row: the first lines hold only empty cells")
    warnings.extend(rows.warnings())
    return ParsedRefs(
        references=tuple(rows.references.values()),
        skipped_rows=len(rows.skipped),
        encoding=encoding,
        delimiter=delimiter,
        warnings=tuple(warnings),
    )
