"""The pod ledger (core/pod_ledger.py) keeps each node's requested resources from one cycle to the
next, worked in by the pods that came, went or changed: after any run of changes, every node reads
what accounting all the pods from scratch (``account``) says, and the pods' requests are counted
as the cycle counts them afresh for its target workload."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from modeljob.core.cluster_state import (
    AccountedViews,
    NodeFacts,
    PodFacts,
    PodPhase,
    account,
    accounted_views,
)
from modeljob.core.pod_ledger import PodLedger
from tests.operator_builders import make_node, make_pod

NODES = [
    make_node("gpu-0", gpus=8),
    make_node("gpu-1", gpus=4),
    make_node("cpu-0", gpus=0),
    replace(make_node("other-0", gpus=8), view=replace(make_node(gpus=8).view, accelerator="amd.com/gpu")),
]
PLACES = [None, "gpu-0", "gpu-1", "cpu-0", "other-0", "gone-node"]  # unbound; a node not listed
PHASES = [PodPhase.PENDING, PodPhase.RUNNING, PodPhase.SUCCEEDED, PodPhase.FAILED]


def _ledger_views(
    ledger: PodLedger, nodes: list[NodeFacts], pods: list[PodFacts], known: AccountedViews
) -> list[object]:
    """As a cycle asks: the views kept from the last call, each node's use asked again only where
    the ledger saw its pods change (PodLedger.touched)."""
    ledger.update(pods)
    return accounted_views(nodes, ledger.use, known=known, touched=ledger.touched())


pod_change = st.tuples(
    st.integers(0, 11),  # which pod (by name)
    st.sampled_from(["add", "remove", "rebind", "finish"]),
    st.sampled_from(PLACES),
    st.integers(0, 9),  # GPUs (over a node's count too: accounting caps what it takes)
    st.sampled_from(PHASES),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(pod_change, max_size=6), min_size=1, max_size=8))
def test_after_any_changes_each_node_reads_what_accounting_every_pod_afresh_says(
    cycles: list[list[tuple[int, str, str | None, int, PodPhase]]],
) -> None:
    ledger = PodLedger()
    known: AccountedViews = {}
    pods: dict[str, PodFacts] = {}
    for changes in cycles:
        for index, change, node, gpus, phase in changes:
            name = f"pod-{index}"
            if change == "remove":
                pods.pop(name, None)
            elif change == "finish" and name in pods:
                pods[name] = replace(pods[name], phase=PodPhase.SUCCEEDED)  # another object
            else:
                pods[name] = make_pod(name, node=node, gpus=gpus, phase=phase, cpu_milli=250 * (index + 1))
        listed = list(pods.values())
        assert _ledger_views(ledger, NODES, listed, known) == account(NODES, listed)
        counted = Counter(pod.requests for pod in listed if pod.holds_resources)
        assert dict(ledger.running()) == counted, "the requests the target workload is learned from"


def test_a_pod_given_twice_counts_twice_as_accounting_counts_it() -> None:
    pod = make_pod("twice", node="gpu-0", gpus=2)
    ledger = PodLedger()
    known: AccountedViews = {}
    assert _ledger_views(ledger, NODES, [pod], known) == account(NODES, [pod])
    views = _ledger_views(ledger, NODES, [pod, pod], known)  # the ledger starts over: every node asked
    assert views == account(NODES, [pod, pod])
    assert {view.name: view.requested.gpus for view in views}["gpu-0"] == 4
