"""Privilege names, as Dataverse's security model spells them: `prv<Access><table schema name>`.

Kept apart from `access.py` so the fixture loader can check `dataverse.denied_privileges` without
importing the served tenant. The access types are those of a security role's table privileges
(Create, Read, Write, Delete, Append, AppendTo, Assign, Share); Dataverse's own tables use their
schema names (prvCreateNote for annotation, prvAppendToAccount), custom tables theirs.
"""

from __future__ import annotations

from diagnostics.schema import TABLES

ACCESS_TYPES = ("Create", "Read", "Write", "Delete", "Append", "AppendTo", "Assign", "Share")
# Schema names of Dataverse's own tables where the privilege name does not follow the logical name.
SCHEMA_NAMES = {
    "account": "Account",
    "annotation": "Note",
    "invoice": "Invoice",
    "product": "Product",
    "transactioncurrency": "TransactionCurrency",
}


def privilege_name_of(schema_or_logical: str, access: str) -> str:
    return f"prv{access}{SCHEMA_NAMES.get(schema_or_logical, schema_or_logical)}"


# Every privilege a fixture may name (default table names), case-folded -> (table, access).
KNOWN = {
    privilege_name_of(table, access).casefold(): (table, access)
    for table in TABLES
    for access in ACCESS_TYPES
}
