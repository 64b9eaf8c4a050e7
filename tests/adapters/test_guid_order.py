"""The usage partitions' GUID order, read off the text of a canonical GUID, is SQL Server's order of
uniqueidentifier (the bytes of `UUID.bytes_le`, most significant first: .NET's SqlGuid), for any id
and any form it is written in."""

from __future__ import annotations

import itertools
import uuid

from hypothesis import given
from hypothesis import strategies as st

from diagnostics.adapters.dataverse import guid_ranges, sql_guid_key

# SqlGuid.CompareTo compares bytes 10-15, then 8-9, 6-7, 4-5, 0-3 of the .NET byte array.
_SQL_SERVER_ORDER = (10, 11, 12, 13, 14, 15, 8, 9, 6, 7, 4, 5, 0, 1, 2, 3)


def _sql_server_key(guid: uuid.UUID) -> bytes:
    return bytes(guid.bytes_le[i] for i in _SQL_SERVER_ORDER)


_GUIDS = st.uuids(allow_nil=True)
_FORMS = st.sampled_from([str, lambda g: str(g).upper(), lambda g: "{" + str(g) + "}", lambda g: g.hex])


@given(_GUIDS, _FORMS)
def test_the_key_of_a_guid_in_any_form_is_sql_servers(guid: uuid.UUID, form: object) -> None:
    assert callable(form)
    assert sql_guid_key(form(guid)) == _sql_server_key(guid)


@given(st.lists(_GUIDS, min_size=2, max_size=40, unique=True), st.lists(_FORMS, min_size=40, max_size=40))
def test_ranges_are_cut_in_sql_servers_order_whatever_form_the_ids_come_in(
    guids: list[uuid.UUID], forms: list[object]
) -> None:
    written = [form(g) for g, form in zip(guids, forms, strict=False) if callable(form)]
    ordered = [str(g) for g in sorted(guids, key=_sql_server_key)]
    parts = min(4, len(ordered))
    bounds = [ordered[len(ordered) * i // parts] for i in range(1, parts)]

    clauses = guid_ranges("c", [*written, "not a guid", ""], 4)

    assert clauses[0] == "c eq null"
    assert clauses[1] == f"c lt {bounds[0]}"
    assert clauses[-1] == f"c ge {bounds[-1]}"
    assert clauses[2:-1] == [f"c ge {low} and c lt {high}" for low, high in itertools.pairwise(bounds)]
