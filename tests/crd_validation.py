"""Validate a manifest against the generated CRD offline, as the API server would: OpenAPI + CEL.

OpenAPI keywords are checked with jsonschema; every `x-kubernetes-validations` rule is compiled
and evaluated with cel-python, with `self` bound to the value at that node. The real API server
repeats these checks in the e2e suite; this keeps the rules honest in milliseconds.
"""

from __future__ import annotations

from typing import Any

import celpy
import jsonschema

from modeljob.api.crd_schema import build_crd


def crd_schema() -> dict[str, Any]:
    schema: dict[str, Any] = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def schema_nodes(schema: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every object in a schema with its JSON-pointer-like path, for structural checks."""
    nodes: list[tuple[str, dict[str, Any]]] = []
    if isinstance(schema, dict):
        nodes.append((path, schema))
        for key, value in schema.items():
            nodes.extend(schema_nodes(value, f"{path}/{key}"))
    elif isinstance(schema, list):
        for index, value in enumerate(schema):
            nodes.extend(schema_nodes(value, f"{path}/{index}"))
    return nodes


def schema_fields(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every field `kubectl explain` can show: properties at every depth, list items included."""
    found = [(path or "<root>", schema)]
    for name, sub in schema.get("properties", {}).items():
        found.extend(schema_fields(sub, f"{path}.{name}" if path else name))
    if "items" in schema:
        found.extend(schema_fields(schema["items"], f"{path}[]"))
    return found


def validate(manifest: dict[str, Any], schema: dict[str, Any] | None = None) -> list[str]:
    """Errors as `path: message` lines (empty when valid)."""
    schema = schema or crd_schema()
    found = list(jsonschema.Draft7Validator(schema).iter_errors(manifest))
    errors = [_describe(error) for error in found]
    if any(error.validator in _BLOCKING for error in found):
        return errors
    _check_cel(schema, manifest, [], errors)
    return errors


# The API server skips CEL only after these failures (apiextensions-apiserver's hasBlockingErr:
# wrong type, required, too long, too many, unsupported enum value); after any other, such as a
# minimum, it reports the OpenAPI error and every CEL message beside it.
_BLOCKING = {"type", "required", "maxLength", "maxItems", "maxProperties", "enum"}


def _describe(error: jsonschema.ValidationError) -> str:
    path = [str(part) for part in error.absolute_path]
    if error.validator == "required":  # the API server names the missing field itself
        missing = error.message.split("'")[1]
        return f"{'.'.join([*path, missing])}: Required value"
    return f"{'.'.join(path) or '<root>'}: {error.message}"


def _check_cel(schema: dict[str, Any], value: Any, path: list[str], errors: list[str]) -> None:
    environment = celpy.Environment()
    for rule in schema.get("x-kubernetes-validations", []):
        program = environment.program(environment.compile(rule["rule"]))
        result = program.evaluate({"self": celpy.json_to_cel(value)})
        if isinstance(result, Exception) or not bool(result):
            where = ".".join(path) + rule.get("fieldPath", "")
            errors.append(f"{where}: {rule['message']}")
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                _check_cel(sub, value[name], [*path, name], errors)
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            _check_cel(schema["items"], item, [*path, str(index)], errors)
