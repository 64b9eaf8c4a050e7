"""The templates parse, main.bicep wires its modules with parameters they declare, and azd finds
what it needs (azure.yaml, main.parameters.json). Every check is a function returning the problems
it sees, run on the real templates and on a broken copy (so none can pass by not looking)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from lark.exceptions import LarkError

from tests.infra.template import INFRA, MODULES, ROOT, Templates, body, parse_file, parse_text

BICEP_FILES = sorted([INFRA / "main.bicep", *MODULES.glob("*.bicep")])


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: p.name)
def test_every_template_parses(path):
    parsed = parse_file(path)
    assert parsed.get("resources") or parsed.get("modules"), f"{path.name} declares nothing"


def test_the_parser_rejects_broken_bicep():
    with pytest.raises(LarkError):
        parse_text("resource s 'Microsoft.Storage/storageAccounts@2023-05-01' = {\n  name: 'x'\n")


def wiring_problems(templates: Templates) -> list[str]:
    """Each module main.bicep calls exists, gets only parameters it declares, and every one it
    requires (no default)."""
    problems = []
    for name, module in templates.main.get("modules", {}).items():
        path = module["detail"]["path"]
        if module["type"] != "local":
            problems.append(f"module {name}: {path} is not a local module (the checks could not read it)")
            continue
        stem = path.removeprefix("modules/").removesuffix(".bicep")
        if stem not in templates.modules:
            problems.append(f"module {name}: {path} does not exist")
            continue
        declared = templates.modules[stem].get("parameters", {})
        passed = set(body(module).get("params", {}))
        problems += [
            f"module {name}: passes {p}, which {path} does not declare"
            for p in sorted(passed - set(declared))
        ]
        required = {p for p, spec in declared.items() if spec.get("default") is None}
        problems += [
            f"module {name}: does not pass {p}, required by {path}" for p in sorted(required - passed)
        ]
    called = {m["detail"]["path"] for m in templates.main.get("modules", {}).values()}
    problems += [
        f"modules/{s}.bicep is never used"
        for s in sorted(templates.modules)
        if f"modules/{s}.bicep" not in called
    ]
    return problems


def test_main_wires_every_module_with_the_parameters_it_declares():
    assert wiring_problems(Templates.load()) == []


def test_wiring_problems_are_found():
    templates = Templates.load(
        {"main.bicep": ("    stateTableName: stateTableName\n  }", "    tableName: stateTableName\n  }")}
    )
    assert wiring_problems(templates) == [
        "module storage: passes tableName, which modules/storage.bicep does not declare",
        "module storage: does not pass stateTableName, required by modules/storage.bicep",
    ]


def parameter_file_problems(templates: Templates, parameter_file: dict[str, Any]) -> list[str]:
    """azd's main.parameters.json names only main.bicep's parameters and gives every required one."""
    declared = templates.main["parameters"]
    given = set(parameter_file["parameters"])
    problems = [
        f"main.parameters.json gives {p}, not a parameter of main.bicep"
        for p in sorted(given - set(declared))
    ]
    required = {p for p, spec in declared.items() if spec.get("default") is None}
    problems += [f"main.parameters.json does not give {p} (required)" for p in sorted(required - given)]
    # azd turns a substituted `${NAME=default}` into the parameter's type; any other text given to
    # an int or bool parameter fails the deployment, and so does a default of the wrong type.
    typed = {"int": r"-?\d+", "bool": r"true|false"}
    for p in sorted(given & set(declared)):
        value = parameter_file["parameters"][p].get("value")
        pattern = typed.get(declared[p]["type"])
        if pattern and isinstance(value, str) and not re.fullmatch(rf"\$\{{\w+(=(?:{pattern}))?\}}", value):
            problems.append(f"main.parameters.json gives {p} as {value!r}, but it is {declared[p]['type']}")
    return problems


def test_the_parameter_file_matches_main():
    parameter_file = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))
    assert parameter_file_problems(Templates.load(), parameter_file) == []
    broken = {
        "parameters": {
            **parameter_file["parameters"],
            "dataverse": {"value": "x"},
            "maximumInstanceCount": {"value": "${DIAG_MAXIMUM_INSTANCE_COUNT=four}"},
        }
    }
    del broken["parameters"]["dataverseUrl"]
    assert parameter_file_problems(Templates.load(), broken) == [
        "main.parameters.json gives dataverse, not a parameter of main.bicep",
        "main.parameters.json does not give dataverseUrl (required)",
        "main.parameters.json gives maximumInstanceCount as '${DIAG_MAXIMUM_INSTANCE_COUNT=four}', but it is int",
    ]


def _yaml_mapping(text: str) -> dict[str, Any]:
    """The block mappings of a plain YAML file (keys, nesting by indentation, scalar values): all
    azure.yaml uses, without a YAML library in the test environment."""
    root: dict[str, Any] = {}
    stack: list[tuple[int, dict[str, Any]]] = [(-1, root)]
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        indent = len(line) - len(line.lstrip())
        key, _, value = line.strip().partition(":")
        while indent <= stack[-1][0]:
            stack.pop()
        if value.strip():
            stack[-1][1][key] = value.strip()
        else:
            stack[-1][1][key] = child = {}
            stack.append((indent, child))
    return root


def test_azure_yaml_deploys_this_folder_as_the_python_function_app():
    config = _yaml_mapping((ROOT / "azure.yaml").read_text(encoding="utf-8"))
    assert config["infra"] == {"provider": "bicep", "path": "infra", "module": "main"}
    assert config["services"] == {"api": {"project": ".", "language": "python", "host": "function"}}
    assert (ROOT / "function_app.py").is_file()
    assert (ROOT / "host.json").is_file()
    # azd finds the app to deploy by this tag on the site.
    site = (MODULES / "function-app.bicep").read_text(encoding="utf-8")
    assert re.search(r"'azd-service-name': 'api'", site)
