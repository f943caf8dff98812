"""The CRD is generated from the API models, structural, current, and rejects bad manifests by field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from modeljob.commands.crd import render_crd
from tests.crd_validation import crd_schema, validate
from tests.manifests import BAD_MANIFESTS, bad_manifest, make_job_manifest

ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / "crds" / "modeljob.dev_modeljobs.yaml"
EXAMPLES = sorted((ROOT / "crds" / "examples").glob("*.yaml"))


def test_checked_in_crd_is_what_the_models_generate() -> None:
    assert CRD_FILE.read_text(encoding="utf-8") == render_crd(), (
        "crds/modeljob.dev_modeljobs.yaml is stale: run `make crd` and commit the result"
    )


def _walk(schema: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    nodes: list[tuple[str, dict[str, Any]]] = []
    if isinstance(schema, dict):
        nodes.append((path, schema))
        for key, value in schema.items():
            nodes.extend(_walk(value, f"{path}/{key}"))
    elif isinstance(schema, list):
        for index, value in enumerate(schema):
            nodes.extend(_walk(value, f"{path}/{index}"))
    return nodes


def test_schema_is_structural() -> None:
    """No $ref, no titles or defaults, every property typed (or int-or-string / preserve-unknown)."""
    for path, node in _walk(crd_schema()):
        assert "$ref" not in node, path
        assert "additionalProperties" not in node, path
        if path.endswith(("/properties", "/anyOf")) or "/anyOf/" in path:
            continue
        if "properties" in node or "items" in node:
            assert node.get("type") in {"object", "array"}, path
        if path.rsplit("/", 2)[-2:-1] == ["properties"] and "x-kubernetes-int-or-string" not in node:
            assert "type" in node, f"untyped field at {path}"


def test_printer_columns_and_short_name() -> None:
    crd = yaml.safe_load(CRD_FILE.read_text(encoding="utf-8"))
    version = crd["spec"]["versions"][0]
    assert [c["name"] for c in version["additionalPrinterColumns"]] == [
        "Phase",
        "Replicas",
        "GPUs",
        "Nodes",
        "Age",
    ]
    assert crd["spec"]["names"]["shortNames"] == ["mj"]
    assert version["subresources"] == {"status": {}}


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_examples_pass_the_schema(example: Path) -> None:
    for document in yaml.safe_load_all(example.read_text(encoding="utf-8")):
        assert validate(document) == []


@pytest.mark.parametrize(
    "parameters", [7000000000, "70.6B", "405e9", "560M", "1.5T", "125K", "100T"], ids=str
)
def test_parameter_count_forms_are_accepted(parameters: object) -> None:
    assert validate(make_job_manifest(parameters=parameters)) == []


@pytest.mark.parametrize("case", BAD_MANIFESTS, ids=lambda c: c.id)
def test_schema_rejects_bad_manifest_naming_the_field(case: Any) -> None:
    errors = validate(bad_manifest(case))
    assert errors, f"{case.id} was accepted"
    assert any(error.startswith(case.field) for error in errors), errors
