"""The CRD is generated from the API models, structural, current, and rejects bad manifests by field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from modeljob.api.quantities import BYTES_FORMS, CPU_FORMS, DURATION_FORMS, PARAMETERS_FORMS
from modeljob.commands.crd import render_crd
from tests.crd_validation import crd_schema, schema_fields, schema_nodes, validate
from tests.manifests import BAD_MANIFESTS, bad_manifest, make_job_manifest, with_field

ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / "crds" / "modeljob.dev_modeljobs.yaml"
EXAMPLES = sorted((ROOT / "crds" / "examples").glob("*.yaml"))


def test_checked_in_crd_is_what_the_models_generate() -> None:
    assert CRD_FILE.read_text(encoding="utf-8") == render_crd(), (
        "crds/modeljob.dev_modeljobs.yaml is stale: run `make crd` and commit the result"
    )


def test_schema_is_structural() -> None:
    """No $ref, no titles or defaults, every property typed (or int-or-string / preserve-unknown)."""
    for path, node in schema_nodes(crd_schema()):
        assert "$ref" not in node, path
        assert "additionalProperties" not in node, path
        if path.endswith(("/properties", "/anyOf")) or "/anyOf/" in path:
            continue
        if "properties" in node or "items" in node:
            assert node.get("type") in {"object", "array"}, path
        if path.rsplit("/", 2)[-2:-1] == ["properties"] and "x-kubernetes-int-or-string" not in node:
            assert "type" in node, f"untyped field at {path}"


def test_every_field_has_a_description_for_kubectl_explain() -> None:
    undescribed = [
        path for path, node in schema_fields(crd_schema()) if not node.get("description", "").strip()
    ]
    # The API server forbids a description on the root metadata; kubectl shows ObjectMeta's own.
    assert undescribed == ["metadata"], f"fields without a description: {undescribed}"


def test_enum_descriptions_name_every_value() -> None:
    for path, node in schema_fields(crd_schema()):
        for value in node.get("enum", []):
            assert value in node["description"], f"{path}: description does not name {value!r}"


def test_replicas_defaults_to_one_so_the_printer_column_is_never_blank() -> None:
    crd = yaml.safe_load(CRD_FILE.read_text(encoding="utf-8"))
    version = crd["spec"]["versions"][0]
    column = next(c for c in version["additionalPrinterColumns"] if c["name"] == "Replicas")
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert column["jsonPath"] == ".spec.replicas"
    assert spec["properties"]["replicas"]["default"] == 1


def test_only_replicas_carries_a_server_side_default() -> None:
    """Other defaults stay the operator's, so CEL rules see what the user wrote."""
    defaulted = [path for path, node in schema_fields(crd_schema()) if "default" in node]
    assert defaulted == ["spec.replicas"]


@pytest.mark.parametrize(
    ("path", "value", "forms"),
    [
        ("spec.model.parameters", "-7B", PARAMETERS_FORMS),
        ("spec.model.parameters", "8b", PARAMETERS_FORMS),
        ("spec.model.parameters", "8", PARAMETERS_FORMS),
        ("spec.model.parameters", 8, PARAMETERS_FORMS),
        ("spec.model.parameters", "1e20", PARAMETERS_FORMS),
        ("spec.model.activeParameters", "12.9 B", PARAMETERS_FORMS),
        ("spec.accelerator.memoryPerDevice", "80GB", BYTES_FORMS),
        ("spec.resources.cpu", "two", CPU_FORMS),
        ("spec.resources.cpu", -1, CPU_FORMS),
        ("spec.resources.memory", "64 GiB", BYTES_FORMS),
        ("spec.resources.ephemeralStorage", "100GB", BYTES_FORMS),
        ("spec.scheduling.expectedDuration", "2 hours", DURATION_FORMS),
    ],
    ids=str,
)
def test_a_malformed_written_form_is_answered_with_a_sentence_not_a_regex(
    path: str, value: object, forms: str
) -> None:
    manifest = with_field(make_job_manifest(parameters="70B"), path, value)
    if path == "spec.model.activeParameters":
        manifest["spec"]["model"]["parameters"] = "46.7B"
    assert validate(manifest) == [f"{path}: {path} must be {forms}"]


def test_no_written_form_is_checked_by_an_openapi_pattern() -> None:
    """The API server answers a failed `pattern` with the expression; CEL answers with a sentence."""
    for path, node in schema_fields(crd_schema()):
        if node.get("x-kubernetes-int-or-string") or node.get("type") == "string":
            if path in {
                "spec.accelerator.resourceName",
                "spec.scheduling.queue",
                "spec.scheduling.topology.key",
            }:
                continue  # names, answered as Kubernetes answers names
            assert "pattern" not in node, path


def test_printer_columns_and_short_name() -> None:
    crd = yaml.safe_load(CRD_FILE.read_text(encoding="utf-8"))
    version = crd["spec"]["versions"][0]
    assert [c["name"] for c in version["additionalPrinterColumns"]] == [
        "Phase",
        "Replicas",
        "Pods",
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
    "parameters", [7000000000, "70.6B", "405e9", "560M", "1.5T", "1500K", "100T", "0.5B"], ids=str
)
def test_parameter_count_forms_are_accepted(parameters: object) -> None:
    assert validate(make_job_manifest(parameters=parameters)) == []


@pytest.mark.parametrize("case", BAD_MANIFESTS, ids=lambda c: c.id)
def test_schema_rejects_bad_manifest_naming_the_field(case: Any) -> None:
    errors = validate(bad_manifest(case))
    assert errors, f"{case.id} was accepted"
    assert any(error.startswith(case.field) for error in errors), errors


@pytest.mark.parametrize("port", [1, 29501, 65535], ids=str)
def test_a_rendezvous_port_within_1_to_65535_is_accepted(port: int) -> None:
    # Ports outside are in BAD_MANIFESTS: refused by the schema and the API server, naming the field.
    assert validate(with_field(make_job_manifest(), "spec.rendezvous.port", port)) == []
