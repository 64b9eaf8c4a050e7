"""`python -m simulator serve`: runs until Ctrl-C; a bad fixture or option exits 2 with one line."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sim_support import tenant_dict

from simulator.__main__ import main, parse_fault

ROOT = Path(__file__).resolve().parents[2]


def test_parse_fault() -> None:
    fault = parse_fault("status=429,retry-after=2,times=3,path=/api/data,latency-ms=50,jitter-ms=10")
    assert (fault.status, fault.retry_after, fault.times, fault.path_prefix) == (429, 2.0, 3, "/api/data")
    assert (fault.latency, fault.jitter) == (0.05, 0.01)
    assert parse_fault("drop,times=1").drop
    with pytest.raises(ValueError, match="unknown fault field 'colour=red'"):
        parse_fault("colour=red")


def test_a_bad_fixture_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.json"
    path.write_text(
        '{"fixture_version": 1, "now": "2026-11-12T09:00:00Z", "dataverse": {"rows": {"acount": []}}}'
    )
    assert main(["serve", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(
        f"error: fixture {path}: unknown table 'acount' in dataverse.rows; did you mean account?"
    )
    assert main(["serve", str(tmp_path / "missing.json")]) == 2


def _serve(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "simulator", "serve", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_serve_prints_its_urls_applies_faults_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    path = tmp_path / "tenant.json"
    path.write_text(json.dumps(tenant_dict()))
    process = _serve(str(path), "--http", "--fault", "status=503,times=1,path=/teams")
    try:
        assert process.stdout is not None
        lines = []
        while not lines or not lines[-1].startswith("Press Ctrl-C"):
            line = process.stdout.readline()
            assert line, process.stderr.read() if process.stderr else ""
            lines.append(line.strip())
        output = "\n".join(lines)
        webhook = re.search(r"Teams webhook\s+(\S+)", output)
        assert webhook is not None
        assert re.search(r"Dataverse\s+http://127\.0\.0\.1:\d+/api/data/v9\.2/", output)
        assert "Entra authority  127.0.0.1:" in output
        assert httpx.post(webhook[1], json={}).status_code == 503
        assert httpx.post(webhook[1], json={}).status_code == 202
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0


def test_serve_with_a_bad_fixture_or_fault_exits_2_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text("{")
    process = _serve(str(path))
    _, err = process.communicate(timeout=20)
    assert process.returncode == 2
    assert "Traceback" not in err
    assert re.fullmatch(r"error: fixture .*broken\.json is not valid JSON \(line 1, column 2\): .*\n", err)
    bad_fault = _serve(str(path), "--fault", "status=abc")
    _, err = bad_fault.communicate(timeout=20)
    assert bad_fault.returncode == 2
    assert "bad --fault 'status=abc'" in err
