"""A template's affinity and spread read into core values, refused naming the field where the planner
cannot honour them; the pod the operator writes keeps the template's rules with the product ANDed in."""

from __future__ import annotations

import re
from typing import Any

import pytest

from modeljob.adapters import kube_affinity, kube_jobs, kube_pods, kube_writes
from modeljob.adapters.job_fields import ObjectError
from modeljob.core.affinity import SelectorOperator, WhenUnsatisfiable
from modeljob.core.resources import GIB, Resources
from modeljob.core.sizing import Device, size_replica
from tests.operator_builders import H100, container, modeljob_dict

REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"
PREFERRED = "preferredDuringSchedulingIgnoredDuringExecution"


def template(**pod_spec: Any) -> dict[str, Any]:
    return {"metadata": {"labels": {"app": "llm"}}, "spec": {"containers": [container()], **pod_spec}}


def anti(**term: Any) -> dict[str, Any]:
    return {"podAntiAffinity": {REQUIRED: [{"topologyKey": "kubernetes.io/hostname", **term}]}}


def test_a_jobs_rules_are_read_with_the_labels_its_pods_will_carry() -> None:
    affinity = {
        "nodeAffinity": {
            REQUIRED: {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": "kubernetes.io/hostname", "operator": "In", "values": ["n-1"]}
                        ]
                    }
                ]
            },
            PREFERRED: [
                {
                    "weight": 10,
                    "preference": {
                        "matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n-2"]}]
                    },
                }
            ],
        },
        **anti(labelSelector={"matchLabels": {"app": "llm"}}),
    }
    spread = [
        {
            "maxSkew": 1,
            "topologyKey": "zone",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {},
            "matchLabelKeys": ["app"],
        }
    ]
    facts = kube_jobs.job_facts(
        modeljob_dict(template=template(affinity=affinity, topologySpreadConstraints=spread))
    )
    rules = facts.rules
    assert rules.node_affinity.admits("n-1", {"kubernetes.io/hostname": "n-1"})
    assert not rules.node_affinity.admits("n-2", {"kubernetes.io/hostname": "n-2"})
    assert rules.node_affinity.preferred[0].term.fields[0].operator is SelectorOperator.NOT_IN
    (term,) = rules.anti_affinity
    assert term.namespaces == ("ml",), "no namespaces and no namespaceSelector: the pod's own namespace"
    assert term.field == f"spec.template.spec.affinity.podAntiAffinity.{REQUIRED}[0]"
    labels = dict(rules.pod_labels)
    assert labels["app"] == "llm"
    assert labels[kube_pods.LABEL_JOB_UID] == facts.uid
    assert term.selects("ml", labels), "the job's own pods are what its anti-affinity keeps apart"
    (constraint,) = rules.spread
    assert constraint.when_unsatisfiable is WhenUnsatisfiable.SCHEDULE_ANYWAY
    assert constraint.selector is not None
    assert ("app", "llm") in constraint.selector.match_labels, "matchLabelKeys: the pod's own value joins"


@pytest.mark.parametrize(
    ("affinity", "field"),
    [
        (
            anti(namespaceSelector={"matchLabels": {"team": "a"}}),
            f"podAntiAffinity.{REQUIRED}[0].namespaceSelector: not supported",
        ),
        (anti(matchLabelKeys=["app"]), f"podAntiAffinity.{REQUIRED}[0].matchLabelKeys: not supported"),
        (
            {"podAffinity": {REQUIRED: [{"labelSelector": {}}]}},
            f"podAffinity.{REQUIRED}[0].topologyKey: required",
        ),
        (
            {
                "nodeAffinity": {
                    REQUIRED: {
                        "nodeSelectorTerms": [
                            {"matchExpressions": [{"key": "gen", "operator": "Gt", "values": ["new"]}]}
                        ]
                    }
                }
            },
            f"nodeAffinity.{REQUIRED}.nodeSelectorTerms[0].matchExpressions[0].values: Gt takes one integer",
        ),
        (
            {
                "nodeAffinity": {
                    REQUIRED: {
                        "nodeSelectorTerms": [{"matchFields": [{"key": "spec.taints", "operator": "Exists"}]}]
                    }
                }
            },
            f"nodeAffinity.{REQUIRED}.nodeSelectorTerms[0].matchFields[0].key: only metadata.name",
        ),
        (
            {"podAffinity": {PREFERRED: [{"weight": 0, "podAffinityTerm": {}}]}},
            f"podAffinity.{PREFERRED}[0].weight",
        ),
    ],
    ids=[
        "namespace-selector",
        "match-label-keys",
        "no-topology-key",
        "gt-not-integer",
        "match-fields",
        "weight-0",
    ],
)
def test_what_the_planner_cannot_honour_is_refused_naming_the_field(
    affinity: dict[str, Any], field: str
) -> None:
    with pytest.raises(ObjectError, match="^spec.template.spec.affinity." + re.escape(field)):
        kube_jobs.parse_spec(modeljob_dict(template=template(affinity=affinity)))


def test_an_empty_namespace_selector_means_every_namespace() -> None:
    facts = kube_jobs.job_facts(
        modeljob_dict(template=template(affinity=anti(namespaceSelector={}, labelSelector={})))
    )
    assert facts.rules.anti_affinity[0].all_namespaces


def test_a_watched_pods_required_anti_affinity_is_read_and_an_unreadable_one_ignored() -> None:
    pod = {
        "metadata": {"name": "p", "namespace": "ml", "labels": {"app": "db"}},
        "spec": {"affinity": anti(labelSelector={})},
    }
    facts = kube_pods.pod_facts(pod)
    assert facts.labels == {"app": "db"}
    assert facts.anti_affinity[0].namespaces == ("ml",)
    assert (
        kube_affinity.required_anti_affinity({"affinity": {"podAntiAffinity": {REQUIRED: [{}]}}}, "ml") == ()
    )


def _pod(document: dict[str, Any]) -> dict[str, Any]:
    estimate = size_replica(kube_jobs.job_facts(document).shape, Device(80 * GIB, 8))
    return kube_writes.pod_manifest(
        document,
        replica=0,
        name="p-0-abcde",
        requests=Resources(
            cpu_milli=estimate.cpu_milli, memory_bytes=estimate.memory_bytes, gpus=estimate.gpus
        ),
        layout=kube_writes.PodLayout.of(estimate),
        accelerator="nvidia.com/gpu",
        product=H100,
        scheduler_name="modeljob",
        product_label="nvidia.com/gpu.product",
    )


def test_the_product_is_anded_into_each_term_and_an_empty_term_still_matches_no_node() -> None:
    pinned = {
        "matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["gpu-h100-1"]}]
    }
    affinity = {"nodeAffinity": {REQUIRED: {"nodeSelectorTerms": [pinned, {}]}}}
    pod = _pod(modeljob_dict(template=template(affinity=affinity)))
    terms = pod["spec"]["affinity"]["nodeAffinity"][REQUIRED]["nodeSelectorTerms"]
    product = {"key": "nvidia.com/gpu.product", "operator": "In", "values": [H100]}
    assert terms == [{"matchExpressions": [*pinned["matchExpressions"], product]}, {}]
    # the pod the operator writes is read back as the rule the planner placed it by
    rules = kube_affinity.template_rules(pod["spec"], namespace="ml", pod_labels={})
    labels = {"kubernetes.io/hostname": "gpu-h100-1", "nvidia.com/gpu.product": H100}
    assert rules.node_affinity.admits("gpu-h100-1", labels)


def test_without_a_template_affinity_the_product_is_the_one_term() -> None:
    terms = _pod(modeljob_dict(template=template()))["spec"]["affinity"]["nodeAffinity"][REQUIRED][
        "nodeSelectorTerms"
    ]
    assert terms == [
        {"matchExpressions": [{"key": "nvidia.com/gpu.product", "operator": "In", "values": [H100]}]}
    ]
