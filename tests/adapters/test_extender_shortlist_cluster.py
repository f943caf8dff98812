"""The shortlist's cluster-wide rules, through the filter verb: what the cluster holds besides the
pod (Services, running pods' affinity terms, PreferNoSchedule taints) turns it off for the pods
kube-scheduler would score differently over fewer nodes, and for those alone.

The cluster is tests/adapters/test_extender_routes.serve's: a 1-GPU pod fits gpu-a, gpu-b and
gpu-c, and the shortlist keeps gpu-a and gpu-c (the empty gpu-b trails them by more than
kube-scheduler's plugins can make up). Passing all three is the shortlist off.
"""

from __future__ import annotations

from typing import Any

import pytest

from modeljob.adapters import kube_pods
from modeljob.adapters.extender.scoring_inputs import ServiceSelector, service_selector
from modeljob.core.cluster_state import Taint, TaintEffect
from tests.adapters.test_extender_routes import FILTER, Running, args, gpu_pod, serve
from tests.operator_builders import make_node, make_pod, pod_dict

FITS = ("gpu-a", "gpu-b", "gpu-c")
SHORTLISTED = ["gpu-a", "gpu-c"]
EVERY_NODE = list(FITS)
HOSTNAME = "kubernetes.io/hostname"


def labelled(name: str, namespace: str = "ml", **labels: str) -> dict[str, Any]:
    pod = gpu_pod(name)
    pod["metadata"].update(namespace=namespace, labels=dict(labels))
    return pod


def passed(running: Running, pod: dict[str, Any]) -> list[str]:
    status, reply = running.post(FILTER, args(pod, *FITS, "cpu-0"))
    assert status == 200, reply
    return list(reply["NodeNames"])


@pytest.fixture
def running() -> Any:
    yield from serve(shortlist=True)


# --- Services: kube-scheduler's default spreading (helper.DefaultSelector) ---------------------


def test_a_service_that_selects_the_pod_turns_the_shortlist_off_for_that_pod_only(running: Running) -> None:
    web, batch = labelled("web-0", app="web", tier="front"), labelled("batch-0", app="batch")
    running.cache.service_event("ADDED", ServiceSelector("ml", "web", {"app": "web"}), ("ml", "web"))
    assert passed(running, web) == EVERY_NODE
    assert passed(running, batch) == SHORTLISTED
    running.cache.service_event("DELETED", None, ("ml", "web"))
    assert passed(running, web) == SHORTLISTED


@pytest.mark.parametrize(
    "service",
    [
        {"metadata": {"namespace": "other", "name": "web"}, "spec": {"selector": {"app": "web"}}},
        {"metadata": {"namespace": "ml", "name": "more"}, "spec": {"selector": {"app": "web", "v": "2"}}},
        {"metadata": {"namespace": "ml", "name": "external"}, "spec": {"type": "ExternalName"}},
        {"metadata": {"namespace": "ml", "name": "empty"}, "spec": {"selector": {}}},
    ],
    ids=["another-namespace", "selects-other-labels", "no-selector", "empty-selector"],
)
def test_a_service_that_does_not_spread_the_pod_leaves_the_shortlist_on(
    running: Running, service: dict[str, Any]
) -> None:
    """kube-scheduler spreads by the Services of the pod's namespace whose selector matches its
    labels; a nil selector selects nothing, an empty one adds nothing to spread by."""
    running.cache.replace_services([service_selector(service)])
    assert passed(running, labelled("web-0", app="web")) == SHORTLISTED


def test_until_services_are_listed_the_shortlist_is_off() -> None:
    for running in serve(shortlist=True, services=False):
        assert passed(running, labelled("web-0", app="web")) == EVERY_NODE
        running.cache.replace_services([])
        assert passed(running, labelled("web-0", app="web")) == SHORTLISTED


# --- running pods' affinity terms: InterPodAffinity ---------------------------------------------


def term(namespace: str | None = None, **labels: str) -> dict[str, Any]:
    found: dict[str, Any] = {"labelSelector": {"matchLabels": dict(labels)}, "topologyKey": HOSTNAME}
    if namespace is not None:
        found["namespaces"] = [namespace]
    return found


def running_pod(name: str, namespace: str = "ml", **affinity: Any) -> Any:
    """A pod already on gpu-b, with these affinity rules, as the pod watch translates it."""
    return kube_pods.pod_facts(pod_dict(name, namespace=namespace, node="gpu-b", affinity=affinity))


def preferred(kind: str, selected: dict[str, Any]) -> dict[str, Any]:
    return {
        kind: {
            "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 50, "podAffinityTerm": selected}]
        }
    }


def add(running: Running, pod: Any) -> None:
    running.cache.pod_event("ADDED", pod, pod.key)


def test_a_running_pods_preferred_anti_affinity_turns_the_shortlist_off_only_for_pods_it_selects(
    running: Running,
) -> None:
    avoids_web = running_pod("avoids-web", **preferred("podAntiAffinity", term(app="web")))
    add(running, avoids_web)
    assert passed(running, labelled("batch-0", app="batch")) == SHORTLISTED
    assert passed(running, labelled("web-0", app="web")) == EVERY_NODE
    running.cache.pod_event("DELETED", None, avoids_web.key)
    assert passed(running, labelled("web-0", app="web")) == SHORTLISTED


@pytest.mark.parametrize(
    ("namespace", "affinity", "shortlisted"),
    [
        ("ml", preferred("podAffinity", term(app="web")), False),
        ("ml", {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term(app="web")]}}, False),
        # Required anti-affinity only filters: kube-scheduler does not score by it.
        (
            "ml",
            {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term(app="web")]}},
            True,
        ),
        # A term looks in its pod's own namespace unless it names others.
        ("other", preferred("podAffinity", term(app="web")), True),
        ("ml", preferred("podAffinity", term(namespace="other", app="web")), True),
        ("other", preferred("podAffinity", term(namespace="ml", app="web")), False),
        ("other", preferred("podAffinity", {**term(app="web"), "namespaceSelector": {}}), False),
        # Namespaces' labels are not watched: a namespaceSelector with terms may select any.
        (
            "other",
            preferred("podAffinity", {**term(app="web"), "namespaceSelector": {"matchLabels": {"x": "y"}}}),
            False,
        ),
        # ... and a term that cannot be read is taken as selecting every pod.
        ("ml", preferred("podAffinity", {"labelSelector": {"matchLabels": {"app": "batch"}}}), False),
    ],
    ids=[
        "preferred-affinity",
        "required-affinity",
        "required-anti-affinity",
        "in-its-own-namespace",
        "names-another-namespace",
        "names-the-pods-namespace",
        "every-namespace",
        "namespace-selector",
        "unreadable",
    ],
)
def test_which_running_pods_terms_weigh_on_the_pod(
    running: Running, namespace: str, affinity: dict[str, Any], shortlisted: bool
) -> None:
    add(running, running_pod("stating", namespace=namespace, **affinity))
    assert passed(running, labelled("web-0", app="web")) == (SHORTLISTED if shortlisted else EVERY_NODE)


def test_a_relisted_pod_watch_keeps_the_terms_that_select_the_pod(running: Running) -> None:
    holds_six = make_pod("running", node="gpu-a", gpus=6)
    attracts = running_pod("attracts-web", **preferred("podAffinity", term(app="web")))
    running.cache.replace_pods([holds_six, attracts])
    assert passed(running, labelled("web-0", app="web")) == EVERY_NODE
    running.cache.replace_pods([holds_six])
    assert passed(running, labelled("web-0", app="web")) == SHORTLISTED


# --- PreferNoSchedule taints: TaintToleration ---------------------------------------------------


def taint_node(running: Running, name: str, *taints: Taint) -> None:
    node = make_node(name, gpus={"gpu-c": 1, "cpu-0": 0}.get(name, 8), taints=taints)
    running.cache.node_event("MODIFIED", node, ("", name))


PREFER = Taint("dedicated", TaintEffect.PREFER_NO_SCHEDULE, "ml")


def tolerating(*tolerations: dict[str, str]) -> dict[str, Any]:
    pod = gpu_pod("tolerant")
    pod["spec"]["tolerations"] = list(tolerations)
    return pod


@pytest.mark.parametrize(
    ("toleration", "shortlisted"),
    [
        ({"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "PreferNoSchedule"}, True),
        ({"key": "dedicated", "value": "ml"}, True),  # no operator is Equal, no effect every effect
        ({"key": "dedicated", "operator": "Exists"}, True),
        ({"operator": "Exists"}, True),  # an empty key with Exists tolerates every taint
        ({"key": "dedicated", "operator": "Equal", "value": "other"}, False),
        ({"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}, False),
        ({"key": "other", "operator": "Exists"}, False),
        ({"key": "dedicated", "operator": "Gt", "value": "1"}, False),  # counted as not tolerating
    ],
    ids=["equal", "defaults", "exists", "exists-any-key", "other-value", "other-effect", "other-key", "gt"],
)
def test_a_prefer_no_schedule_taint_on_a_node_that_fits_turns_the_shortlist_off_unless_tolerated(
    running: Running, toleration: dict[str, str], shortlisted: bool
) -> None:
    taint_node(running, "gpu-b", PREFER)
    assert passed(running, gpu_pod("intolerant")) == EVERY_NODE
    assert passed(running, tolerating(toleration)) == (SHORTLISTED if shortlisted else EVERY_NODE)
    taint_node(running, "gpu-b")
    assert passed(running, gpu_pod("intolerant")) == SHORTLISTED


def test_a_prefer_no_schedule_taint_on_a_node_that_does_not_fit_the_pod_changes_nothing(
    running: Running,
) -> None:
    """TaintToleration scores only the nodes it is given: a CPU node never is for a GPU pod."""
    taint_node(running, "cpu-0", PREFER)
    assert passed(running, gpu_pod("intolerant")) == SHORTLISTED
    running.cache.replace_nodes(
        [make_node("gpu-a"), make_node("gpu-b", taints=(PREFER,)), make_node("gpu-c", gpus=1)]
    )
    assert passed(running, gpu_pod("intolerant")) == EVERY_NODE
