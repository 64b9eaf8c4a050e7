"""The Dataverse Web API subset under /api/data/v9.2/: queries, single rows, writes, WhoAmI.

Requests arrive authenticated and with the tenant's lock held (see server.py); `$batch` and
`EntityDefinitions` are routed to their own modules. Every error is raised as `ODataError` so that
it leaves in Dataverse's shape with Dataverse's status.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, unquote

from simulator import access, metadata
from simulator.index import narrowed
from simulator.odata import (
    aggregate_values,
    check_aggregates,
    compile_filter,
    json_value,
    paging_cookie,
    parse_apply,
    parse_orderby,
    parse_select,
    quote_skiptoken,
    skip_offset,
    sort_rows,
)
from simulator.tenant import AnnotationFilter, Row, ServedColumn, ServedTable, Tenant, navigation_name
from simulator.values import format_datetime, is_guid, parse_date, parse_datetime
from simulator.wire import (
    CODE_AGGREGATE_LIMIT,
    CODE_BAD_REQUEST,
    CODE_CONCURRENCY,
    CODE_DUPLICATE,
    CODE_NOT_FOUND,
    Headers,
    ODataError,
    Request,
    Response,
    bad_request,
    not_found_segment,
    odata_page_response,
    odata_response,
)

API_ROOT = "/api/data/v9.2/"
MAX_PAGE = 5_000
AGGREGATE_LIMIT = 50_000
_QUERY_OPTIONS = ("$select", "$filter", "$orderby", "$top", "$count", "$skiptoken", "$apply", "$expand")
_UNSUPPORTED_CUSTOM = ("fetchXml", "savedQuery", "userQuery")
_SEGMENT = re.compile(r"^(?P<set>[A-Za-z_]\w*)(?:\((?P<key>[^)]*)\))?(?:/(?P<rest>.+))?$")
_BIND = re.compile(r"^(?:.*/api/data/v9\.\d/|/)?(?P<set>[A-Za-z_]\w*)\((?P<key>[^)]*)\)$")
_USER_PRIVILEGES = re.compile(
    r"^systemusers\((?P<id>[^)]+)\)/Microsoft\.Dynamics\.CRM\.RetrieveUserPrivileges(?:\(\))?$"
)
_PREFER_ITEM = re.compile(r'\s*([\w.-]+)\s*(?:=\s*("[^"]*"|[^,]*))?\s*(?:,|$)')
_CACHED_RESULTS = 16  # queries whose continuations are served from memory
_LINK_SAFE = ",'()=$"  # left readable in @odata.nextLink, as Dataverse leaves them
_SYSTEM_SET = ("createdon", "modifiedon")  # set by the platform; writes to them are ignored

Dispatch = Callable[[Request], Response]


def parse_prefer(header: str) -> dict[str, str]:
    """`Prefer` preferences by name; quoted values keep their commas (include-annotations lists)."""
    return {m[1]: (m[2] or "").strip().strip('"') for m in _PREFER_ITEM.finditer(header) if m[1]}


def query_options(request: Request, allowed: tuple[str, ...]) -> dict[str, str]:
    options: dict[str, str] = {}
    for key, value in request.params():
        if key in options:
            raise bad_request(
                f"Query option '{key}' was specified more than once, but it must be specified at most once."
            )
        if key.startswith("$") and key not in allowed:
            raise bad_request(f"The query parameter {key} is not supported")
        if key in _UNSUPPORTED_CUSTOM:
            raise bad_request(f"{key} queries are not supported by the simulator; use OData query options")
        options[key] = value
    return options


class DataverseApi:
    def __init__(
        self, tenant: Tenant, base_url: Callable[[], str], batch: Callable[[Request], Response]
    ) -> None:
        self.tenant = tenant
        self._base_url = base_url
        self._batch = batch
        # The filtered, ordered rows of recent queries, for their `$skiptoken` continuations: a page
        # then costs O(page), not a re-filter and re-sort of the whole table (a 500,000-row table is
        # read in 100 pages). A first page always recomputes; any write makes an entry stale.
        self._results: OrderedDict[tuple[object, ...], _Result] = OrderedDict()
        self._results_lock = threading.Lock()
        # Called with the number of rows of each page served (the simulator's page cost).
        self.on_rows: Callable[[int], None] = lambda rows: None

    @property
    def service_root(self) -> str:
        return self._base_url() + API_ROOT

    def handle(self, request: Request) -> Response:
        try:
            return self._route(request)
        except ODataError as error:
            return error.response()

    def _route(self, request: Request) -> Response:
        relative = request.path[len(API_ROOT) :]
        if relative == "$batch":
            if request.method != "POST":
                raise ODataError(405, CODE_BAD_REQUEST, "$batch accepts POST only.")
            return self._batch(request)
        if relative.startswith("EntityDefinitions"):
            if request.method != "GET":
                raise ODataError(405, CODE_BAD_REQUEST, "The simulator serves metadata read-only.")
            return metadata.handle(self.tenant, self.service_root, relative, request)
        if relative in ("WhoAmI", "WhoAmI()"):
            return odata_response(200, access.who_am_i(self.service_root))
        privileges = _USER_PRIVILEGES.match(relative)
        if privileges is not None and request.method == "GET":
            return odata_response(
                200, access.user_privileges(self.tenant, self.service_root, privileges["id"])
            )
        match = _SEGMENT.match(relative)
        table = self.tenant.table_for_set(match["set"]) if match else None
        if match is None or table is None:
            raise not_found_segment(relative.split("/")[0].split("(")[0] or relative)
        key, rest = match["key"], match["rest"]
        if key is None:
            if rest == "$count" and request.method == "GET":
                visible = len(table.rows) if access.check_read(self.tenant, table) else 0
                return Response(200, str(min(visible, MAX_PAGE)).encode(), _text_headers())
            if rest is not None:
                raise not_found_segment(rest)
            if request.method == "GET":
                return self._query(table, request)
            if request.method == "POST":
                return self._create(table, request)
            raise ODataError(405, CODE_BAD_REQUEST, f"{request.method} is not allowed on a collection.")
        row_id = self._key(table, key)
        if request.method == "GET":
            return self._get(table, row_id, rest, request)
        if rest is not None:
            raise not_found_segment(rest)
        if request.method == "PATCH":
            return self._upsert(table, row_id, request)
        if request.method == "DELETE":
            return self._delete(table, row_id)
        raise ODataError(405, CODE_BAD_REQUEST, f"{request.method} is not allowed on a row.")

    @staticmethod
    def _key(table: ServedTable, key: str) -> str:
        if key.startswith(f"{table.primary_key}="):
            key = key.partition("=")[2]
        if not is_guid(key):
            raise bad_request(
                f"The key '{key}' of {table.entity_set} is not a GUID; alternate keys are not supported by the simulator."
            )
        return key.lower()

    # --- reading ----------------------------------------------------------------------------------

    def _query(self, table: ServedTable, request: Request) -> Response:
        options = query_options(request, _QUERY_OPTIONS)
        prefer = parse_prefer(request.headers.get("Prefer"))
        wanted = AnnotationFilter(_annotation_patterns(prefer))
        props = {c.prop: c.edm for c in table.columns}
        if "$expand" in options:
            raise bad_request(
                "$expand on rows is not supported by the simulator; select the _<lookup>_value instead."
            )
        select = parse_select(options["$select"], props, table.type_name) if "$select" in options else None
        if "$apply" in options:
            return self._apply(table, options, props)
        result = self._result(table, options, props)
        rows, total = result.rows, result.total
        page_size, applied = _page_size(prefer)
        offset = skip_offset(options.get("$skiptoken"), result.position, page_size)
        page = rows[offset : offset + page_size]
        self.on_rows(len(page))
        context = f"{self.service_root}$metadata#{table.entity_set}" + (
            f"({','.join(select)})" if select else ""
        )
        head: dict[str, Any] = {"@odata.context": context}
        if options.get("$count") == "true":
            head["@odata.count"] = min(total, MAX_PAGE)
            if wanted("Microsoft.Dynamics.CRM.totalrecordcount"):
                head["@Microsoft.Dynamics.CRM.totalrecordcount"] = min(total, MAX_PAGE)
                head["@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded"] = total > MAX_PAGE
        shape = tuple(select) if select else None
        served = self.tenant.wire_json(table, page, shape, wanted)
        tail = {}
        if offset + page_size < len(rows):
            cookie = paging_cookie(
                offset // page_size + 2,
                table.primary_key,
                str(page[0].values[table.primary_key]),
                str(page[-1].values[table.primary_key]),
            )
            tail["@odata.nextLink"] = self._next_link(request, cookie)
        headers = {}
        if wanted or applied:
            parts = [f'odata.include-annotations="{prefer["odata.include-annotations"]}"'] if wanted else []
            headers["Preference-Applied"] = ",".join(
                parts + ([f"odata.maxpagesize={page_size}"] if applied else [])
            )
        return odata_page_response(head, served, tail, headers)

    def _filtered(
        self,
        table: ServedTable,
        options: Mapping[str, str],
        props: dict[str, str | None],
        limit: int | None = None,
    ) -> list[Row]:
        """The rows the filter keeps, in table order; only the first `limit` when given."""
        # Less than organization-level Read: only the identity's own rows, and it owns none.
        if not access.check_read(self.tenant, table):
            return []
        if "$filter" not in options:
            return list(itertools.islice(table.rows.values(), limit))
        compiled = compile_filter(options["$filter"], props, table.type_name)
        # The rows an index says can match (the partition's range of a large table, say); the
        # predicate still decides each one, less what the index found exactly.
        found, test = narrowed(table, compiled)
        kept = (r for r in (table.rows.values() if found is None else found) if test(r.values))
        return list(itertools.islice(kept, limit))

    def _result(
        self, table: ServedTable, options: Mapping[str, str], props: dict[str, str | None]
    ) -> _Result:
        """The query's rows, filtered, ordered and cut to `$top`, with each row's position by key;
        from the cache for a continuation (`$skiptoken`) of a query served since the last write."""
        readable = access.check_read(self.tenant, table)
        cache_key = (
            table.entity_set,
            readable,
            self.tenant.generation,
            *(options.get(o) for o in ("$filter", "$orderby", "$top")),
        )
        if "$skiptoken" in options:
            with self._results_lock:
                cached = self._results.get(cache_key)
            if cached is not None:
                return cached
        top = options.get("$top", "")
        # `$top` without an order or a count: the first matches are enough (a probe of one row).
        unordered = "$orderby" not in options and options.get("$count") != "true"
        limit = int(top) if unordered and top.isdigit() and int(top) > 0 else None
        rows = self._filtered(table, options, props, limit)
        total = len(rows)  # what `$count` counts: before `$top`
        if "$orderby" in options:
            order = parse_orderby(options["$orderby"], props, table.type_name)
            first = int(top) if top.isdigit() and int(top) > 0 else None  # only these rows sorted out
            rows = sort_rows(rows, order, props, lambda r: r.values, first)
        if "$top" in options:
            if not top.isdigit() or int(top) == 0:
                raise bad_request(f"Invalid value '{top}' for $top query option found.")
            rows = rows[: int(top)]
        result = _Result(rows, table.primary_key, total)
        with self._results_lock:
            self._results[cache_key] = result
            self._results.move_to_end(cache_key)
            while len(self._results) > _CACHED_RESULTS:
                self._results.popitem(last=False)
        return result

    def _next_link(self, request: Request, cookie: str) -> str:
        kept = [(k, v) for k, v in request.params() if k != "$skiptoken"]
        query = "&".join(f"{quote(k, safe='$')}={quote(v, safe=_LINK_SAFE)}" for k, v in kept)
        query += f"{'&' if query else ''}$skiptoken={quote_skiptoken(cookie)}"
        return self._base_url() + quote(request.path) + "?" + query

    def _apply(
        self, table: ServedTable, options: Mapping[str, str], props: dict[str, str | None]
    ) -> Response:
        """An aggregation (simulator/odata.py says which forms and types). The `filter(...)` of the
        `$apply` joins the `$filter`, so that an index finds their rows (a slice of an invoice's
        usage in a table of a million rows) rather than a pass over every row."""
        apply = parse_apply(options["$apply"], props, table.type_name)
        kinds = {c.prop: c.type for c in table.columns}
        check_aggregates(apply, kinds)
        filters = [f for f in (options.get("$filter"), apply.filter) if f is not None]
        where = dict(options)
        if filters:
            where["$filter"] = " and ".join(f"({f})" for f in filters) if len(filters) > 1 else filters[0]
        rows = self._filtered(table, where, props)
        if len(rows) > AGGREGATE_LIMIT:
            raise ODataError(
                400,
                CODE_AGGREGATE_LIMIT,
                "AggregateQueryRecordLimit exceeded. Cannot perform this operation.",
            )
        # Without a groupby, one answer even of no rows (a count of 0, a sum of 0).
        groups: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {} if apply.groupby else {(): []}
        for row in rows:
            groups.setdefault(tuple(row.values.get(p) for p in apply.groupby), []).append(row.values)
        values = []
        for group, members in groups.items():
            item: dict[str, Any] = dict(zip(apply.groupby, group, strict=True))
            item |= aggregate_values(apply, members, kinds, props)
            values.append(item)
        head = {"@odata.context": f"{self.service_root}$metadata#{table.entity_set}"}
        return odata_page_response(head, (_json_object(v) for v in values), {})

    def _get(self, table: ServedTable, row_id: str, rest: str | None, request: Request) -> Response:
        row = table.rows.get(row_id) if access.check_read(self.tenant, table) else None
        if row is None:
            raise _missing(table, row_id)
        if rest is not None:
            return self._property(table, row, rest)
        options = query_options(request, ("$select", "$expand"))
        if "$expand" in options:
            raise bad_request(
                "$expand on rows is not supported by the simulator; select the _<lookup>_value instead."
            )
        props = {c.prop: c.edm for c in table.columns}
        select = parse_select(options["$select"], props, table.type_name) if "$select" in options else None
        wanted = AnnotationFilter(_annotation_patterns(parse_prefer(request.headers.get("Prefer"))))
        body = {
            "@odata.context": f"{self.service_root}$metadata#{table.entity_set}"
            + (f"({','.join(select)})" if select else "")
            + "/$entity",
            **self.tenant.wire_row(table, row, select, wanted),
        }
        return odata_response(200, body)

    def _property(self, table: ServedTable, row: Row, rest: str) -> Response:
        name, _, raw = rest.partition("/")
        if name not in table.by_prop or raw not in ("", "$value"):
            raise not_found_segment(rest)
        value = row.values.get(name)
        if raw:
            if value is None:
                return Response(204)
            return Response(200, str(value).encode("utf-8"), _text_headers())
        return odata_response(
            200, {"@odata.context": f"{self.service_root}$metadata#{table.entity_set}/{name}", "value": value}
        )

    # --- writing ----------------------------------------------------------------------------------

    def _body(self, request: Request) -> dict[str, Any]:
        try:
            body = request.json()
        except (ValueError, UnicodeDecodeError):
            raise bad_request("The request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise bad_request("The request body must be a JSON object.")
        return body

    def _create(self, table: ServedTable, request: Request) -> Response:
        body = self._body(request)
        row_id = body.get(table.primary_key) or str(uuid.uuid4())
        if not is_guid(row_id):
            raise bad_request(f"Cannot convert the literal '{row_id}' to the expected type 'Edm.Guid'.")
        row_id = row_id.lower()
        if row_id in table.rows:
            raise ODataError(412, CODE_DUPLICATE, "Cannot insert duplicate key.")
        access.check(self.tenant, table, "Create")
        row = self._write(table, row_id, None, body, request.method)
        return self._written(table, row_id, row, request, created=True)

    def _upsert(self, table: ServedTable, row_id: str, request: Request) -> Response:
        existing = table.rows.get(row_id)
        if_match, if_none_match = request.headers.get("If-Match"), request.headers.get("If-None-Match")
        if existing is None and if_match:
            raise _missing(table, row_id)
        if existing is not None and if_none_match == "*":
            raise ODataError(412, CODE_DUPLICATE, "A record with matching key values already exists.")
        if existing is not None and if_match not in ("", "*") and if_match != f'W/"{existing.version}"':
            raise ODataError(
                412,
                CODE_CONCURRENCY,
                "The version of the existing record doesn't match the RowVersion property provided.",
            )
        body = self._body(request)
        if body.get(table.primary_key, row_id).lower() != row_id:
            raise bad_request(f"The {table.primary_key} in the body does not match the key in the URL.")
        access.check(self.tenant, table, "Create" if existing is None else "Write")
        row = self._write(table, row_id, existing, body, request.method)
        return self._written(table, row_id, row, request, created=existing is None)

    def _delete(self, table: ServedTable, row_id: str) -> Response:
        if row_id not in table.rows:
            raise _missing(table, row_id)
        access.check(self.tenant, table, "Delete")
        self.tenant.schedule_reimport(table, row_id)  # Work 365 imports a deleted invoice again
        self.tenant.delete_row(table, row_id)  # its notes go with it, as Dataverse cascades them
        self.tenant.writes.append(
            {"method": "DELETE", "table": table.definition.logical, "id": row_id, "body": None}
        )
        return Response(204, headers=_odata_headers())

    def _written(
        self, table: ServedTable, row_id: str, row: Row, request: Request, *, created: bool
    ) -> Response:
        entity_id = f"{self.service_root}{table.entity_set}({row_id})"
        prefer = parse_prefer(request.headers.get("Prefer"))
        if prefer.get("return") == "representation":
            options = query_options(request, ("$select",))
            props = {c.prop: c.edm for c in table.columns}
            select = (
                parse_select(options["$select"], props, table.type_name) if "$select" in options else None
            )
            wanted = AnnotationFilter(_annotation_patterns(prefer))
            body = {"@odata.context": f"{self.service_root}$metadata#{table.entity_set}/$entity"}
            body |= self.tenant.wire_row(table, row, select, wanted)
            applied = {"OData-EntityId": entity_id, "Preference-Applied": "return=representation"}
            return odata_response(201 if created else 200, body, applied)
        headers = _odata_headers()
        headers["OData-EntityId"] = entity_id
        return Response(204, headers=headers)

    def _write(
        self, table: ServedTable, row_id: str, existing: Row | None, body: dict[str, Any], method: str
    ) -> Row:
        now = format_datetime(self.tenant.now)
        if existing is None:
            row = Row({c.prop: None for c in table.columns if c.default})
            row.values[table.primary_key] = row_id
            row.values[table.by_default["createdon"].prop] = now
        else:
            row = Row(dict(existing.values), dict(existing.targets))
        for key, value in body.items():
            if key.endswith("@odata.bind"):
                self._bind(table, row, key.removesuffix("@odata.bind"), value)
            elif not key.startswith("@odata.") and key not in _SYSTEM_SET:
                column = self._writable(table, key)
                if column.default != table.definition.primary_key:
                    row.values[column.prop] = self._converted(table, column, value)
        self._state(table, row, body, creating=existing is None)
        if table.definition.logical == "annotation" and "isdocument" not in body and "documentbody" in body:
            row.values["isdocument"] = body["documentbody"] is not None
        row.values[table.by_default["modifiedon"].prop] = now
        row.version = self.tenant.next_version()
        self.tenant.put(table, row_id, row)
        self.tenant.writes.append(
            {"method": method, "table": table.definition.logical, "id": row_id, "body": body}
        )
        if table.definition.logical == "annotation":
            self.tenant.notes.append(dict(row.values))
        return row

    def _writable(self, table: ServedTable, key: str) -> ServedColumn:
        column = table.by_prop.get(key)
        if column is None or column.type == "Lookup":
            raise bad_request(
                f"The property '{key}' does not exist on type '{table.type_name}'. Make sure to only use property "
                "names that are defined by the type or mark the type as open type."
            )
        return column

    def _converted(self, table: ServedTable, column: ServedColumn, value: object) -> object:
        if value is None or column.default is None:
            return value
        kind = column.type
        valid = {
            "String": isinstance(value, str),
            "Memo": isinstance(value, str),
            "Integer": isinstance(value, int) and not isinstance(value, bool),
            "Money": isinstance(value, int | float) and not isinstance(value, bool),
            "Decimal": isinstance(value, int | float) and not isinstance(value, bool),
            "Boolean": isinstance(value, bool),
            "Uniqueidentifier": is_guid(value),
        }.get(kind)
        try:
            if kind == "DateOnly":
                return parse_date(value).isoformat()  # type: ignore[arg-type]
            if kind == "DateTime":
                return format_datetime(parse_datetime(value))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            valid = False
        if column.options:
            if column.option(value) is None or isinstance(value, bool):
                raise bad_request(
                    f"A validation error occurred. The value {json.dumps(value)} of '{column.logical}' on record of "
                    f"type '{table.logical}' is outside the valid range."
                )
            return value
        if valid is False:
            raise bad_request(f"Cannot convert the literal '{value}' to the expected type '{column.edm}'.")
        return value

    def _state(self, table: ServedTable, row: Row, body: Mapping[str, Any], *, creating: bool) -> None:
        """Keep statecode and statuscode consistent, as Dataverse does when only one is written."""
        if not table.definition.status:
            return
        state, status = table.by_default["statecode"], table.by_default["statuscode"]
        chosen = status.option(row.values[status.prop])
        if status.prop in body and state.prop not in body and chosen is not None:
            row.values[state.prop] = chosen.state
        elif (state.prop in body and status.prop not in body) or (creating and chosen is None):
            wanted_state = row.values[state.prop] or 0
            first = next((o for o in status.options if o.state == wanted_state), status.options[0])
            row.values[status.prop], row.values[state.prop] = first.value, first.state

    def _bind(self, table: ServedTable, row: Row, navigation: str, value: object) -> None:
        column, target_name = self._navigation(table, navigation)
        if value is None:
            row.values[column.prop] = None
            return
        match = _BIND.match(unquote(str(value)))
        target = self.tenant.table_for_set(match["set"]) if match else None
        if match is None or target is None or not is_guid(match["key"]):
            raise bad_request(
                f"The @odata.bind value '{value}' of '{navigation}' is not a /<entity set>(<id>) reference."
            )
        if target.definition.logical != target_name:
            raise bad_request(
                f"'{navigation}' binds to {self.tenant.tables[target_name].entity_set}, not to {target.entity_set}."
            )
        target_id = match["key"].lower()
        if target_id not in target.rows:
            raise _missing(target, target_id)
        # Setting a lookup appends this row to the target: Append here, AppendTo there.
        access.check(self.tenant, table, "Append")
        access.check(self.tenant, target, "AppendTo")
        row.values[column.prop] = target_id
        row.targets[column.prop] = target_name
        if column.target is None:  # the polymorphic regarding lookup also records the target's table
            row.values[table.by_default["objecttypecode"].prop] = target.logical

    def _navigation(self, table: ServedTable, navigation: str) -> tuple[ServedColumn, str]:
        """The lookup a navigation property names, and its target table (default name).

        Navigation property names are case-sensitive, as in Dataverse: a custom lookup navigates
        under its schema name (`work365_Provideraccount_Account`), not its logical name; the
        polymorphic `objectid` navigates as `objectid_<target table>`.
        """
        for column in table.columns:
            if column.type != "Lookup":
                continue
            if column.target is not None and navigation == navigation_name(column, column.target):
                return column, column.target
            prefix = f"{column.logical}_"
            if column.target is None and navigation.startswith(prefix):
                target = self.tenant.by_logical.get(navigation[len(prefix) :])
                if target is not None:
                    return column, target.definition.logical
        raise bad_request(
            f"An undeclared property '{navigation}' which only has property annotations in the payload but no "
            "property value was found in the payload. In OData, only declared navigation properties and "
            "declared named streams can be represented as properties without values."
        )


class _Result:
    """A query's rows, filtered, ordered and cut to `$top`; `total` counts them before `$top`."""

    def __init__(self, rows: list[Row], primary_key: str, total: int) -> None:
        self.rows, self.total = rows, total
        self._primary_key = primary_key
        self._positions: dict[str, int] | None = None

    def position(self, key: str, guess: int) -> int | None:
        """Where the row with this primary key is: at `guess` when the result has not moved since
        the cookie was written (checked in O(1)), else by a map of every row's position, built
        once (a row deleted since is nowhere: None)."""
        if 0 <= guess < len(self.rows) and str(self.rows[guess].values[self._primary_key]) == key:
            return guess
        if self._positions is None:
            self._positions = {str(r.values[self._primary_key]): i for i, r in enumerate(self.rows)}
        return self._positions.get(key)


def _json_object(item: Mapping[str, Any]) -> bytes:
    """An aggregation's row as JSON, its decimals exact (`json_value`)."""
    return ("{" + ", ".join(f"{json.dumps(k)}: {json_value(v)}" for k, v in item.items()) + "}").encode()


def _annotation_patterns(prefer: Mapping[str, str]) -> list[str]:
    value = prefer.get("odata.include-annotations", "")
    return [p.strip() for p in value.split(",") if p.strip()]


def _page_size(prefer: Mapping[str, str]) -> tuple[int, bool]:
    asked = prefer.get("odata.maxpagesize", "")
    if asked.isdigit() and int(asked) > 0:
        return min(int(asked), MAX_PAGE), True
    return MAX_PAGE, False


def _missing(table: ServedTable, row_id: str) -> ODataError:
    return ODataError(404, CODE_NOT_FOUND, f"{table.logical} With Id = {row_id} Does Not Exist")


def _odata_headers() -> Headers:
    return Headers({"OData-Version": "4.0"})


def _text_headers() -> Headers:
    return Headers({"OData-Version": "4.0", "Content-Type": "text/plain"})
