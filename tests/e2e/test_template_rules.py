"""A template's own rules on the real control plane: its required node affinity and pod anti-affinity
are obeyed or the job waits naming the field; serving replicas spread over nodes; every bound pod's
node satisfies the affinity the API server stored for it (the template's, with the product ANDed in)."""

from __future__ import annotations

import json
from typing import Any

from tests.e2e.kube import Cluster
from tests.e2e.operator_fixtures import Pool, apply, job_pods, model_job, status, wait_phase

REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"
HOST = "kubernetes.io/hostname"


def _node_labels(cluster: Cluster, name: str) -> dict[str, str]:
    labels: dict[str, str] = json.loads(cluster.kubectl("get", "node", name, "-o", "json").stdout)[
        "metadata"
    ]["labels"]
    return labels


def _invalid_because(cluster: Cluster, namespace: str, name: str) -> str:
    invalid = wait_phase(cluster, namespace, name, "Invalid")
    condition = next(c for c in invalid["conditions"] if c["type"] == "Valid")
    assert condition["status"] == "False"
    return str(condition["message"])


def _satisfies(requirement: dict[str, Any], labels: dict[str, str]) -> bool:
    """kubelet's reading of one matchExpressions entry (the operators these tests write)."""
    value, values = labels.get(requirement["key"]), requirement.get("values") or []
    return {
        "In": value in values,
        "NotIn": value not in values,
        "Exists": value is not None,
        "DoesNotExist": value is None,
    }[requirement["operator"]]


def _admitted(cluster: Cluster, pod: dict[str, Any]) -> bool:
    """Would a real kubelet admit ``pod`` on its node: some required term whose expressions all hold."""
    labels = _node_labels(cluster, pod["spec"]["nodeName"])
    required = pod["spec"].get("affinity", {}).get("nodeAffinity", {}).get(REQUIRED, {})
    terms = required.get("nodeSelectorTerms") or []
    return not terms or any(
        term and all(_satisfies(e, labels) for e in term.get("matchExpressions") or []) for term in terms
    )


def _with_affinity(job: dict[str, Any], affinity: dict[str, Any], *, app: str) -> dict[str, Any]:
    template = job["spec"]["template"]
    template["spec"]["affinity"] = affinity
    template.setdefault("metadata", {})["labels"] = {"app": app}
    return job


def _bound_nodes(cluster: Cluster, namespace: str, name: str, replicas: int) -> list[str]:
    wait_phase(cluster, namespace, name, "Running")
    pods = job_pods(cluster, namespace, name)
    assert len(pods) == replicas
    for pod in pods:
        assert _admitted(cluster, pod), f"{pod['metadata']['name']} is on a node its own affinity refuses"
    return sorted(p["spec"]["nodeName"] for p in pods)


def test_a_required_hostname_affinity_puts_the_job_on_that_node_and_nowhere_else(
    cluster: Cluster, namespace: str, pool: Pool, start_operator: Any
) -> None:
    start_operator()
    nodes = pool.add("h100", 3)
    pinned = {
        "nodeAffinity": {
            REQUIRED: {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": HOST, "operator": "In", "values": [nodes[1]]}]}
                ]
            }
        }
    }
    apply(cluster, namespace, _with_affinity(model_job("pinned", pool, gpus=2), pinned, app="pinned"))
    assert _bound_nodes(cluster, namespace, "pinned", 1) == [nodes[1]]


def test_replicas_with_required_anti_affinity_take_a_node_each_or_wait_naming_the_rule(
    cluster: Cluster, namespace: str, pool: Pool, start_operator: Any
) -> None:
    start_operator()
    pool.add("h100", 2)
    apart = {
        "podAntiAffinity": {
            REQUIRED: [{"topologyKey": HOST, "labelSelector": {"matchLabels": {"app": "apart"}}}]
        }
    }
    apply(
        cluster, namespace, _with_affinity(model_job("apart", pool, replicas=2, gpus=1), apart, app="apart")
    )
    assert _bound_nodes(cluster, namespace, "apart", 2) == sorted(pool.nodes), "one replica per node"

    crowd = {
        "podAntiAffinity": {
            REQUIRED: [{"topologyKey": HOST, "labelSelector": {"matchLabels": {"app": "crowd"}}}]
        }
    }
    apply(
        cluster, namespace, _with_affinity(model_job("crowd", pool, replicas=3, gpus=1), crowd, app="crowd")
    )
    never = wait_phase(cluster, namespace, "crowd", "Unschedulable")
    assert f"spec.template.spec.affinity.podAntiAffinity.{REQUIRED}[0]" in never["message"]
    assert job_pods(cluster, namespace, "crowd") == [], "never bound against its own rule"


def test_two_serving_replicas_land_on_two_nodes_when_two_have_room(
    cluster: Cluster, namespace: str, pool: Pool, start_operator: Any
) -> None:
    start_operator()
    pool.add("h100", 2)
    apply(cluster, namespace, model_job("served", pool, replicas=2, gpus=1))
    assert _bound_nodes(cluster, namespace, "served", 2) == sorted(pool.nodes)


def test_a_template_that_names_its_pods_itself_is_invalid_naming_the_field(
    cluster: Cluster, namespace: str, pool: Pool, start_operator: Any
) -> None:
    start_operator()
    pool.add("h100", 1)
    named = model_job("named", pool)
    named["spec"]["template"]["spec"]["hostname"] = "mine"
    unsupported = _with_affinity(
        model_job("picky", pool),
        {
            "podAffinity": {
                REQUIRED: [{"topologyKey": HOST, "namespaceSelector": {"matchLabels": {"team": "a"}}}]
            }
        },
        app="picky",
    )
    apply(cluster, namespace, named, unsupported)
    assert _invalid_because(cluster, namespace, "named").startswith("spec.template.spec.hostname: ")
    picky = _invalid_because(cluster, namespace, "picky")
    assert picky.startswith(
        f"spec.template.spec.affinity.podAffinity.{REQUIRED}[0].namespaceSelector: not supported"
    )
    assert job_pods(cluster, namespace, "picky") == []
    assert not status(cluster, namespace, "picky").get("placement")
