"""The static security scan of the templates: checkov (framework bicep) finds no failed check, and
every suppression is a `checkov:skip=CKV_…: reason` comment in the Bicep that checkov used — no
stale or unexplained one. A broken copy of the templates must fail the same scan.

checkov lives in its own virtual environment (`.venv-infra`, from requirements-infra.txt: it pins
packages below what the dev tools need), built by `make`; it runs offline (--skip-download)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.infra.template import INFRA, ROOT

CHECKOV = Path(os.environ.get("DIAG_CHECKOV") or ROOT / ".venv-infra" / "bin" / "checkov")
_SKIP = re.compile(r"//\s*checkov:skip=([A-Z0-9_]+)(?::(.*))?$")

# The broken copy: TLS 1.0 allowed on the storage account, and one suppression taken away.
BROKEN = {
    "modules/storage.bicep": ("minimumTlsVersion: 'TLS1_2'", "minimumTlsVersion: 'TLS1_0'"),
    "modules/keyvault.bicep": ("  // checkov:skip=CKV_AZURE_41: the webhook URL", "  // the webhook URL"),
}


def _required() -> bool:
    return bool(os.environ.get("CI")) or os.environ.get("DIAG_TEST_CHECKOV") == "required"


def _checkov_or_skip() -> None:
    if CHECKOV.is_file():
        return
    reason = f"checkov is not installed at {CHECKOV}: run `make .venv-infra/.installed` (or set DIAG_CHECKOV)"
    if _required():
        pytest.fail(f"checkov is required here (CI or make test): {reason}", pytrace=False)
    pytest.skip(reason)


def _scan(directory: Path) -> dict[str, Any]:
    done = subprocess.run(
        [
            str(CHECKOV),
            "--directory",
            str(directory),
            "--framework",
            "bicep",
            "--skip-download",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )
    assert done.returncode in {0, 1}, f"checkov failed to run ({done.returncode}): {done.stderr[-2000:]}"
    report = json.loads(done.stdout)
    return report[0] if isinstance(report, list) else report


@pytest.fixture(scope="module")
def scans(tmp_path_factory) -> dict[str, dict[str, Any]]:
    """One checkov run (its start-up is most of its time) over a copy of infra/ and, beside it, the
    broken files; its results split into the two, with paths relative to each."""
    _checkov_or_skip()
    root = tmp_path_factory.mktemp("checkov")
    shutil.copytree(INFRA, root / "infra")
    for name, (old, new) in BROKEN.items():
        text = (INFRA / name).read_text(encoding="utf-8")
        assert old in text, f"the mutation no longer applies to {name}: {old!r}"
        (root / "broken" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "broken" / name).write_text(text.replace(old, new, 1), encoding="utf-8")
    report = _scan(root)
    split: dict[str, dict[str, Any]] = {}
    for part in ("infra", "broken"):
        results = {
            kind: [
                {**check, "file_path": check["file_path"].removeprefix(f"/{part}/")}
                for check in checks
                if check["file_path"].startswith(f"/{part}/")
            ]
            for kind, checks in report["results"].items()
            if isinstance(checks, list)
        }
        split[part] = {"results": results, "summary": report["summary"]}
    return split


def _failed(report: Mapping[str, Any]) -> set[tuple[str, str]]:
    return {(c["check_id"], c["file_path"]) for c in report["results"]["failed_checks"]}


def skip_comments(directory: Path) -> list[tuple[str, str, str]]:
    """(check id, file, reason) of every `// checkov:skip=` comment under `directory`."""
    found = []
    for path in sorted(directory.rglob("*.bicep")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if match := _SKIP.search(line.strip()):
                found.append(
                    (match.group(1), path.relative_to(directory).as_posix(), (match.group(2) or "").strip())
                )
    return found


def test_the_templates_pass_the_security_scan(scans):
    report = scans["infra"]
    assert report["summary"]["parsing_errors"] == 0
    checked = sum(
        len(report["results"][kind]) for kind in ("passed_checks", "failed_checks", "skipped_checks")
    )
    assert checked > 30, f"checkov checked almost nothing ({checked})"
    assert _failed(report) == set(), json.dumps(report["results"]["failed_checks"], indent=1)[:3000]


def test_every_suppression_is_explained_and_used(scans):
    comments = skip_comments(INFRA)
    unexplained = sorted((check, file) for check, file, reason in comments if len(reason) < 20)
    assert not unexplained, f"checkov:skip comments without a reason: {unexplained}"
    commented = {(check, file) for check, file, _ in comments}
    used = {(c["check_id"], c["file_path"]) for c in scans["infra"]["results"]["skipped_checks"]}
    assert used == commented, (
        f"stale: {sorted(commented - used)}; not from a comment: {sorted(used - commented)}"
    )


def test_a_broken_copy_fails_the_scan(scans):
    assert _failed(scans["broken"]) == {
        ("CKV_AZURE_44", "modules/storage.bicep"),
        ("CKV_AZURE_41", "modules/keyvault.bicep"),
    }


def test_skip_comments_are_read_with_their_reasons(tmp_path):
    (tmp_path / "a.bicep").write_text(
        "resource s 'x@1' = {\n  // checkov:skip=CKV_AZURE_1: a reason long enough to count\n  //checkov:skip=CKV2_AZURE_9\n}\n",
        encoding="utf-8",
    )
    assert skip_comments(tmp_path) == [
        ("CKV_AZURE_1", "a.bicep", "a reason long enough to count"),
        ("CKV2_AZURE_9", "a.bicep", ""),
    ]
