"""The Queue CRD and model: generated, structural, current, described, and refusing bad quota by field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml
from pydantic import ValidationError

from modeljob.api import chart_values
from modeljob.api.crd_schema import build_queue_crd
from modeljob.api.v1alpha1 import describe_validation_error
from modeljob.api.v1alpha1_queue import DEFAULT_MIN_RUNTIME, QueueOrder, parse_queue
from modeljob.commands.crd import render_queue_crd
from modeljob.core.quota import QuotaRequest, Usage, admit
from modeljob.core.quota_tree import QuotaKey, build_tree
from tests.crd_validation import schema_fields, schema_nodes, validate

ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / "crds" / "modeljob.dev_queues.yaml"
EXAMPLE = ROOT / "crds" / "examples" / "queues" / "two-teams.yaml"
H100 = "NVIDIA-H100-80GB-HBM3"
Manifest = dict[str, Any]


def queue_schema() -> dict[str, Any]:
    schema: dict[str, Any] = build_queue_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def queue_manifest(name: str = "team-a", **spec: Any) -> Manifest:
    """A valid Queue: 8 H100s under research, unless keyword arguments replace spec fields."""
    body: dict[str, Any] = {
        "parent": "research",
        "quota": [{"resource": "nvidia.com/gpu", "products": [H100], "nominal": 8}],
    }
    body.update(spec)
    return {"apiVersion": "modeljob.dev/v1alpha1", "kind": "Queue", "metadata": {"name": name}, "spec": body}


def with_entry(**entry: Any) -> Manifest:
    """A Queue whose first quota entry has the given fields changed."""
    manifest = queue_manifest()
    manifest["spec"]["quota"][0].update(entry)
    return manifest


def schema_errors(manifest: Manifest) -> list[str]:
    return [error.lstrip(".") for error in validate(manifest, queue_schema())]


def model_errors(manifest: Manifest) -> list[str]:
    try:
        parse_queue(manifest)
    except ValidationError as error:
        return describe_validation_error(error)
    return []


# --- generated, current, structural, described --------------------------------------------------


def test_checked_in_queue_crd_is_what_the_models_generate() -> None:
    assert CRD_FILE.read_text(encoding="utf-8") == render_queue_crd(), (
        "crds/modeljob.dev_queues.yaml is stale: run `make crd` and commit the result"
    )


def test_chart_queue_crd_template_is_current() -> None:
    path = chart_values.QUEUE_CRD_TEMPLATE
    assert path.read_text(encoding="utf-8") == chart_values.render_queue_crd_template(), (
        f"{path.relative_to(ROOT)} is stale: run `python -m modeljob.api.chart_values` and commit the result"
    )


def test_the_chart_template_is_the_crds_directory_crd_kept_on_uninstall() -> None:
    text = chart_values.render_queue_crd_template()
    body = text.split("{{- if .Values.crds.install }}\n", 1)[1].rsplit("{{- end }}", 1)[0]
    crd = yaml.safe_load(body)
    assert crd["metadata"].pop("annotations") == {"helm.sh/resource-policy": "keep"}
    assert crd == yaml.safe_load(CRD_FILE.read_text(encoding="utf-8"))


def test_names_scope_and_printer_columns() -> None:
    crd = yaml.safe_load(CRD_FILE.read_text(encoding="utf-8"))
    names, version = crd["spec"]["names"], crd["spec"]["versions"][0]
    assert (crd["metadata"]["name"], crd["spec"]["scope"]) == ("queues.modeljob.dev", "Cluster")
    assert (names["kind"], names["plural"], names["shortNames"]) == ("Queue", "queues", ["mjq"])
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns["Nominal"] == ".status.nominal"
    assert columns["Used"] == ".status.used"
    assert columns["Borrowed"] == ".status.borrowed"
    assert columns["Pending"] == ".status.pendingJobs"
    assert columns["Admitted"] == ".status.admittedJobs"
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert {"nominal", "used", "borrowed", "lent", "pendingJobs", "admittedJobs", "conditions"} <= set(status)
    assert version["subresources"] == {"status": {}}


def test_schema_is_structural() -> None:
    for path, node in schema_nodes(queue_schema()):
        assert "$ref" not in node, path
        assert "additionalProperties" not in node, path
        assert "default" not in node, path  # defaults stay the operator's; CEL sees what was written
        if path.endswith(("/properties", "/anyOf", "/x-kubernetes-validations")) or "/anyOf/" in path:
            continue
        if "properties" in node or "items" in node:
            assert node.get("type") in {"object", "array"}, path
        if path.rsplit("/", 2)[-2:-1] == ["properties"] and "x-kubernetes-int-or-string" not in node:
            assert "type" in node, f"untyped field at {path}"


def test_every_field_has_a_description_for_kubectl_explain() -> None:
    undescribed = [
        path for path, node in schema_fields(queue_schema()) if not node.get("description", "").strip()
    ]
    assert undescribed == ["metadata"], f"fields without a description: {undescribed}"


def test_enum_descriptions_name_every_value() -> None:
    for path, node in schema_fields(queue_schema()):
        for value in node.get("enum", []):
            assert value in node["description"], f"{path}: description does not name {value!r}"


# --- the example and the defaults ----------------------------------------------------------------


def test_the_two_team_example_passes_and_lets_one_team_borrow_the_others_idle_gpus() -> None:
    documents = list(yaml.safe_load_all(EXAMPLE.read_text(encoding="utf-8")))
    assert [schema_errors(document) for document in documents] == [[], [], []]
    queues = [parse_queue(document) for document in documents]
    tree = build_tree([q.spec.to_core(q.metadata.name or "") for q in queues])
    assert tree.problems == {}
    request = QuotaRequest("sweep", "team-a", "team-a", gpus=16, gpu_products=frozenset({H100}))
    decision = admit(request, tree, Usage())
    assert decision.admitted
    assert decision.borrowed == 8


def test_defaults_and_amounts_reach_the_core_in_their_units() -> None:
    queue = parse_queue(
        queue_manifest(
            quota=[
                {"resource": "nvidia.com/gpu", "nominal": "16", "lendingLimit": 4, "borrowingLimit": 8},
                {"resource": "cpu", "nominal": "500m"},
                {"resource": "memory", "nominal": "2Ti"},
            ]
        )
    )
    assert queue.spec.order is QueueOrder.FCFS
    assert queue.spec.weight == 1
    assert queue.spec.preemption.min_runtime is None  # the operator applies DEFAULT_MIN_RUNTIME
    assert DEFAULT_MIN_RUNTIME == "10m"
    core = queue.spec.to_core("team-a")
    assert [(e.key, e.nominal, e.borrowing_limit, e.lending_limit) for e in core.quota] == [
        (QuotaKey("nvidia.com/gpu"), 16, 8, 4),
        (QuotaKey("cpu"), 500, None, None),
        (QuotaKey("memory"), 2 * 2**40, None, None),
    ]


# --- bad input, refused by the API server and the model alike, naming the field ------------------


class Bad(NamedTuple):
    id: str
    manifest: Manifest
    field: str


def _self_parent() -> Manifest:
    return queue_manifest(name="research")


def _two_h100(products: list[str]) -> list[dict[str, Any]]:
    return [
        {"resource": "nvidia.com/gpu", "products": [H100, "NVIDIA-A100-SXM4-80GB"], "nominal": 8},
        {"resource": "nvidia.com/gpu", "products": products, "nominal": 4},
    ]


BAD = [
    Bad("negative-nominal", with_entry(nominal=-1), "spec.quota.0.nominal"),
    Bad("negative-nominal-text", with_entry(nominal="-4"), "spec.quota.0.nominal"),
    Bad("negative-cpu", queue_manifest(quota=[{"resource": "cpu", "nominal": "-2"}]), "spec.quota.0.nominal"),
    Bad("negative-borrowing", with_entry(borrowingLimit=-1), "spec.quota.0.borrowingLimit"),
    Bad("negative-lending", with_entry(lendingLimit="-1"), "spec.quota.0.lendingLimit"),
    Bad("lending-above-nominal", with_entry(lendingLimit=9), "spec.quota.0.lendingLimit"),
    Bad("fraction-of-a-gpu", with_entry(nominal="1.5"), "spec.quota.0.nominal"),
    Bad(
        "products-on-cpu",
        queue_manifest(quota=[{"resource": "cpu", "products": [H100], "nominal": 4}]),
        "spec.quota.0.products",
    ),
    Bad("unknown-order", queue_manifest(order="lifo"), "spec.order"),
    Bad("time-slice-without-order", queue_manifest(timeSlice="1h"), "spec.timeSlice"),
    Bad("time-slice-order-without-slice", queue_manifest(order="time-slice"), "spec.timeSlice"),
    Bad("bad-time-slice", queue_manifest(order="time-slice", timeSlice="an hour"), "spec.timeSlice"),
    Bad(
        "duplicate-entry",
        queue_manifest(quota=[{"resource": "cpu", "nominal": 4}, {"resource": "cpu", "nominal": 8}]),
        "spec.quota",
    ),
    Bad(
        "duplicate-products-reordered",
        queue_manifest(quota=_two_h100(["NVIDIA-A100-SXM4-80GB", H100])),
        "spec.quota",
    ),
    Bad("own-parent", _self_parent(), "spec.parent"),
    Bad("parent-not-a-dns-label", queue_manifest(parent="Team_A"), "spec.parent"),
    Bad("zero-weight", queue_manifest(weight=0), "spec.weight"),
    Bad(
        "unknown-within-queue",
        queue_manifest(preemption={"withinQueue": "Always"}),
        "spec.preemption.withinQueue",
    ),
    Bad(
        "bad-min-runtime",
        queue_manifest(preemption={"minRuntime": "ten minutes"}),
        "spec.preemption.minRuntime",
    ),
]


@pytest.mark.parametrize("case", BAD, ids=lambda c: c.id)
def test_the_crd_refuses_bad_input_naming_the_field(case: Bad) -> None:
    errors = schema_errors(case.manifest)
    assert any(error.startswith(case.field) for error in errors), errors


@pytest.mark.parametrize("case", BAD, ids=lambda c: c.id)
def test_the_model_refuses_what_the_crd_does_naming_the_field(case: Bad) -> None:
    errors = model_errors(case.manifest)
    leaf = case.field.rsplit(".", 1)[-1]
    assert any(error.startswith(case.field) or leaf in error for error in errors), errors


def test_the_model_refuses_an_unknown_field() -> None:
    """The API server prunes it (kubectl's strict field validation refuses it): the model refuses."""
    assert model_errors(queue_manifest(quotas=[])) == ["spec.quotas: unknown field"]


def test_different_products_of_one_resource_are_two_entries_not_a_duplicate() -> None:
    manifest = queue_manifest(quota=_two_h100(["NVIDIA-L40S"]))
    assert schema_errors(manifest) == []
    assert model_errors(manifest) == []


@pytest.mark.parametrize(
    "entry",
    [
        {"resource": "nvidia.com/gpu", "nominal": 0},
        {"resource": "nvidia.com/gpu", "nominal": "16", "lendingLimit": "16", "borrowingLimit": 0},
        {"resource": "cpu", "nominal": "1500m", "lendingLimit": "1"},
        {"resource": "memory", "nominal": "512Gi", "borrowingLimit": "1Ti"},
    ],
    ids=["zero", "lend-all", "cpu-milli", "memory"],
)
def test_good_quota_entries_pass_both(entry: dict[str, Any]) -> None:
    manifest = queue_manifest(quota=[copy.deepcopy(entry)])
    assert schema_errors(manifest) == []
    assert model_errors(manifest) == []
