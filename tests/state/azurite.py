"""Azurite, the Azure Storage emulator, started for the tests: the table service only, in memory,
on a free loopback port, without telemetry. Installed from tools/package.json by `make` (npm ci)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from simulator.tls import write_self_signed

ROOT = Path(__file__).resolve().parents[2]
ENTRY = ROOT / "tools" / "node_modules" / "azurite" / "dist" / "src" / "table" / "main.js"
# Azurite's well-known development account (public, documented; not a secret).
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
INSTALL_HINT = "run `make` (or `cd tools && npm ci`) to install Azurite; it needs Node.js 20"


@dataclass(frozen=True)
class Azurite:
    port: int
    ca_file: Path | None = None  # with TLS and OAuth: the certificate to trust

    @property
    def table_endpoint(self) -> str:
        scheme = "http" if self.ca_file is None else "https"
        return f"{scheme}://127.0.0.1:{self.port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
            f"TableEndpoint={self.table_endpoint};"
        )


def must_run() -> bool:
    """`make test` and CI run the Azurite tests or fail; a bare local `pytest` may skip them."""
    return bool(os.environ.get("CI")) or os.environ.get("DIAG_TEST_AZURITE") == "required"


def missing() -> str | None:
    """Why Azurite cannot start here, or None."""
    if shutil.which("node") is None:
        return f"node is not on PATH: {INSTALL_HINT}"
    if not ENTRY.is_file():
        return f"Azurite is not installed in tools/node_modules: {INSTALL_HINT}"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(url: str, ca_file: Path | None) -> bool:
    # Any HTTP answer (Azurite says 403 to an unsigned request) means the table service is up.
    try:
        httpx.get(
            url, timeout=0.5, verify=True if ca_file is None else ssl.create_default_context(cafile=ca_file)
        )
    except httpx.TransportError:
        return False
    return True


@contextlib.contextmanager
def running_azurite(*, oauth: bool = False, timeout: float = 30.0) -> Iterator[Azurite]:
    """Azurite's table service; with `oauth`, over TLS (a throw-away certificate) accepting bearer
    tokens as Table Storage does (Azurite's basic check: audience, issuer, lifetime; no signature)."""
    node = shutil.which("node")
    assert node is not None
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="azurite-") as workdir:
        log_path = Path(workdir) / "azurite.log"
        extra: list[str] = []
        ca_file = None
        if oauth:
            ca_file, key_file = write_self_signed(Path(workdir))
            extra = ["--oauth", "basic", "--cert", str(ca_file), "--key", str(key_file)]
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [
                    node,
                    str(ENTRY),
                    "--silent",
                    "--inMemoryPersistence",
                    "--disableTelemetry",
                    "--skipApiVersionCheck",
                    "--tableHost",
                    "127.0.0.1",
                    "--tablePort",
                    str(port),
                    *extra,
                ],
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            azurite = Azurite(port, ca_file)
            deadline = time.monotonic() + timeout
            while not _answers(f"{azurite.table_endpoint}/Tables", ca_file):
                if process.poll() is not None or time.monotonic() > deadline:
                    output = log_path.read_text(errors="replace").strip()[-500:]
                    raise RuntimeError(f"Azurite did not start on port {port}: {output or 'no output'}")
                time.sleep(0.05)  # readiness poll of a child process, not a test waiting on logic
            yield azurite
        finally:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
