"""Same decisions: for one cluster state, the extender (over HTTP) and the operator's scheduling cycle
filter and rank nodes identically, and pick the same node for the same pod.

The operator side is `core.scheduling_cycle.run_cycle` on a ModelJob; the extender side is the pod
that cycle would create (`kube_writes.pod_manifest`) sent to POST /filter and /prioritize as
kube-scheduler sends it, after kube-scheduler's own NodeAffinity has kept the nodes of the product
the pod is pinned to. Both use DEFAULT_WEIGHTS, the operator's default scoring settings.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from modeljob.adapters import kube_pods, kube_writes
from modeljob.adapters.extender import shortlist_rules
from modeljob.adapters.extender.cache import ClusterCache
from modeljob.adapters.extender.metrics import ExtenderMetrics
from modeljob.adapters.extender.routes import ExtenderService, build_app
from modeljob.adapters.extender.server import ExtenderServer
from modeljob.adapters.extender.settings import ExtenderSettings
from modeljob.core.cluster_state import NodeFacts, PodFacts, account
from modeljob.core.fragmentation import compile_workload
from modeljob.core.job_state import JobFacts
from modeljob.core.jobs import Overrides
from modeljob.core.nodes import build_node_table
from modeljob.core.scheduling_cycle import CycleSettings, run_cycle
from modeljob.core.scoring.filters import filter_nodes
from modeljob.core.scoring.ranking import ScoringContext, score_rows
from modeljob.core.scoring.weights import DEFAULT_WEIGHTS, ScoringWeights
from modeljob.core.steps import Place, Wait
from tests.operator_builders import H100, L4, at, make_job, make_node, make_pod, modeljob_dict

PRODUCT_LABEL = "nvidia.com/gpu.product"


def with_gpus(job: JobFacts, gpus: int) -> JobFacts:
    return replace(job, shape=replace(job.shape, overrides=Overrides(gpus=gpus)))


class Extender:
    """The real HTTP server over a cache holding exactly the operator's nodes and pods."""

    def __init__(self, nodes: Sequence[NodeFacts], pods: Sequence[PodFacts], weights: ScoringWeights) -> None:
        self.cache = ClusterCache(assume_seconds=30)
        self.cache.replace_nodes(nodes)
        self.cache.replace_pods(pods)
        self.cache.replace_services([])
        service = ExtenderService(
            cache=self.cache,
            weights=weights,
            metrics=ExtenderMetrics(),
            settings=ExtenderSettings(shortlist=True),
            bind=lambda *_: None,
            read_pod=lambda *_: {},
        )
        self.server = ExtenderServer(build_app(service), host="127.0.0.1", port=0)

    def __enter__(self) -> Extender:
        self.server.start_in_thread()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.stop_thread()

    def post(self, verb: str, document: dict[str, Any]) -> Any:
        connection = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=30)
        try:
            connection.request("POST", f"/scheduler/{verb}", body=json.dumps(document))
            response = connection.getresponse()
            assert response.status == 200
            return json.loads(response.read())
        finally:
            connection.close()


def cluster(
    usage: Sequence[int], l4_usage: Sequence[int], cpu_nodes: int
) -> tuple[list[NodeFacts], list[PodFacts]]:
    """H100 and L4 nodes with ``usage`` GPUs taken by running pods, plus CPU-only nodes."""
    nodes = [make_node(f"gpu-h100-{i}") for i in range(len(usage))]
    nodes += [
        make_node(f"gpu-l4-{i}", gpus=4, product=L4, memory_gib=24, cpu_milli=48_000)
        for i in range(len(l4_usage))
    ]
    nodes += [make_node(f"cpu-{i}", gpus=0) for i in range(cpu_nodes)]
    pods = [
        make_pod(
            f"running-h100-{i}", namespace="team", node=f"gpu-h100-{i}", gpus=used, cpu_milli=4000 * used
        )
        for i, used in enumerate(usage)
        if used
    ]
    pods += [
        make_pod(f"running-l4-{i}", namespace="team", node=f"gpu-l4-{i}", gpus=used, cpu_milli=2000 * used)
        for i, used in enumerate(l4_usage)
        if used
    ]
    return nodes, pods


def check_same_decision(
    nodes: list[NodeFacts], pods: list[PodFacts], job: JobFacts, weights: ScoringWeights = DEFAULT_WEIGHTS
) -> None:
    result = run_cycle([job], nodes, pods, now=at(1000), settings=CycleSettings(weights=weights))
    [outcome] = result.steps
    candidate = outcome.candidate
    assert candidate is not None, outcome.message
    product = candidate.node_type.product or None
    pod = kube_writes.pod_manifest(
        modeljob_dict(),
        replica=0,
        name=f"{job.name}-0-abcde",
        requests=candidate.request.resources,
        layout=kube_writes.PodLayout.of(candidate.estimate),
        accelerator=candidate.node_type.accelerator,
        product=product,
        scheduler_name="default-scheduler",
        product_label=PRODUCT_LABEL,
    )
    # kube-scheduler's NodeAffinity plugin: the pod is pinned to the product it was sized for.
    affine = [n.name for n in nodes if product is None or n.view.gpu_product == product]
    table = build_node_table(account(sorted(nodes, key=lambda n: n.name), pods))
    feasible = {table.names[r] for r in np.flatnonzero(filter_nodes(table, candidate.request).feasible)}
    fits = [name for name in affine if name in feasible]
    with Extender(nodes, pods, weights) as extender:
        # The scores of every node that fits (the next filter forgets where this put the pod).
        every = extender.post("prioritize", {"Pod": pod, "NodeNames": fits}) if len(fits) > 1 else []
        filtered = extender.post("filter", {"Pod": pod, "Nodes": None, "NodeNames": affine})
        passed = filtered["NodeNames"]
        if candidate.pods_per_replica > 1:
            # A replica that spans nodes (8 GPUs on 4-GPU nodes): the operator places its group
            # whole; the extender refuses every node for one pod of it, never half a group.
            assert passed == []
            assert set(filtered["FailedAndUnresolvableNodes"]) == set(affine)
            return

        # The filter is the core's filter, less the nodes that trail the best by more than
        # kube-scheduler's own plugins can make up (3 points at the default settings).
        # A ModelJob's pod is selected by its job's headless Service, so kube-scheduler spreads it
        # by default and its scores depend on the nodes scored: every node that fits passes, with
        # the shortlist on (as here) or off (tests/adapters/test_extender_routes.py has the shortlist).
        assert shortlist_rules.pod_reason(pod) is not None
        assert passed == fits, every

        if not isinstance(outcome, Place):
            assert isinstance(outcome, Wait)
            assert passed == [], "the operator waits: no node fits, so the extender passes none"
            return
        [planned] = outcome.placement
        if len(passed) == 1:  # kube-scheduler does not call prioritize for a single node
            assert passed == [planned.node]
            return
        reply = extender.post("prioritize", {"Pod": pod, "NodeNames": passed})
        listed = {entry["Host"]: entry["Score"] for entry in reply}
        scores = {name: listed.get(name, 0) for name in passed}  # a node left out scores 0
        # Same workload for FGD: the extender learns from the pods what the cycle learns from the queue.
        assert extender.cache.workload(kube_pods.pod_facts(pod)) == result.workload
        # And the same CPU and memory per GPU for cpu-balance.
        assert extender.cache.host_demand(kube_pods.pod_facts(pod)) == result.host_demand

    # The same pick: the only top score is the node the operator placed the replica on.
    top = max(scores.values())
    assert [host for host, score in scores.items() if score == top] == [planned.node]
    # The same ranking: the core's totals for these nodes (operator's context) order the scores.
    rows = np.array(sorted(table.names.index(name) for name in passed), dtype=np.int64)
    context = ScoringContext(
        workload=compile_workload(result.workload, table.products), host_demand=result.host_demand
    )
    totals = score_rows(table, rows, candidate.request, weights=weights, context=context).total
    total_of = {table.names[int(r)]: float(t) for r, t in zip(rows, totals, strict=True)}
    for a in passed:
        for b in passed:
            if total_of[a] > total_of[b]:
                assert scores[a] >= scores[b], (a, b, total_of, scores)


@settings(max_examples=40, deadline=None)
@given(
    usage=st.lists(st.integers(0, 8), min_size=1, max_size=6),
    l4_usage=st.lists(st.integers(0, 4), max_size=3),
    cpu_nodes=st.integers(0, 2),
    gpus=st.sampled_from((1, 2, 3, 4, 8)),
)
def test_the_extender_picks_the_node_the_operator_picks_for_the_same_pod(
    usage: list[int], l4_usage: list[int], cpu_nodes: int, gpus: int
) -> None:
    nodes, pods = cluster(usage, l4_usage, cpu_nodes)
    check_same_decision(nodes, pods, with_gpus(make_job("same"), gpus))


@settings(max_examples=15, deadline=None)
@given(
    usage=st.lists(st.integers(0, 8), min_size=2, max_size=5),
    weights=st.sampled_from(
        (
            ScoringWeights(least_allocated=1.0),
            ScoringWeights(most_allocated=1.0),
            ScoringWeights(gpu_fragmentation=1.0, least_allocated=0.5),
        )
    ),
)
def test_same_decisions_hold_for_other_weight_settings_too(usage: list[int], weights: ScoringWeights) -> None:
    nodes, pods = cluster(usage, [], 1)
    check_same_decision(nodes, pods, with_gpus(make_job("weighted"), 1), weights)


def test_fragmented_node_is_preferred_by_both_over_an_empty_one() -> None:
    """The e2e scenario: 6 of 8 GPUs taken on gpu-h100-0, gpu-h100-1 empty; a 1-GPU pod."""
    nodes, pods = cluster([6, 0], [], 1)
    check_same_decision(nodes, pods, with_gpus(make_job("small"), 1))
    result = run_cycle([with_gpus(make_job("small"), 1)], nodes, pods, now=at(1000), settings=CycleSettings())
    assert result.steps[0].placement[0].node == "gpu-h100-0"


def test_a_pod_that_fits_no_node_is_passed_nowhere_as_the_operator_waits() -> None:
    nodes, pods = cluster([8, 7], [], 0)
    check_same_decision(nodes, pods, with_gpus(make_job("big"), 2))
    assert H100  # the nodes above are H100s
