"""Which pods the extender's filter may shortlist: those whose kube-scheduler scores do not depend on
the nodes scored, as far as the pod's spec shows."""

from __future__ import annotations

from typing import Any

import pytest

from modeljob.adapters import kube_pods
from modeljob.adapters.extender.shortlist_rules import pod_reason
from tests.operator_builders import container, pod_dict

TERM = {"labelSelector": {"matchLabels": {"app": "x"}}, "topologyKey": "kubernetes.io/hostname"}


def gpu_pod(**spec: Any) -> dict[str, Any]:
    pod = pod_dict("p", phase="Pending", containers=[container(limits={"nvidia.com/gpu": "1"})])
    pod["spec"].update(spec)
    return pod


def owned_by(kind: str, *, controller: bool = True) -> dict[str, Any]:
    pod = gpu_pod()
    pod["metadata"]["ownerReferences"] = [{"kind": kind, "name": "o", "uid": "u", "controller": controller}]
    return pod


def test_a_plain_gpu_pod_and_one_pinned_by_required_node_affinity_may_be_shortlisted() -> None:
    required = {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "gpu", "operator": "In", "values": ["h100"]}]}]
    }
    assert pod_reason(gpu_pod()) is None
    assert (
        pod_reason(
            gpu_pod(affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": required}})
        )
        is None
    )
    assert pod_reason(owned_by("Job")) is None  # kube-scheduler does not spread a Job's pods by default


@pytest.mark.parametrize(
    ("pod", "reason"),
    [
        (
            gpu_pod(
                affinity={
                    "nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1}]}
                }
            ),
            "preferred node affinity",
        ),
        (
            gpu_pod(affinity={"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [TERM]}}),
            "pod affinity",
        ),
        (
            gpu_pod(
                affinity={
                    "podAffinity": {
                        "preferredDuringSchedulingIgnoredDuringExecution": [
                            {"weight": 1, "podAffinityTerm": TERM}
                        ]
                    }
                }
            ),
            "pod affinity",
        ),
        (gpu_pod(topologySpreadConstraints=[{"maxSkew": 1, "topologyKey": "zone"}]), "spreads over topology"),
        (gpu_pod(resourceClaims=[{"name": "gpu"}]), "claims resources"),
        (owned_by("ReplicaSet"), "ReplicaSet"),
        (owned_by("StatefulSet"), "StatefulSet"),
    ],
)
def test_what_makes_kube_schedulers_scores_depend_on_the_nodes_it_scores(
    pod: dict[str, Any], reason: str
) -> None:
    found = pod_reason(pod)
    assert found is not None
    assert reason in found


def test_a_modeljobs_pod_is_spread_by_default_for_its_jobs_headless_service() -> None:
    pod = gpu_pod()
    pod["metadata"]["labels"] = {"modeljob.dev/job-uid": "u-1"}
    assert "headless Service" in (pod_reason(pod) or "")


def test_a_malformed_affinity_is_no_reason_and_no_crash() -> None:
    assert pod_reason(gpu_pod(affinity={"nodeAffinity": "?", "podAffinity": ["?"]})) is None


def test_an_owner_that_is_not_the_controller_does_not_spread_the_pod() -> None:
    assert pod_reason(owned_by("ReplicaSet", controller=False)) is None


def test_a_watched_pod_keeps_the_terms_interpodaffinity_scores_other_pods_by() -> None:
    """Its required and preferred pod affinity and its preferred anti-affinity, each looking in the
    pod's own namespace unless it names others; not its required anti-affinity (a filter only)."""
    weighted = [{"weight": 10, "podAffinityTerm": TERM}]
    pod = gpu_pod(
        affinity={
            "podAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [TERM],
                "preferredDuringSchedulingIgnoredDuringExecution": weighted,
            },
            "podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [{**TERM, "namespaces": ["other"]}],
                "preferredDuringSchedulingIgnoredDuringExecution": weighted,
            },
        }
    )
    terms = kube_pods.pod_facts(pod).scoring_terms
    assert [t.field.rsplit(".", 1)[-1] for t in terms] == [
        "requiredDuringSchedulingIgnoredDuringExecution[0]",
        "preferredDuringSchedulingIgnoredDuringExecution[0]",
        "preferredDuringSchedulingIgnoredDuringExecution[0]",
    ]
    assert all(t.selects("ml", {"app": "x"}) for t in terms)
    assert not any(t.selects("other", {"app": "x"}) or t.selects("ml", {"app": "y"}) for t in terms)
    assert kube_pods.pod_facts(gpu_pod()).scoring_terms == ()


def test_a_term_the_extender_cannot_read_exactly_selects_more_pods_never_fewer() -> None:
    chosen = {**TERM, "namespaceSelector": {"matchLabels": {"team": "a"}}, "matchLabelKeys": ["v"]}
    broken = {"labelSelector": {"matchExpressions": [{"key": "app", "operator": "Gt"}]}}
    pod = gpu_pod(
        affinity={"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [chosen, broken]}}
    )
    by_namespace, anything = kube_pods.pod_facts(pod).scoring_terms
    assert by_namespace.selects("any-namespace", {"app": "x"})
    assert not by_namespace.selects("any-namespace", {"app": "y"})  # its labelSelector still holds
    assert anything.selects("any-namespace", {})
