"""Replicas that span nodes: a group of pods, one per node, placed whole within the gang and kept
in one topology domain (Preferred: when one has room; Required: or not at all, saying why)."""

from __future__ import annotations

import pytest

from modeljob.core.gang_placement import plan_gang
from modeljob.core.gang_request import GangRequest, Placement, ReplicaRequests, Unplaceable
from modeljob.core.scoring.weights import ScoringWeights
from modeljob.core.topology import GroupTopology
from tests.builders import make_node, make_pod, make_table

SPREAD = ScoringWeights(least_allocated=1.0)
BUSY = (0,) * 8  # every device of an 8-GPU node taken


def group_gang(
    replicas: int = 1, *, size: int = 2, topology: GroupTopology | None = None, job: str = "llama-405b"
) -> GangRequest:
    return GangRequest(
        job=job,
        replicas=replicas,
        requests=ReplicaRequests.uniform(make_pod(gpus=8)),
        group_size=size,
        topology=topology,
    )


def zones(required: bool = False, **nodes: str) -> GroupTopology:
    return GroupTopology(key="topology.kubernetes.io/zone", required=required, domain_of=nodes)


def nodes_of(plan: Placement) -> list[tuple[int, int, str]]:
    return [(a.replica, a.member, a.node) for a in plan.assignments]


def test_a_group_takes_one_whole_node_per_pod_with_member_0_its_leader() -> None:
    table = make_table(*(make_node(f"n{i}", gpus=8) for i in range(3)))
    plan = plan_gang(table, weights=SPREAD, gang=group_gang())
    assert isinstance(plan, Placement)
    assert [(a.replica, a.member) for a in plan.assignments] == [(0, 0), (0, 1)]
    assert len({a.node for a in plan.assignments}) == 2
    assert all(a.devices == tuple(range(8)) for a in plan.assignments)
    assert plan.reasons[0].startswith("replica 0 pod 0 -> ")


def test_two_groups_of_a_gang_take_four_different_nodes() -> None:
    table = make_table(*(make_node(f"n{i}", gpus=8) for i in range(4)))
    plan = plan_gang(table, weights=SPREAD, gang=group_gang(2))
    assert isinstance(plan, Placement)
    assert sorted(a.node for a in plan.assignments) == ["n0", "n1", "n2", "n3"]
    assert [(a.replica, a.member) for a in plan.assignments] == [(0, 0), (0, 1), (1, 0), (1, 1)]


def test_a_gang_whose_second_group_has_no_nodes_waits_whole() -> None:
    table = make_table(*(make_node(f"n{i}", gpus=8) for i in range(3)))
    plan = plan_gang(table, weights=SPREAD, gang=group_gang(2))
    assert isinstance(plan, Unplaceable)
    assert plan.never_fits  # four nodes never exist here
    assert "needs 2 pods of 8 × 80 GiB GPUs, one node each, per replica" in plan.reason


def test_one_free_node_of_two_is_no_place_for_a_group_now() -> None:
    table = make_table(make_node("n0", gpus=8), make_node("n1", gpus=8, gpu_free_milli=BUSY))
    plan = plan_gang(table, weights=SPREAD, gang=group_gang())
    assert isinstance(plan, Unplaceable)
    assert not plan.never_fits
    assert "pod 2 of the replica's 2 has no node" in plan.reason


def test_a_group_keeps_to_the_domain_with_room_for_all_of_it() -> None:
    # a has one free node (and a busy one); b has two: the group goes to b though a's node sorts first.
    table = make_table(
        make_node("a0", gpus=8),
        make_node("a1", gpus=8, gpu_free_milli=BUSY),
        make_node("b0", gpus=8),
        make_node("b1", gpus=8),
    )
    topology = zones(a0="a", a1="a", b0="b", b1="b")
    plan = plan_gang(table, weights=SPREAD, gang=group_gang(topology=topology))
    assert isinstance(plan, Placement)
    assert nodes_of(plan) == [(0, 0, "b0"), (0, 1, "b1")]
    assert "the group in topology.kubernetes.io/zone=b" in plan.assignments[0].why


@pytest.mark.parametrize("required", [False, True], ids=["preferred", "required"])
def test_with_no_domain_holding_the_group(required: bool) -> None:
    # One free node in each zone: Preferred spans the zones, Required waits naming each zone.
    table = make_table(
        make_node("a0", gpus=8),
        make_node("a1", gpus=8, gpu_free_milli=BUSY),
        make_node("b0", gpus=8),
        make_node("b1", gpus=8, gpu_free_milli=BUSY),
    )
    topology = zones(required, a0="a", a1="a", b0="b", b1="b")
    plan = plan_gang(table, weights=SPREAD, gang=group_gang(topology=topology))
    if not required:
        assert isinstance(plan, Placement)
        assert sorted(a.node for a in plan.assignments) == ["a0", "b0"]
        return
    assert isinstance(plan, Unplaceable)
    assert not plan.never_fits  # each zone holds two nodes once they are free
    assert (
        "spec.scheduling.topology is Required: no topology.kubernetes.io/zone domain has 2 nodes with "
        "room for the replica's pods (a: 1 node(s) with room, 8 free GPU(s); "
        "b: 1 node(s) with room, 8 free GPU(s))"
    ) in plan.reason


def test_required_never_fits_when_no_domain_has_enough_nodes_at_all() -> None:
    table = make_table(make_node("a0", gpus=8), make_node("b0", gpus=8), make_node("x", gpus=8))
    plan = plan_gang(table, weights=SPREAD, gang=group_gang(topology=zones(True, a0="a", b0="b")))
    assert isinstance(plan, Unplaceable)
    assert plan.never_fits
    assert "1 node(s) without the label" in plan.reason


def test_a_preferred_group_on_unlabelled_nodes_goes_anywhere_with_room() -> None:
    table = make_table(make_node("n0", gpus=8), make_node("n1", gpus=8))
    plan = plan_gang(table, weights=SPREAD, gang=group_gang(topology=zones()))
    assert isinstance(plan, Placement)
    assert sorted(a.node for a in plan.assignments) == ["n0", "n1"]


def test_a_group_of_pods_that_share_a_node_still_takes_one_node_each() -> None:
    # Pods of 4 GPUs could share an 8-GPU node; a group's pods never do (one per node).
    table = make_table(make_node("n0", gpus=8), make_node("n1", gpus=8))
    request = GangRequest(
        job="j", replicas=1, requests=ReplicaRequests.uniform(make_pod(gpus=4)), group_size=2
    )
    plan = plan_gang(table, request, weights=SPREAD)
    assert isinstance(plan, Placement)
    assert sorted(a.node for a in plan.assignments) == ["n0", "n1"]
