"""The scanning process of `make bench`: one scan of a simulator served by the parent, in a process
of its own so that its peak memory and CPU are the scan's alone (the simulator's tables are not).

Reads a JSON object on stdin (where the simulator is, how to sign in, the simulated `now`); prints
one JSON object: when the scan started and ended, its wall and CPU seconds, the process's peak
resident memory, round trips by service, findings by code.

The peak is the process's own high-water mark (`VmHWM`): `ru_maxrss` would not do, because Linux
carries the parent's resident size into a child it starts (the simulator's whole tenant, here).
"""

from __future__ import annotations

import asyncio
import json
import resource
import ssl
import sys
import time
from collections import Counter
from datetime import datetime
from typing import Any

from azure.identity import ClientSecretCredential

from diagnostics.schema import SchemaMap
from diagnostics.service import Connection, PartnerCenterAccess, scan
from diagnostics.settings import Settings, Thresholds


def _connection(where: dict[str, Any]) -> Connection:
    credential = ClientSecretCredential(
        where["tenant_id"],
        where["client_id"],
        where["client_secret"],
        authority=where["authority"],
        disable_instance_discovery=True,
        connection_verify=where["ca_file"],
    )
    return Connection(
        where["url"],
        credential,
        PartnerCenterAccess(where["url"], credential),
        SchemaMap(),
        Thresholds(),
        verify=ssl.create_default_context(cafile=where["ca_file"]),
        # The app's default cap (DIAG_DATAVERSE_MAX_CONCURRENCY), as a worker scans: the partitions
        # and the round's $batch share it.
        max_concurrency=Settings.model_fields["dataverse_max_concurrency"].default,
    )


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_mb() -> float:
    """The most memory this process has held resident, in MB (Linux: its own high-water mark)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux; an upper bound


def main() -> None:
    where = json.load(sys.stdin)
    conn = _connection(where)
    started_at = time.time()
    wall, cpu = time.perf_counter(), _cpu()
    report = asyncio.run(scan(conn, datetime.fromisoformat(where["now"])))
    wall, cpu = time.perf_counter() - wall, _cpu() - cpu
    json.dump(
        {
            # when the scan ran (epoch seconds), so the parent can tell it from the process's start
            "started_at": started_at,
            "ended_at": time.time(),
            "seconds": wall,
            "cpu_seconds": cpu,
            "peak_mb": peak_mb(),
            "round_trips": conn.requests.by_service(),
            "findings": dict(Counter(f.code for f in report.findings)),
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
