"""The Bicep templates under infra/, read offline with pycep-parser, and the small part of Bicep the
checks evaluate: parameters (given or default), variables, string interpolation, `union`, `empty`,
`string`, `!`, `?:` and property access on objects. Anything else raises `Unresolved`, so a check
never passes on an expression it could not read.

Every check takes parsed templates (see `Templates`) so a test can run it on a mutated copy too.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pycep import BicepParser

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
MODULES = INFRA / "modules"

_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.]*)\}")


class Unresolved(Exception):
    """An expression outside the subset this reader evaluates, or a value not given."""


@functools.cache
def _parser() -> BicepParser:
    return BicepParser()  # builds the grammar: about a second, so once


@functools.lru_cache(maxsize=64)
def _parse(text: str) -> dict[str, Any]:
    return dict(_parser().parse(text=text))


def parse_text(text: str) -> dict[str, Any]:
    """The template's JSON form (a copy: the checks may not change what other tests read)."""
    return copy.deepcopy(_parse(text))


def parse_file(path: Path) -> dict[str, Any]:
    return parse_text(path.read_text(encoding="utf-8"))


@dataclass
class Templates:
    """The parsed templates of one copy of infra/: `main` and each module by file stem."""

    main: dict[str, Any]
    modules: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, replace: Mapping[str, tuple[str, str]] | None = None) -> Templates:
        """The templates; `replace` maps a file name (``main.bicep``, ``storage.bicep``) to one
        (old, new) text substitution, to check that a check fails on a broken copy."""
        replace = replace or {}
        texts = {
            path: path.read_text(encoding="utf-8")
            for path in [INFRA / "main.bicep", *MODULES.glob("*.bicep")]
        }
        for name, (old, new) in replace.items():
            path = next(p for p in texts if p.name == name)
            assert old in texts[path], f"the mutation no longer applies to {name}: {old!r}"
            texts[path] = texts[path].replace(old, new, 1)
        main = parse_text(texts.pop(INFRA / "main.bicep"))
        return cls(main=main, modules={path.stem: parse_text(text) for path, text in texts.items()})


# ---- evaluation ----


@dataclass
class Scope:
    """Values of a template's parameters and variables; names known but without a value raise."""

    values: dict[str, Any]
    names: set[str]

    def lookup(self, name: str) -> Any:
        if name in self.values:
            return self.values[name]
        raise Unresolved(f"{name} has no value here")


def scope_of(template: Mapping[str, Any], given: Mapping[str, Any] | None = None) -> Scope:
    """Parameters take the given value, else their default; variables are evaluated in turn."""
    given = given or {}
    params = template.get("parameters", {})
    variables = template.get("variables", {})
    scope = Scope(values={}, names=set(params) | set(variables))
    for name, param in params.items():
        if name in given:
            scope.values[name] = given[name]
        elif param.get("default") is not None:
            scope.values[name] = evaluate(param["default"], scope)
    pending = dict(variables)
    while pending:  # a variable may use one declared after it
        progressed = False
        for name, var in list(pending.items()):
            try:
                scope.values[name] = evaluate(var["value"], scope)
            except Unresolved:
                continue
            del pending[name]
            progressed = True
        if not progressed:
            break  # the rest stay unresolved; using one raises
    return scope


def evaluate(expr: Any, scope: Scope) -> Any:
    if isinstance(expr, str):
        if expr in scope.names:
            return scope.lookup(expr)
        return _interpolate(expr, scope)
    if expr is None or isinstance(expr, bool | int | float):
        return expr
    if isinstance(expr, list):
        return [evaluate(item, scope) for item in expr]
    if isinstance(expr, dict):
        if set(expr) == {"function"}:
            return _function(expr["function"], scope)
        if set(expr) == {"operator"}:
            return _operator(expr["operator"], scope)
        return {_interpolate(key, scope): evaluate(value, scope) for key, value in expr.items()}
    raise Unresolved(f"cannot evaluate {expr!r}")


def _interpolate(text: str, scope: Scope) -> str:
    def value(match: re.Match[str]) -> str:
        head, *path = match.group(1).split(".")
        result = scope.lookup(head)
        for part in path:
            if not isinstance(result, Mapping) or part not in result:
                raise Unresolved(f"{match.group(1)} has no value here")
            result = result[part]
        return str(result)

    return _INTERPOLATION.sub(value, text)


def _function(function: Mapping[str, Any], scope: Scope) -> Any:
    kind = function["type"]
    args = [evaluate(value, scope) for value in function["parameters"].values() if value is not None]
    if kind == "union":
        merged: dict[str, Any] = {}
        for arg in args:
            if not isinstance(arg, Mapping):
                raise Unresolved(f"union of a non-object: {arg!r}")
            merged.update(arg)
        return merged
    if kind == "empty":
        return not args[0]
    if kind == "string":
        return str(args[0]).lower() if isinstance(args[0], bool) else str(args[0])
    raise Unresolved(f"function {kind}() is not evaluated here")


def _operator(operator: Mapping[str, Any], scope: Scope) -> Any:
    kind = operator["type"]
    operands = operator["operands"]
    if kind == "conditional":
        chosen = "true_value" if evaluate(operands["condition"], scope) else "false_value"
        return evaluate(operands[chosen], scope)
    if kind == "not":
        return not evaluate(operands["bool_value"], scope)
    if kind == "property_accessor":
        target = evaluate(operands["operand_1"], scope)
        name = operands["operand_2"]
        if not isinstance(target, Mapping) or name not in target:
            raise Unresolved(f"no property {name} here")
        return target[name]
    raise Unresolved(f"operator {kind} is not evaluated here")


# ---- reading resources ----


def body(resource: Mapping[str, Any]) -> dict[str, Any]:
    """A resource's (or module's) declaration, under its condition or loop if it has one."""
    config = dict(resource["config"])
    while "config" in config and ("condition" in config or "loop_type" in config):
        config = dict(config["config"])
    return config


def condition(resource: Mapping[str, Any]) -> Any:
    """The `if (...)` of a conditional resource, else None."""
    return resource["config"].get("condition")


def resources_of_type(template: Mapping[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {
        name: resource
        for name, resource in template.get("resources", {}).items()
        if resource["type"].casefold() == resource_type.casefold()
    }


def one_resource(template: Mapping[str, Any], resource_type: str) -> dict[str, Any]:
    found = [r for r in resources_of_type(template, resource_type).values() if not r.get("existing")]
    assert len(found) == 1, f"expected one {resource_type}, found {len(found)}"
    return found[0]


def decorator(param: Mapping[str, Any], kind: str) -> Any:
    """The argument of a parameter's decorator (`max_value`, `min_value`, `secure`…), else None."""
    return next((d.get("argument", True) for d in param.get("decorators", []) if d["type"] == kind), None)


def module_call(templates: Templates, module: str) -> dict[str, Any]:
    """main.bicep's declaration of the module in modules/<module>.bicep."""
    calls = [
        body(m)
        for m in templates.main.get("modules", {}).values()
        if m["detail"]["path"] == f"modules/{module}.bicep"
    ]
    assert len(calls) == 1, f"main.bicep calls modules/{module}.bicep {len(calls)} times"
    return calls[0]


def module_scope(templates: Templates, module: str, main_given: Mapping[str, Any] | None = None) -> Scope:
    """The module's scope as main.bicep calls it: the values main passes that can be evaluated
    offline (literals, main's parameters and variables), else the module's defaults."""
    main_scope = scope_of(templates.main, main_given)
    passed: dict[str, Any] = {}
    for name, expr in module_call(templates, module).get("params", {}).items():
        try:
            passed[name] = evaluate(expr, main_scope)
        except Unresolved:
            continue  # another module's output: known only in Azure
    return scope_of(templates.modules[module], passed)


def dotted(expr: Any) -> str | None:
    """A reference such as `identity.outputs.principalId` as that text, else None."""
    if isinstance(expr, str):
        return expr
    if (
        isinstance(expr, dict)
        and set(expr) == {"operator"}
        and expr["operator"]["type"] == "property_accessor"
    ):
        operands = expr["operator"]["operands"]
        head, tail = dotted(operands["operand_1"]), dotted(operands["operand_2"])
        return None if head is None or tail is None else f"{head}.{tail}"
    return None
