"""The identity the tool runs as, and what its security role lets it do: read (`dataverse.read_depth`)
and write (`dataverse.denied_privileges`, our extension of the fixture format).

Dataverse answers a user with less than organization-level Read as it would: rows the user does not
own are invisible (the simulated identity owns no row of the fixture, so none is visible), and with
no Read privilege at all every read of the table is a 403 privilege error. `WhoAmI` and the user's
`RetrieveUserPrivileges` report the same depths.

Shapes follow Microsoft's Web API reference (WhoAmIResponse, RetrieveUserPrivilegesResponse,
RolePrivilege, PrivilegeDepth) and the privilege naming of Dataverse's security model:
`prv<Access><table schema name>` (prvReadAccount, prvReadwork365_providerinvoice), with the Note
table's privilege named prvReadNote. The error of a missing privilege is
`0x80040220` "Principal user … is missing prvRead… privilege".
"""

from __future__ import annotations

import uuid
from typing import Any

from simulator.privileges import ACCESS_TYPES, SCHEMA_NAMES
from simulator.tenant import ServedTable, Tenant
from simulator.wire import ODataError

CODE_PRIVILEGE = "0x80040220"  # SecLib::AccessCheckEx failed: missing privilege
# Security-role editor depth -> PrivilegeDepth member (what RetrieveUserPrivileges reports).
DEPTH_NAMES = {
    "User": "Basic",
    "BusinessUnit": "Local",
    "ParentChildBusinessUnit": "Deep",
    "Organization": "Global",
}


def _id(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, ":".join(parts)))


USER_ID = _id("user")
BUSINESS_UNIT_ID = _id("bu")
ORGANIZATION_ID = _id("org")


def who_am_i(service_root: str) -> dict[str, Any]:
    return {
        "@odata.context": f"{service_root}$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse",
        "BusinessUnitId": BUSINESS_UNIT_ID,
        "UserId": USER_ID,
        "OrganizationId": ORGANIZATION_ID,
    }


def privilege_name(table: ServedTable, access: str = "Read") -> str:
    schema_name = SCHEMA_NAMES.get(table.definition.logical, table.logical)
    return f"prv{access}{schema_name}"


def privilege_id(table: ServedTable, access: str = "Read") -> str:
    return _id("privilege", privilege_name(table, access))


def privileges_metadata(table: ServedTable) -> list[dict[str, Any]]:
    """`EntityMetadata.Privileges`: the SecurityPrivilegeMetadata of each of the table's access types."""
    organization_owned = table.definition.logical == "transactioncurrency"
    return [
        {
            "CanBeBasic": not organization_owned,
            "CanBeDeep": not organization_owned,
            "CanBeGlobal": True,
            "CanBeLocal": not organization_owned,
            "CanBeEntityReference": False,
            "CanBeParentEntityReference": False,
            "CanBeRecordFilter": False,
            "Name": privilege_name(table, access),
            "PrivilegeId": privilege_id(table, access),
            "PrivilegeType": access,
        }
        for access in ACCESS_TYPES
        if not (organization_owned and access in ("Assign", "Share"))
    ]


def depth(tenant: Tenant, table: ServedTable) -> str:
    return tenant.fixture.read_depth.get(table.definition.logical, "Organization")


def _missing_privilege(table: ServedTable, access: str) -> ODataError:
    return ODataError(
        403,
        CODE_PRIVILEGE,
        f"Principal user (Id={USER_ID}, type=8, roleCount=1, privilegeCount=12, accessMode=4), is missing "
        f"{privilege_name(table, access)} privilege (Id={privilege_id(table, access)}) on "
        f"OTC={table.object_type_code} for entity '{table.logical}'. context.Caller={USER_ID}",
    )


def check_read(tenant: Tenant, table: ServedTable) -> bool:
    """Whether the identity sees every row; raises the 403 of a missing Read privilege."""
    granted = depth(tenant, table)
    if granted == "None":
        raise _missing_privilege(table, "Read")
    return granted == "Organization"


def granted(tenant: Tenant, table: ServedTable, access: str) -> bool:
    """Whether the identity holds a privilege other than Read (`dataverse.denied_privileges`)."""
    return (table.definition.logical, access) not in tenant.fixture.denied_privileges


def check(tenant: Tenant, table: ServedTable, access: str) -> None:
    """Raise Dataverse's 403 when the identity lacks the privilege (Create, Write, Delete, Append,
    AppendTo) on the table. Granted privileges are organization-wide: the simulated identity can
    write every row it may write at all."""
    if not granted(tenant, table, access):
        raise _missing_privilege(table, access)


def user_privileges(tenant: Tenant, service_root: str, user_id: str) -> dict[str, Any]:
    """`systemusers(<id>)/Microsoft.Dynamics.CRM.RetrieveUserPrivileges()` of the identity."""
    if user_id.lower() != USER_ID:
        raise ODataError(404, "0x80040217", f"systemuser With Id = {user_id} Does Not Exist")
    items = [
        {
            "Depth": "Basic",  # every role reads the user's own systemuser row
            "PrivilegeId": _id("privilege", "prvReadUser"),
            "BusinessUnitId": BUSINESS_UNIT_ID,
            "PrivilegeName": "prvReadUser",
            "RecordFilterId": None,
            "RecordFilterUniqueName": None,
        }
    ]
    for table in tenant.tables.values():
        read = depth(tenant, table)
        held = [("Read", DEPTH_NAMES[read])] if read != "None" else []
        held += [
            (access, "Global")
            for access in ACCESS_TYPES
            if access != "Read" and granted(tenant, table, access)
        ]
        items += [
            {
                "Depth": held_depth,
                "PrivilegeId": privilege_id(table, access),
                "BusinessUnitId": BUSINESS_UNIT_ID,
                "PrivilegeName": privilege_name(table, access),
                "RecordFilterId": None,
                "RecordFilterUniqueName": None,
            }
            for access, held_depth in held
        ]
    return {
        "@odata.context": f"{service_root}$metadata#Microsoft.Dynamics.CRM.RetrieveUserPrivilegesResponse",
        "RolePrivileges": items,
    }
