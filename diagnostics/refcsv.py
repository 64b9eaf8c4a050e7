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
  CSV; bytes that are neither UTF-8 nor Windows-1252; a quoted field that is never closed (or a
  field longer than the csv module's field limit, 128 KB); a header of more than 1,000 columns.
* Warnings stay short whatever the file: at most ten lines listed per kind, at most ten unknown
  types named (the others summed up).

Size
----
Time and memory are linear in the size of the file with a small constant (a 10 MB note in about
0.4 s of CPU): the header and blank lines are found with regular expressions, quotes are checked by
the csv module itself (a sentinel line after the text that an unclosed quote swallows), blank and
delimiter-only rows are dropped without Python-level work, and each row costs a fixed number of
string operations. Notes over DIAG_NOTE_MAX_BYTES never reach the parser (snapshot_loader).

`references_in_message` reads the references a provider invoice's message names (see there).

The module is pure: no I/O, no clock, no logging.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

__all__ = [
    "ParsedRefs",
    "RefFileError",
    "RefKind",
    "Reference",
    "parse_reference_file",
    "references_in_message",
]


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
    line: int  # 1-based physical line where the (first) row starts; 0 when named in a message
    occurrences: int = 1  # rows that named this reference


@dataclass(frozen=True)
class ParsedRefs:
    references: tuple[Reference, ...]  # in the order of their first row
    skipped_rows: int  # rows that could not give a reference (no id)
    encoding: str  # "utf-8", "utf-8-sig", "cp1252", "utf-16" or "str"
    delimiter: str  # ",", ";" or "\t"
    warnings: tuple[str, ...]  # one line each; what was tolerated
    rows: int = 0  # data rows after the header (blank lines and repeated headers not counted)


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
_BREAK = re.compile(r"\r\n|\r|\n")
_CONTENT = re.compile(r"[^ \t,;\r\n]")  # a character that makes a line non-blank
_SEP_DIRECTIVE = re.compile(r"^\s*sep=(.)\s*$", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_QUOTED = re.compile(r'"[^"]*(?:"|$)')  # a quoted stretch of a line (to its end when unclosed)
_NOT_ALNUM = re.compile(r"[\W_]+")
_MAX_LINES_LISTED = 10
_MAX_TYPES_LISTED = 10
# A references file has a handful of columns; thousands mean something else (and would make the
# header mapping the slow part of the parse).
_MAX_COLUMNS = 1000
# Appended after the text: the reader yields it as a row of its own unless a quoted field that is
# never closed swallows it. NUL never occurs in the text (decoding rejects it).
_END = "\x00end-of-file\x00"

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "a ZIP archive (an Excel .xlsx workbook?), not CSV"),
    (b"\xd0\xcf\x11\xe0", "an Office binary file (an Excel .xls workbook?), not CSV"),
    (b"%PDF", "a PDF document, not CSV"),
    (b"\x1f\x8b", "gzip-compressed data, not CSV"),
)


def _key(header: str) -> str:
    """Compare header names on their letters and digits only, case-insensitively."""
    return _NOT_ALNUM.sub("", header.casefold())


def _excerpt(text: str, limit: int = 80) -> str:
    """A short, single-line rendering of a piece of the file for an error message."""
    text = text[: limit * 4]  # never more work than the excerpt needs
    flat = _CONTROL.sub("?", text.replace("\t", " ").replace("\r", " ").replace("\n", " ")).strip()
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


@dataclass
class _Lines:
    """How many rows showed something, and the first few of their lines (memory stays bounded)."""

    count: int = 0
    first: list[int] = field(default_factory=list)

    def add(self, line: int) -> None:
        self.count += 1
        if len(self.first) < _MAX_LINES_LISTED:
            self.first.append(line)

    def text(self) -> str:
        shown = ", ".join(str(n) for n in self.first)
        return shown + (", …" if self.count > len(self.first) else "")


def _breaks(cells: Sequence[str]) -> int:
    """Line breaks inside a row's cells (quoted fields that span lines)."""
    joined = "".join(cells)
    if "\n" not in joined and "\r" not in joined:
        return 0
    return joined.count("\n") + joined.count("\r") - joined.count("\r\n")


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
            text = content.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise RefFileError(
                f"not text: a UTF-16 byte-order mark but invalid UTF-16 ({exc.reason})"
            ) from None
        if "\x00" in text:
            raise RefFileError("binary data (NUL characters), not a CSV text file")
        return text, "utf-16", []
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
    if _CONTROL.search(first_line):
        raise RefFileError("binary data (control characters), not a CSV text file")
    if _CONTROL.search(text) and _CONTROL.subn("", text)[1] * 10 > len(text):
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


def _positions(keys: Sequence[str]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for index, key in enumerate(keys):
        out.setdefault(key, []).append(index)
    return out


def _first(positions: dict[str, list[int]], synonyms: Sequence[str]) -> tuple[int | None, list[int]]:
    """The column of the most preferred synonym (then the leftmost), and the other matches."""
    matches = [index for synonym in synonyms for index in positions.get(_key(synonym), ())]
    if not matches:
        return None, []
    return matches[0], matches[1:]


def _map_header(cells: Sequence[str]) -> _Columns:
    keys = [_key(cell) for cell in cells]
    positions = _positions(keys)
    columns = _Columns()
    columns.type, _ = _first(positions, _TYPE_HEADERS)
    columns.id, other_ids = _first(positions, _ID_HEADERS)
    if other_ids and columns.id is not None:
        ignored = ", ".join(cells[index] for index in sorted(other_ids)[:_MAX_LINES_LISTED])
        more = ", …" if len(other_ids) > _MAX_LINES_LISTED else ""
        columns.warnings.append(
            f"several id columns: using '{_excerpt(cells[columns.id])}', ignoring {_excerpt(ignored)}{more}"
        )
    for name, kind in _TYPED_ID_HEADERS.items():
        found = positions.get(_key(name))
        if found:
            columns.typed.append((found[0], kind))
    columns.typed.sort()
    columns.name, _ = _first(positions, _NAME_HEADERS)
    columns.message, _ = _first(positions, _MESSAGE_HEADERS)
    return columns


def _split_line(line: str, delimiter: str) -> list[str]:
    rows = list(csv.reader([line], delimiter=delimiter, skipinitialspace=True))
    return [cell.strip() for cell in rows[0]] if rows else []


def _sniff_delimiter(header_line: str) -> str:
    """The delimiter under which the header names an id column; most occurrences first."""
    unquoted = _QUOTED.sub("", header_line)
    counts = {delimiter: unquoted.count(delimiter) for delimiter in _DELIMITERS}
    if max(counts.values()) >= _MAX_COLUMNS:
        raise RefFileError(_too_wide(max(counts.values()) + 1))
    ranked = sorted(_DELIMITERS, key=lambda delimiter: -counts[delimiter])  # stable: ties keep order
    for delimiter in ranked:
        if counts[delimiter] and _map_header(_split_line(header_line, delimiter)).has_id:
            return delimiter
    return ranked[0] if counts[ranked[0]] else ","


def _too_wide(columns: int) -> str:
    return f"the header has {columns} columns (at most {_MAX_COLUMNS}): not a references file"


def _no_id_column_reason(header_line: str, cells: Sequence[str]) -> str:
    if cells and _key(cells[0]) in _KINDS:
        return (
            f"no header row: the first line '{_excerpt(header_line)}' looks like data; "
            f"expected a header naming one of {_ALL_ID_HEADERS}"
        )
    return f"no id column: the header '{_excerpt(header_line)}' has none of {_ALL_ID_HEADERS}"


# --- rows --------------------------------------------------------------------------------------


@dataclass
class _RowReader:
    """Reads the rows after the header and keeps what was found and what was tolerated.

    Work per row is a constant number of C-level string operations on its cells, and what is kept
    for warnings is bounded, so the whole parse is linear in the size of the file.
    """

    columns: _Columns
    header_keys: list[str]
    delimiter: str
    rows: int = 0
    references: dict[tuple[RefKind, str, str], Reference] = field(default_factory=dict)
    occurrences: dict[tuple[RefKind, str, str], int] = field(default_factory=dict)
    kinds: dict[str, RefKind] = field(default_factory=dict)
    skipped: _Lines = field(default_factory=_Lines)
    unknown_types: dict[str, _Lines] = field(default_factory=dict)
    more_unknown_types: _Lines = field(default_factory=_Lines)
    more_unknown_names: set[str] = field(default_factory=set)
    empty_types: _Lines = field(default_factory=_Lines)
    extra_cells: _Lines = field(default_factory=_Lines)
    repeated_headers: _Lines = field(default_factory=_Lines)
    duplicates: int = 0

    def _kind_of(self, raw_type: str | None) -> RefKind:
        if raw_type is None:
            return RefKind.OTHER
        kind = self.kinds.get(raw_type)
        if kind is None:
            kind = self.kinds[raw_type] = _KINDS.get(_key(raw_type), RefKind.OTHER)
        return kind

    def _unknown_type(self, raw_type: str, line: int) -> None:
        lines = self.unknown_types.get(raw_type)
        if lines is None and len(self.unknown_types) >= _MAX_TYPES_LISTED:
            self.more_unknown_names.add(raw_type.casefold()[:100])
            lines = self.more_unknown_types
        elif lines is None:
            lines = self.unknown_types[raw_type] = _Lines()
        lines.add(line)

    def read(self, cells: list[str], end: int) -> None:
        """One row; `end` is the physical line on which it ends."""
        width = len(self.header_keys)
        if (
            len(cells) == width
            and _key(cells[0]) == self.header_keys[0]  # cheap test first: most rows stop here
            and [_key(value) for value in cells] == self.header_keys
        ):
            self.repeated_headers.add(end - _breaks(cells))
            return
        self.rows += 1
        columns = self.columns
        if len(cells) > width:
            last = width - 1
            if last in (columns.message, columns.name):
                # an unquoted message (or name) that contains the delimiter: join it back
                cells = [*cells[:last], self.delimiter.join(cells[last:])]
            else:
                self.extra_cells.add(end - _breaks(cells))
        elif len(cells) < width:
            cells = cells + [""] * (width - len(cells))  # missing trailing cells are missing values
        raw_type = None if columns.type is None else cells[columns.type].strip() or None
        found: list[tuple[RefKind, str]]
        generic = None if columns.id is None else cells[columns.id].strip() or None
        if generic is not None:
            kind = self._kind_of(raw_type)
            found = [(kind, generic)]
            if columns.type is not None and raw_type is None:
                self.empty_types.add(end - _breaks(cells))
            elif raw_type is not None and kind is RefKind.OTHER:
                self._unknown_type(raw_type, end - _breaks(cells))
        else:
            # typed id columns: the column name gives the kind; a row type naming one of them
            # picks that id as the reference, otherwise every filled typed id is one
            typed = [(kind, value) for index, kind in columns.typed if (value := cells[index].strip())]
            row_kind = self._kind_of(raw_type) if raw_type is not None else None
            found = [pair for pair in typed if pair[0] is row_kind] or typed
        if not found:
            self.skipped.add(end - _breaks(cells))
            return
        for kind, ref_id in found:
            key = (kind, (raw_type or "").casefold() if kind is RefKind.OTHER else "", ref_id.casefold())
            if key in self.references:
                self.duplicates += 1
                self.occurrences[key] += 1
                continue
            self.occurrences[key] = 1
            self.references[key] = Reference(
                kind=kind,
                id=ref_id,
                name=None if columns.name is None else cells[columns.name].strip() or None,
                message=None if columns.message is None else cells[columns.message].strip() or None,
                raw_type=raw_type,
                line=end - _breaks(cells),
            )

    def result(self) -> tuple[Reference, ...]:
        return tuple(
            ref if (count := self.occurrences[key]) == 1 else replace(ref, occurrences=count)
            for key, ref in self.references.items()
        )

    def warnings(self) -> list[str]:
        out = list(self.columns.warnings)
        if self.rows == 0:
            out.append("header only: no reference rows")
        if self.skipped.count:
            out.append(f"{self.skipped.count} row(s) without an id skipped (line {self.skipped.text()})")
        for raw, lines in self.unknown_types.items():
            out.append(
                f"unknown reference type '{_excerpt(raw)}' on {lines.count} row(s)"
                f" (line {lines.text()}): kept as other"
            )
        if self.more_unknown_types.count:
            lines = self.more_unknown_types
            out.append(
                f"{len(self.more_unknown_names)} more unknown reference type(s) on {lines.count} row(s)"
                f" (line {lines.text()}): kept as other"
            )
        if self.empty_types.count:
            lines = self.empty_types
            out.append(f"{lines.count} row(s) with an empty type (line {lines.text()}): kept as other")
        if self.extra_cells.count:
            lines = self.extra_cells
            out.append(
                f"{lines.count} row(s) with more cells than the header"
                f" (line {lines.text()}): extra cells ignored"
            )
        if self.repeated_headers.count:
            out.append(f"repeated header row ignored (line {self.repeated_headers.text()})")
        if self.duplicates:
            out.append(f"{self.duplicates} duplicate row(s) merged into their first occurrence")
        if self.columns.type is None and self.columns.id is not None:
            out.append("no type column: references in the generic id column are of kind other")
        return out


# --- entry point -------------------------------------------------------------------------------


def _line_number(text: str, start: int) -> int:
    """The 1-based physical line of the line that starts at offset `start`."""
    return text.count("\n", 0, start) + text.count("\r", 0, start) - text.count("\r\n", 0, start) + 1


def _locate_header(text: str) -> tuple[str | None, int | None, str | None]:
    """(first non-blank line, line of an Excel `sep=` directive, the delimiter it sets).

    Searches with regular expressions rather than line by line, so that millions of blank lines
    before the header cost no Python-level work.
    """
    sep_line: int | None = None
    delimiter: str | None = None
    position = 0
    while (found := _CONTENT.search(text, position)) is not None:
        start = max(text.rfind("\n", 0, found.start()), text.rfind("\r", 0, found.start())) + 1
        line_end = _BREAK.search(text, found.start())
        end = line_end.start() if line_end else len(text)
        line = text[start:end]
        directive = _SEP_DIRECTIVE.match(line) if sep_line is None and end - start < 40 else None
        if directive is None:
            return line, sep_line, delimiter
        sep_line, delimiter = _line_number(text, start), directive.group(1)
        position = end
    return None, sep_line, delimiter


def _is_blank(cells: list[str]) -> bool:
    return not cells[0].strip() and not any(value.strip() for value in cells)


def _rows(text: str, delimiter: str) -> Iterable[tuple[list[str], int]]:
    """The non-blank rows and the physical line each ends on; RefFileError for an unclosed quote."""
    reader = csv.reader(
        io.StringIO(text + "\n" + _END, newline=""), delimiter=delimiter, skipinitialspace=True
    )
    try:
        # filter(any, …) drops empty and delimiter-only rows without Python-level work per row
        for cells in filter(any, reader):
            if cells[-1].endswith(_END):
                if len(cells) == 1 and cells[0] == _END:
                    return
                start = reader.line_num - _breaks(cells)
                raise RefFileError(
                    f"unclosed quote: a quoted field in the row that starts on line {start} never ends"
                )
            yield cells, reader.line_num
    except csv.Error as exc:
        if "field limit" in str(exc):
            raise RefFileError(
                f"a field longer than {csv.field_size_limit()} characters near line {reader.line_num}"
                " (an unclosed quote?)"
            ) from None
        raise RefFileError(f"CSV error on line {reader.line_num}: {exc}") from None


def parse_reference_file(content: bytes | str) -> ParsedRefs:
    """Parse an errors.csv / warnings.csv note body.

    Returns the de-duplicated references in file order, how many rows were skipped, the encoding
    and delimiter used and what was tolerated. Raises RefFileError (a ValueError with a one-line
    reason) when the content cannot be parsed at all. An empty file or a header without rows is a
    valid result with no references. Time and memory are linear in the size of the content.
    """
    text, encoding, warnings = _decode(content)
    header_line, sep_line, delimiter = _locate_header(text)
    if header_line is None:
        warnings.append("empty file: no header and no rows")
        return ParsedRefs((), 0, encoding, delimiter or ",", tuple(warnings))
    _reject_non_csv(header_line, text)
    if delimiter is None:
        delimiter = _sniff_delimiter(header_line)

    rows: _RowReader | None = None
    for cells, end in _rows(text, delimiter):
        if _is_blank(cells):
            continue  # whitespace-only lines (empty and delimiter-only ones never get here)
        if rows is not None:
            rows.read(cells, end)
            continue
        if end - _breaks(cells) == sep_line:
            continue  # the sep= directive
        if len(cells) > _MAX_COLUMNS:
            raise RefFileError(_too_wide(len(cells)))
        header = [value.strip() for value in cells]
        columns = _map_header(header)
        if not columns.has_id:
            raise RefFileError(_no_id_column_reason(header_line, header))
        rows = _RowReader(columns, [_key(value) for value in header], delimiter)
    if rows is None:  # e.g. a first line of empty quoted cells
        raise RefFileError("no header row: the first lines hold only empty cells")
    warnings.extend(rows.warnings())
    return ParsedRefs(
        references=rows.result(),
        skipped_rows=rows.skipped.count,
        encoding=encoding,
        delimiter=delimiter,
        warnings=tuple(warnings),
        rows=rows.rows,
    )


# --- references named in a provider invoice's message --------------------------------------------

_GUID = r"\{?[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\}?"
_ISO_CODE = r"(?-i:[A-Z]{3})(?![A-Za-z])"
_LIST_OF = r"(?P<ids>['\"]?{id}['\"]?(?:\s*(?:,|;|\band\b)\s*['\"]?{id}['\"]?)*)"
_LEAD = r"(?:\s+(?:id|ids|reference|references|code|codes|with\s+id|number))?\s*[:=#]?\s*"
_MESSAGE_PATTERNS: tuple[tuple[re.Pattern[str], RefKind], ...] = (
    (
        re.compile(r"\b(?:customer|tenant|account)s?" + _LEAD + _LIST_OF.format(id=_GUID), re.IGNORECASE),
        RefKind.CUSTOMER,
    ),
    (
        re.compile(r"\bsubscriptions?" + _LEAD + _LIST_OF.format(id=_GUID), re.IGNORECASE),
        RefKind.SUBSCRIPTION,
    ),
    (
        re.compile(r"\bcurrenc(?:y|ies)" + _LEAD + _LIST_OF.format(id=_ISO_CODE), re.IGNORECASE),
        RefKind.CURRENCY,
    ),
)
_ID_IN_LIST = {
    RefKind.CUSTOMER: re.compile(_GUID),
    RefKind.SUBSCRIPTION: re.compile(_GUID),
    RefKind.CURRENCY: re.compile(_ISO_CODE),
}


def references_in_message(message: str | None) -> tuple[Reference, ...]:
    """The customer, subscription and currency references a provider invoice's message names.

    Work 365 does not publish its messages either, so only what cannot be mistaken is taken: a kind
    word (customer, tenant, account, subscription, currency, optionally followed by "id", "code" …)
    directly followed by one or more GUIDs (customers, subscriptions) or upper-case ISO codes
    (currencies). "1 unresolved reference (1 customer)" names none. The references carry line 0
    and the message; duplicates are merged. Linear in the length of the message.
    """
    if not message:
        return ()
    found: dict[tuple[RefKind, str], Reference] = {}
    for pattern, kind in _MESSAGE_PATTERNS:
        for match in pattern.finditer(message):
            for id_match in _ID_IN_LIST[kind].finditer(match.group("ids")):
                ref_id = id_match.group(0).strip("{}")
                key = (kind, ref_id.casefold())
                if key in found:
                    found[key] = replace(found[key], occurrences=found[key].occurrences + 1)
                else:
                    found[key] = Reference(
                        kind=kind, id=ref_id, name=None, message=message, raw_type=None, line=0
                    )
    return tuple(sorted(found.values(), key=lambda ref: message.find(ref.id)))
