"""Pydantic JSON schema -> the ModelJob and Queue CRDs' structural OpenAPI v3 schemas (no refs, titles)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from modeljob.api import v1alpha1_queue
from modeljob.api.v1alpha1 import (
    GROUP,
    KIND,
    PLURAL,
    SERVER_DEFAULT,
    SHORT_NAMES,
    SINGULAR,
    VERSION,
    ModelJobSpec,
)
from modeljob.api.v1alpha1_status import ModelJobStatus

JsonSchema = dict[str, Any]

# Keywords the structural-schema rules of apiextensions.k8s.io/v1 forbid or that mean nothing to
# the API server. `default` is dropped unless the field is marked SERVER_DEFAULT: the operator
# applies documented defaults, and CEL rules such as "loraRank only for LoRA" need to see what the
# user actually wrote.
_DROPPED_KEYS = {"title", "default", "additionalProperties", "$defs", "examples", SERVER_DEFAULT}


def _inline(schema: Any, definitions: JsonSchema) -> Any:
    if isinstance(schema, list):
        return [_inline(item, definitions) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        target = definitions[schema["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        return _inline(merged, definitions)
    any_of = schema.get("anyOf")
    if isinstance(any_of, list) and not schema.get("x-kubernetes-int-or-string"):
        branches = [branch for branch in any_of if branch.get("type") != "null"]
        if len(branches) == 1:  # Optional[X]: the field is simply not required
            rest = {k: v for k, v in schema.items() if k != "anyOf"}
            return _inline({**branches[0], **rest}, definitions)
    result: JsonSchema = {}
    for key, value in schema.items():
        if key in _DROPPED_KEYS:
            continue
        if key == "properties":
            result[key] = {name: _inline(sub, definitions) for name, sub in value.items()}
        else:
            result[key] = _inline(value, definitions)
    if schema.get("type") == "object" and "properties" not in schema:
        # A free-form map (e.g. the pod template): keep it, do not prune it.
        result["x-kubernetes-preserve-unknown-fields"] = True
    if schema.get(SERVER_DEFAULT) and "default" in schema:
        result["default"] = schema["default"]
    return result


def structural_schema(model: type[BaseModel]) -> JsonSchema:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    schema: JsonSchema = _inline(raw, raw.get("$defs", {}))
    return schema


def _status_schema(model: type[BaseModel] = ModelJobStatus) -> JsonSchema:
    schema = structural_schema(model)
    conditions = schema["properties"]["conditions"]
    conditions["x-kubernetes-list-type"] = "map"
    conditions["x-kubernetes-list-map-keys"] = ["type"]
    return schema


# The texts every Kubernetes type gives these fields (as in Kueue's and KAI's CRDs), shortened.
_API_VERSION_HELP = (
    "APIVersion defines the versioned schema of this representation of an object. "
    "More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources"
)
_KIND_HELP = (
    "Kind is a string value representing the REST resource this object represents. "
    "More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"
)


def _crd(
    *,
    names: JsonSchema,
    scope: str,
    columns: list[JsonSchema],
    root: JsonSchema,
) -> JsonSchema:
    """A CustomResourceDefinition of one served, stored version with a status subresource."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{names['plural']}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": names,
            "scope": scope,
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def _object_properties(spec: JsonSchema, status: JsonSchema) -> JsonSchema:
    return {
        "apiVersion": {"type": "string", "description": _API_VERSION_HELP},
        "kind": {"type": "string", "description": _KIND_HELP},
        # The API server refuses anything but `type` here, a description included: `kubectl
        # explain` shows ObjectMeta's own.
        "metadata": {"type": "object"},
        "spec": spec,
        "status": status,
    }


def build_crd() -> JsonSchema:
    """The CustomResourceDefinition of ModelJob, ready to serialise to YAML."""
    return _crd(
        names={
            "kind": KIND,
            "listKind": f"{KIND}List",
            "plural": PLURAL,
            "singular": SINGULAR,
            "shortNames": list(SHORT_NAMES),
            "categories": ["all"],
        },
        scope="Namespaced",
        columns=[
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
            {"name": "Pods", "type": "integer", "jsonPath": ".status.pods"},
            {"name": "GPUs", "type": "integer", "jsonPath": ".status.gpus"},
            {"name": "Nodes", "type": "string", "jsonPath": ".status.nodes"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ],
        root={
            "type": "object",
            "description": "ModelJob: an AI model job sized from the model and the work.",
            "required": ["spec"],
            "properties": _object_properties(structural_schema(ModelJobSpec), _status_schema()),
        },
    )


# One-line summaries the operator writes into status, so `kubectl get mjq` shows every resource's
# numbers in a column each.
_QUEUE_COLUMNS = [
    {"name": "Parent", "type": "string", "jsonPath": ".spec.parent"},
    {"name": "Nominal", "type": "string", "jsonPath": ".status.nominal"},
    {"name": "Used", "type": "string", "jsonPath": ".status.used"},
    {"name": "Borrowed", "type": "string", "jsonPath": ".status.borrowed"},
    {"name": "Pending", "type": "integer", "jsonPath": ".status.pendingJobs"},
    {"name": "Admitted", "type": "integer", "jsonPath": ".status.admittedJobs"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def build_queue_crd() -> JsonSchema:
    """The CustomResourceDefinition of Queue (cluster-scoped), ready to serialise to YAML."""
    queue = v1alpha1_queue
    return _crd(
        names={
            "kind": queue.KIND,
            "listKind": f"{queue.KIND}List",
            "plural": queue.PLURAL,
            "singular": queue.SINGULAR,
            "shortNames": list(queue.SHORT_NAMES),
        },
        scope="Cluster",
        columns=_QUEUE_COLUMNS,
        root={
            "type": "object",
            "description": "Queue: a team's share of the cluster: nominal quota, "
            "borrowing and lending through a tree of queues, order and preemption.",
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.spec) || !has(self.spec.parent)"
                    " || self.spec.parent != self.metadata.name",
                    "message": "a queue cannot be its own parent",
                    "fieldPath": ".spec.parent",
                }
            ],
            "properties": _object_properties(
                structural_schema(queue.QueueSpec), _status_schema(queue.QueueStatus)
            ),
        },
    )
