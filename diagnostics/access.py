"""Read access, verified: what the identity the tool runs as can read, table by table.

Dataverse shows a user only the rows its security role lets it read. A role with less than
organization-level Read hides the rows of other owners, and a tenant read that way looks healthy.
So before any check the tool asks Dataverse who it is (`WhoAmI`) and what it may do
(`RetrieveUserPrivileges` on its own systemuser row), and stops the checks whose tables it cannot
read whole.

Shapes, from Microsoft's Web API reference (learn.microsoft.com/power-apps/developer/data-platform/
webapi/reference/): `WhoAmIResponse` {UserId, BusinessUnitId, OrganizationId};
`RetrieveUserPrivilegesResponse` {RolePrivileges: [RolePrivilege]}, where a `RolePrivilege` is
{Depth, PrivilegeId, BusinessUnitId, PrivilegeName, RecordFilterId, RecordFilterUniqueName} and
`Depth` a `PrivilegeDepth`: Basic (0, user), Local (1, business unit), Deep (2, parent: child
business units), Global (3, organization), RecordFilter (4). Older versions of `RolePrivilege`
carry only Depth, PrivilegeId and BusinessUnitId, so a privilege is matched by id first (each
table's Read privilege id comes from `EntityMetadata.Privileges`) and by name only when the id is
absent. The same privilege can arrive several times (through several roles and teams): the deepest
counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from diagnostics.catalog import TENANT, finding
from diagnostics.checks import READS
from diagnostics.model import Finding
from diagnostics.note import NOTE_TABLE
from diagnostics.schema import TABLES, SchemaMap

if TYPE_CHECKING:  # metadata reads access to resolve the schema; only the type goes the other way
    from diagnostics.metadata import EnvironmentMetadata

_DEPTHS = ("Basic", "Local", "Deep", "Global", "RecordFilter")
_ORGANIZATION = "Global"
# How the security-role editor names each depth (what a person changes).
_SHOWN = {
    "Basic": "User",
    "Local": "Business Unit",
    "Deep": "Parent: Child Business Units",
    "Global": "Organization",
    "RecordFilter": "Record filter",
    None: "None",
}
# Deeper is better; a record filter limits reading to matching rows, so it ranks low.
_RANK = {"RecordFilter": 0, "Basic": 1, "Local": 2, "Deep": 3, "Global": 4}


@dataclass(frozen=True)
class TableAccess:
    table: str  # default name
    logical: str  # the environment's name
    privilege: str | None  # e.g. prvReadwork365_providerinvoice
    depth: str | None  # PrivilegeDepth name; None: no Read privilege at all

    def as_evidence(self) -> dict[str, Any]:
        return {
            "table": self.logical,
            "display_name": TABLES[self.table].display,
            "privilege": self.privilege,
            "depth": self.depth,
            "granted": _SHOWN[self.depth],
            "required": _SHOWN[_ORGANIZATION],
        }


@dataclass(frozen=True)
class ReadAccess:
    limited: tuple[TableAccess, ...] = ()
    unverified: str | None = None  # why the privileges could not be read
    user_id: str | None = None

    @property
    def complete(self) -> bool:
        return not self.limited and self.unverified is None


def _depth(value: object) -> str | None:
    """A `PrivilegeDepth` as its name: the Web API writes the member name; the number is accepted
    too (the SDK's enum value)."""
    if isinstance(value, str) and value in _DEPTHS:
        return value
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(_DEPTHS):
        return _DEPTHS[value]
    return None


def granted(answer: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """The deepest depth per privilege id and per privilege name (case-folded)."""
    by_id: dict[str, str] = {}
    by_name: dict[str, str] = {}
    for item in answer.get("RolePrivileges") or []:
        if not isinstance(item, dict):
            continue
        depth = _depth(item.get("Depth"))
        if depth is None:
            continue
        for key, store in (
            (str(item.get("PrivilegeId") or "").lower(), by_id),
            (str(item.get("PrivilegeName") or "").casefold(), by_name),
        ):
            if key and (key not in store or _RANK[depth] > _RANK[store[key]]):
                store[key] = depth
    return by_id, by_name


def read_access(meta: EnvironmentMetadata, schema_map: SchemaMap) -> ReadAccess:
    """Each table the checks read whose Read privilege the identity holds at less than
    organization level (tables the environment lacks are the schema check's business)."""
    if isinstance(meta.user_privileges, str):
        return ReadAccess(unverified=meta.user_privileges, user_id=meta.user_id)
    by_id, by_name = granted(meta.user_privileges)
    limited = []
    for table in READS.tables():
        entity = meta.entities.get(schema_map.table(table))
        if entity is None:
            continue
        if entity.read_privilege is None:
            return ReadAccess(
                unverified=f"the metadata of {entity.logical} names no Read privilege", user_id=meta.user_id
            )
        privilege_id, name = entity.read_privilege
        depth = by_id.get(privilege_id) or by_name.get(name.casefold())
        if depth != _ORGANIZATION:
            limited.append(TableAccess(table, entity.logical, name or None, depth))
    return ReadAccess(tuple(limited), None, meta.user_id)


def access_failures(access: ReadAccess) -> dict[str, str]:
    """Failure keys (snapshot parts) that cannot be trusted, with the reason."""
    out: dict[str, str] = {}
    if access.unverified is not None:
        for table in READS.tables():
            for part in READS.parts_of(table):
                out[part] = f"read access could not be verified ({access.unverified})"
        return out
    for item in access.limited:
        why = (
            f"the tool's identity reads {item.logical} at {_SHOWN[item.depth]} level, not Organization: "
            "rows it cannot see would look like a healthy tenant"
        )
        for part in READS.parts_of(item.table):
            out[part] = why
    return out


def read_access_finding(access: ReadAccess, period: str, stopped: Iterable[str]) -> Finding:
    stopped_checks = sorted(stopped)
    tables = [t.as_evidence() for t in access.limited]
    if access.unverified is not None:
        title = f"The tool could not verify what it may read ({access.unverified}); no check was run"
    else:
        names = ", ".join(t.logical for t in access.limited)
        title = (
            f"The tool's identity cannot read {len(tables)} table(s) at organization level ({names}); "
            f"{len(stopped_checks)} check(s) were not run"
        )
    return finding(
        "READ_ACCESS_LIMITED",
        TENANT,
        period,
        title,
        {
            "user_id": access.user_id,
            "verified": access.unverified is None,
            "reason": access.unverified,
            "tables": tables,
            "stopped_checks": stopped_checks,
        },
        _remediation(access.limited),
    )


def _remediation(limited: Sequence[TableAccess]) -> list[str]:
    tables = (
        ", ".join(f"{TABLES[t.table].display} ({t.logical})" for t in limited)
        or "every table listed in the README"
    )
    return [
        "Power Platform admin center → your environment → Settings → Users + permissions → Application "
        "users: open the tool's application user and note its security role.",
        f"In that security role give Read at Organization level on: {tables}. The role also needs Read "
        "on User (any level) so the tool can check its own privileges.",
        "Run the scan again: the checks that were stopped run once every table is readable in full.",
    ]


# --- write privileges ------------------------------------------------------------------------------
#
# Writing needs more than Read. Dataverse checks, per request (Microsoft's security model, "Security
# roles and privileges"): Create or Write on the table written; Append on it and AppendTo on the
# target's table when a lookup is set; Delete on a deleted row's table. The depth must cover the
# row's owner: the notes are the tool's own rows (User level is enough), every other row is
# someone else's, so only Organization level covers all of them.

NOTE_TABLE_DEFAULT = "annotation"
# Schema names of Dataverse's own tables as privilege names spell them (prvCreateNote,
# prvAppendToAccount); a custom table's privilege names use its schema name, which differs from
# the logical name only in case, and names are compared case-folded.
_STANDARD_SCHEMA_NAMES = {
    "account": "Account",
    "annotation": "Note",
    "invoice": "Invoice",
    "product": "Product",
    "transactioncurrency": "TransactionCurrency",
}
_BASIC = "Basic"
# The tables the monitor's notes are attached to.
NOTE_SUBJECT_TABLES = tuple(dict.fromkeys(NOTE_TABLE.values()))


@dataclass(frozen=True)
class Need:
    """One privilege a write needs: its table (default name), access type and least depth."""

    table: str
    access: str  # PrivilegeType: Create, Write, Delete, Append, AppendTo
    depth: str  # least PrivilegeDepth: Basic (User) or Global (Organization)
    purpose: str  # what it is for, in words


def required_privileges(*, notes: bool, map_accounts: bool, reimport: bool) -> tuple[Need, ...]:
    """What the enabled writes need: the monitor's notes, and the two auto-fixes of unresolved
    references (map a provider account to a CRM account; delete a provider invoice so that Work 365
    imports it again)."""
    needs: list[Need] = []
    if notes:
        # Upserting a note creates it once and writes it after; binding its regarding record
        # appends the note to a record of the subject's table.
        needs += [Need(NOTE_TABLE_DEFAULT, a, _BASIC, "notes") for a in ("Create", "Write", "Append")]
        needs += [Need(t, "AppendTo", _ORGANIZATION, "notes") for t in NOTE_SUBJECT_TABLES]
    if map_accounts:
        purpose = "mapping provider accounts"
        needs += [
            Need("work365_provideraccount", "Write", _ORGANIZATION, purpose),
            Need("work365_provideraccount", "Append", _ORGANIZATION, purpose),
            Need("account", "AppendTo", _ORGANIZATION, purpose),
        ]
    if reimport:
        needs.append(
            Need("work365_providerinvoice", "Delete", _ORGANIZATION, "re-importing provider invoices")
        )
    return tuple(needs)


@dataclass(frozen=True)
class HeldPrivileges:
    """What the identity holds (RetrieveUserPrivileges) and how the environment names and numbers
    each table's privileges (EntityMetadata.Privileges), from the metadata the tool reads anyway."""

    by_id: Mapping[str, str] = field(default_factory=dict)  # privilege id -> deepest depth
    by_name: Mapping[str, str] = field(default_factory=dict)  # case-folded name -> deepest depth
    # (environment table, PrivilegeType) -> (privilege id, name)
    table_privileges: Mapping[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    unverified: str | None = "the privileges were not read"


def held_privileges(meta: EnvironmentMetadata) -> HeldPrivileges:
    if isinstance(meta.user_privileges, str):
        return HeldPrivileges(unverified=meta.user_privileges)
    by_id, by_name = granted(meta.user_privileges)
    table_privileges = {
        (logical, kind): ident
        for logical, entity in meta.entities.items()
        for kind, ident in entity.privileges.items()
    }
    return HeldPrivileges(by_id, by_name, table_privileges, None)


@dataclass(frozen=True)
class MissingPrivilege:
    name: str  # e.g. prvWritework365_provideraccount
    table: str  # the environment's table name
    depth: str | None  # what the identity holds (PrivilegeDepth); None: not at all
    required: str  # the least PrivilegeDepth that serves
    purpose: str

    def as_evidence(self) -> dict[str, Any]:
        return {
            "privilege": self.name,
            "table": self.table,
            "granted": _SHOWN[self.depth],
            "required": _SHOWN[self.required],
            "for": self.purpose,
        }


@dataclass(frozen=True)
class WriteAccess:
    missing: tuple[MissingPrivilege, ...] = ()
    unverified: str | None = None  # why the privileges could not be read

    @property
    def complete(self) -> bool:
        return not self.missing and self.unverified is None

    @property
    def line(self) -> str | None:
        """One line naming every missing privilege and what it is for; None when nothing is missing."""
        if self.unverified is not None:
            return f"the tool could not verify its write privileges ({self.unverified})"
        if not self.missing:
            return None
        groups: dict[str, list[str]] = {}
        for item in self.missing:
            groups.setdefault(item.purpose, []).append(
                f"{item.name} at {_SHOWN[item.required]} level"
                + (f" (has {_SHOWN[item.depth]})" if item.depth else "")
            )
        listed = "; ".join(f"for {purpose}: {', '.join(names)}" for purpose, names in groups.items())
        return (
            f"the tool's identity lacks {len(self.missing)} write privilege(s) ({listed}); "
            "add them to its security role in the Power Platform admin center"
        )


def privilege_name(table: str, logical: str, access: str) -> str:
    """The conventional name `prv<Access><schema name>` of a table's privilege (default table name,
    environment logical name); used when the environment's metadata of that table was not read."""
    return f"prv{access}{_STANDARD_SCHEMA_NAMES.get(table, logical)}"


def missing_write_privileges(
    held: HeldPrivileges,
    schema_map: SchemaMap,
    *,
    notes: bool,
    map_accounts: bool = False,
    reimport: bool = False,
) -> WriteAccess:
    """The privileges the enabled writes need that the identity does not hold deep enough.

    A privilege is matched by id where the environment's metadata names it (the tables the checks
    read), else by its conventional name (the Account table, which no check reads), as the read
    check does.
    """
    needs = required_privileges(notes=notes, map_accounts=map_accounts, reimport=reimport)
    if not needs:
        return WriteAccess()
    if held.unverified is not None:
        return WriteAccess(unverified=held.unverified)
    missing = []
    for need in needs:
        logical = schema_map.table(need.table)
        privilege_id, name = held.table_privileges.get(
            (logical, need.access), ("", privilege_name(need.table, logical, need.access))
        )
        depth = held.by_id.get(privilege_id) or held.by_name.get(name.casefold())
        if depth is None or _RANK[depth] < _RANK[need.depth]:
            missing.append(MissingPrivilege(name, logical, depth, need.depth, need.purpose))
    return WriteAccess(tuple(missing))
