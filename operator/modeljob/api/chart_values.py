"""The Helm chart's generated files: values.schema.json, the settings block of values.yaml, the CRD templates.

One source of truth: the `settings` values are `modeljob.settings.Settings` (each field camelCased,
nested per section; the Deployment turns `settings.queue.policy` back into `MODELJOB_QUEUE__POLICY`
with Helm's `snakecase` and `upper`), and the CRD templates are `build_crd()` and
`build_queue_crd()`, the same dicts that `crds/` is written from. tests/adapters/test_helm_chart.py
and tests/api/test_queue_crd.py keep the checked-in files equal to what this module renders;
`python -m modeljob.api.chart_values` rewrites them.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from modeljob.api.crd_schema import build_crd, build_queue_crd
from modeljob.core.scoring.registry import setting_name
from modeljob.core.scoring.weights import DEFAULT_WEIGHTS
from modeljob.settings import ENV_NESTED_DELIMITER, ENV_PREFIX, MAX_WEIGHT, ScoringSettings, Settings

CHART = Path(__file__).resolve().parents[3] / "helm" / "modeljob-operator"
SCHEMA_FILE = CHART / "values.schema.json"
VALUES_FILE = CHART / "values.yaml"
CRD_TEMPLATE = CHART / "templates" / "crd.yaml"
QUEUE_CRD_TEMPLATE = CHART / "templates" / "crd-queues.yaml"
BEGIN_SETTINGS = (
    "# --- BEGIN settings (generated from operator/modeljob/settings.py; do not edit by hand) ---\n"
)
END_SETTINGS = "# --- END settings ---\n"
KEEP_ANNOTATION = {"helm.sh/resource-policy": "keep"}
# JSON Schema keywords of pydantic's output that Helm's validator should enforce; the rest
# (titles, `format: path`) say nothing a values file could get wrong.
_KEPT_KEYWORDS = (
    "type",
    "enum",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "description",
    "default",
)

JsonSchema = dict[str, Any]


def camel(snake: str) -> str:
    """`gpu_fragmentation` -> `gpuFragmentation` (the inverse of Helm's `snakecase`)."""
    head, *rest = snake.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _snake(camel_case: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in camel_case)


def env_name(section: str, field: str) -> str:
    """The variable a setting is read from: (`queue`, `aging_per_hour`) -> MODELJOB_QUEUE__AGING_PER_HOUR."""
    return f"{ENV_PREFIX}{section}{ENV_NESTED_DELIMITER}{field}".upper()


def settings_schema() -> JsonSchema:
    """The JSON Schema of `.Values.settings`: every section and field of Settings, camelCased."""
    root = Settings.model_json_schema()
    definitions = root.get("$defs", {})
    sections: dict[str, JsonSchema] = {}
    for section_name, section in Settings.model_fields.items():
        model = section.annotation
        assert isinstance(model, type)
        assert issubclass(model, BaseModel)
        if model is ScoringSettings:
            sections[camel(section_name)] = _scoring_schema()
            continue
        model_schema = definitions[model.__name__]
        sections[camel(section_name)] = {
            "type": "object",
            "description": f"{env_name(section_name, '*')}",
            "additionalProperties": False,
            "properties": {
                camel(name): _field_schema(prop, definitions)
                for name, prop in model_schema["properties"].items()
            },
        }
    return {
        "type": "object",
        "description": "The operator's settings: each becomes the variable MODELJOB_<SECTION>__<FIELD>.",
        "additionalProperties": False,
        "properties": sections,
    }


def _scoring_schema() -> JsonSchema:
    # The scoring section accepts any scorer core/scoring/registry.py finds, so its fields are
    # the registry's, not the pydantic model's.
    return {
        "type": "object",
        "description": f"{env_name('scoring', '*')}: node scorer weights (0 switches one off; not all 0).",
        "additionalProperties": False,
        "properties": {
            camel(setting_name(scorer)): {
                "type": "number",
                "minimum": 0,
                "maximum": MAX_WEIGHT,
                "description": f"Weight of the {scorer.name} node scorer (core/scoring).",
                "default": weight,
            }
            for scorer, weight in DEFAULT_WEIGHTS.named()
        },
    }


def _field_schema(prop: JsonSchema, definitions: dict[str, JsonSchema]) -> JsonSchema:
    resolved = _inline(prop, definitions)
    if "anyOf" in resolved:  # `X | None`: null means "unset", the Deployment then sets nothing
        choices = [_inline(choice, definitions) for choice in resolved["anyOf"]]
        merged: JsonSchema = {}
        types: list[str] = []
        for choice in choices:
            types.append(choice["type"])
            merged.update({k: v for k, v in choice.items() if k in _KEPT_KEYWORDS and k != "type"})
        merged["type"] = types
        merged.update({k: v for k, v in resolved.items() if k in _KEPT_KEYWORDS})
        return merged
    return {k: v for k, v in resolved.items() if k in _KEPT_KEYWORDS}


def _inline(prop: JsonSchema, definitions: dict[str, JsonSchema]) -> JsonSchema:
    if "$ref" not in prop:
        return prop
    target = definitions[prop["$ref"].rsplit("/", 1)[-1]]
    return {**target, **{k: v for k, v in prop.items() if k != "$ref"}}


def chart_schema() -> JsonSchema:
    """values.schema.json: the chart's own values (below) plus `settings` from the Settings model."""
    schema = copy.deepcopy(_CHART_VALUES_SCHEMA)
    schema["properties"]["settings"] = settings_schema()
    return schema


def render_values_schema() -> str:
    return json.dumps(chart_schema(), indent=2) + "\n"


def render_settings_block() -> str:
    """The `settings:` block of values.yaml: every setting with its default and description."""
    lines = [BEGIN_SETTINGS, "settings:\n"]
    for section_name, section in settings_schema()["properties"].items():
        lines.append(f"  # {section['description']}\n")
        lines.append(f"  {section_name}:\n")
        for name, prop in section["properties"].items():
            lines.append(f"    # {env_name(_snake(section_name), _snake(name))}: {prop['description']}\n")
            lines.append(f"    {name}: {json.dumps(prop.get('default'))}\n")
    lines.append(END_SETTINGS)
    return "".join(lines)


def render_values(current: str) -> str:
    """values.yaml with its settings block replaced by `render_settings_block()`."""
    start, end = current.index(BEGIN_SETTINGS), current.index(END_SETTINGS) + len(END_SETTINGS)
    return current[:start] + render_settings_block() + current[end:]


def render_crd_template() -> str:
    """templates/crd.yaml: `build_crd()` (as crds/ has it) behind crds.install, kept on uninstall."""
    crd = build_crd()
    crd["metadata"]["annotations"] = {**crd["metadata"].get("annotations", {}), **KEEP_ANNOTATION}
    return (
        "# Generated from operator/modeljob/api/v1alpha1.py by modeljob.api.chart_values; do not edit.\n"
        "# The CRD of crds/modeljob.dev_modeljobs.yaml; kept on `helm uninstall` (with users' ModelJobs).\n"
        "{{- if .Values.crds.install }}\n" + yaml.safe_dump(crd, sort_keys=False, width=100) + "{{- end }}\n"
    )


def render_queue_crd_template() -> str:
    """templates/crd-queues.yaml: `build_queue_crd()` behind crds.install, kept on uninstall."""
    crd = build_queue_crd()
    crd["metadata"]["annotations"] = {**crd["metadata"].get("annotations", {}), **KEEP_ANNOTATION}
    return (
        "# Generated from operator/modeljob/api/v1alpha1_queue.py by modeljob.api.chart_values; "
        "do not edit.\n"
        "# The CRD of crds/modeljob.dev_queues.yaml; kept on `helm uninstall` (with the Queues).\n"
        "{{- if .Values.crds.install }}\n" + yaml.safe_dump(crd, sort_keys=False, width=100) + "{{- end }}\n"
    )


def write_all() -> None:
    SCHEMA_FILE.write_text(render_values_schema(), encoding="utf-8")
    VALUES_FILE.write_text(render_values(VALUES_FILE.read_text(encoding="utf-8")), encoding="utf-8")
    CRD_TEMPLATE.write_text(render_crd_template(), encoding="utf-8")
    QUEUE_CRD_TEMPLATE.write_text(render_queue_crd_template(), encoding="utf-8")


def _object(description: str, properties: dict[str, JsonSchema], *, closed: bool = True) -> JsonSchema:
    return {
        "type": "object",
        "description": description,
        "additionalProperties": not closed,
        "properties": properties,
    }


def _string(description: str) -> JsonSchema:
    return {"type": "string", "description": description}


def _boolean(description: str) -> JsonSchema:
    return {"type": "boolean", "description": description}


def _free(description: str, kind: str = "object") -> JsonSchema:
    # Kubernetes objects passed through as they are (resources, affinity, ...): the API server
    # validates them, with its own schema, at install.
    return {"type": kind, "description": description}


_CHART_VALUES_SCHEMA: JsonSchema = {
    "$schema": "https://json-schema.org/draft-07/schema#",
    "title": "modeljob-operator values",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "nameOverride": _string("Replaces the chart name in object names."),
        "fullnameOverride": _string("Replaces <release>-<chart> in object names."),
        "replicaCount": {
            "type": "integer",
            "minimum": 0,
            "maximum": 10,
            "description": (
                "Operator pods: a leader and warm standbys (the Lease of settings.leaderElection says "
                "whose loop acts); 0 pauses the operator."
            ),
        },
        "podDisruptionBudget": _object(
            "A PodDisruptionBudget, so a drain never takes the last replica (with 2 or more).",
            {
                "enabled": _boolean("Create it."),
                "minAvailable": {"type": "integer", "minimum": 1, "description": "Replicas a drain keeps."},
            },
        ),
        "podAntiAffinity": {
            "type": "string",
            "enum": ["preferred", "none"],
            "description": "preferred: replicas on different nodes where possible (when affinity is empty).",
        },
        "image": _object(
            "The operator image (the repository's Dockerfile).",
            {
                "repository": {"type": "string", "minLength": 1, "description": "Image repository."},
                "tag": _string("Image tag; empty: the chart's appVersion."),
                "pullPolicy": {"type": "string", "enum": ["Always", "IfNotPresent", "Never"]},
            },
        ),
        "imagePullSecrets": _free("Secrets for pulling the image.", "array"),
        "crds": _object(
            "The ModelJob and Queue CRDs.",
            {
                "install": _boolean(
                    "Install the ModelJob and Queue CRDs (kept on uninstall: users' ModelJobs and "
                    "Queues live in them)."
                )
            },
        ),
        "serviceAccount": _object(
            "The operator's ServiceAccount.",
            {
                "create": _boolean("Create it; false: use serviceAccount.name, which must exist."),
                "name": _string("Its name; empty: the release's full name."),
                "annotations": _free("Annotations on it."),
            },
        ),
        "rbac": _object(
            "The least-privilege ClusterRole and its binding.",
            {"create": _boolean("Create them.")},
        ),
        "podAnnotations": _free("Annotations on the operator pod."),
        "podLabels": _free("Extra labels on the operator pod."),
        "podSecurityContext": _free("The pod's securityContext."),
        "securityContext": _free("The container's securityContext."),
        "resources": _free("The container's resource requests and limits."),
        "nodeSelector": _free("Node selector of the operator pod."),
        "tolerations": _free("Tolerations of the operator pod.", "array"),
        "affinity": _free("Affinity of the operator pod."),
        "priorityClassName": _string("PriorityClass of the operator pod."),
        "service": _object(
            "The Service in front of the extender and /metrics.",
            {
                "type": {"type": "string", "enum": ["ClusterIP", "NodePort", "LoadBalancer"]},
                "annotations": _free("Annotations on the Service."),
            },
        ),
        "networkPolicy": _object(
            "A NetworkPolicy: only the extender's callers reach it; /metrics from metricsFrom.",
            {
                "enabled": _boolean("Create it."),
                "extenderFrom": _free(
                    "NetworkPolicyPeers allowed to call the extender (besides this chart's scheduler).",
                    "array",
                ),
                "metricsFrom": _free(
                    "NetworkPolicyPeers allowed to scrape /metrics; empty: anyone.", "array"
                ),
            },
        ),
        "serviceMonitor": _object(
            "A prometheus-operator ServiceMonitor for /metrics (needs its CRD).",
            {
                "enabled": _boolean("Create it."),
                "interval": {
                    "type": "string",
                    "pattern": "^[0-9]+(ms|s|m|h)$",
                    "description": "Scrape interval.",
                },
                "labels": _free("Labels the Prometheus selects ServiceMonitors by."),
            },
        ),
        "scheduler": _object(
            "A second kube-scheduler (its own profile) that sends accelerator pods to the extender.",
            {
                "enabled": _boolean("Deploy it."),
                "schedulerName": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 63,
                    "description": "The profile's name: pods with this spec.schedulerName use it.",
                },
                "image": _object(
                    "The kube-scheduler image; use the cluster's own minor version.",
                    {
                        "repository": {"type": "string", "minLength": 1},
                        "tag": {"type": "string", "minLength": 1},
                        "pullPolicy": {"type": "string", "enum": ["Always", "IfNotPresent", "Never"]},
                    },
                ),
                "extenderWeight": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": 100,
                    "description": "The extender's weight in kube-scheduler's score (50: hack/extender).",
                },
                "httpTimeout": {"type": "string", "pattern": "^[0-9]+(ms|s)$", "description": "Per call."},
                "resources": _free("The scheduler container's resource requests and limits."),
            },
        ),
    },
}


if __name__ == "__main__":
    write_all()
    sys.stdout.write(
        f"wrote {SCHEMA_FILE}, the settings block of {VALUES_FILE}, {CRD_TEMPLATE}, {QUEUE_CRD_TEMPLATE}\n"
    )
