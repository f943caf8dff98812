"""Gang placement: every replica placed in one plan or none, sized per device memory, with reasons."""

from __future__ import annotations

import re

import numpy as np
import pytest

from modeljob.core.gang_placement import plan_gang
from modeljob.core.gang_request import GangRequest, Placement, ReplicaRequests, Unplaceable
from modeljob.core.node_choice import apart, figures
from modeljob.core.scoring.weights import ScoringWeights
from tests.builders import make_node, make_pod, make_table

SPREAD = ScoringWeights(least_allocated=1.0)
PACK = ScoringWeights(most_allocated=1.0)


def gang(replicas: int, *, gpus: int = 1, job: str = "llm", **pod) -> GangRequest:
    return GangRequest(
        job=job, replicas=replicas, requests=ReplicaRequests.uniform(make_pod(gpus=gpus, **pod))
    )


def test_all_replicas_are_placed_in_one_plan() -> None:
    table = make_table(make_node("n1", gpus=4), make_node("n2", gpus=4))
    plan = plan_gang(table, gang(4, gpus=2), weights=PACK)
    assert isinstance(plan, Placement)
    assert [a.replica for a in plan.assignments] == [0, 1, 2, 3]
    assert sorted(a.node for a in plan.assignments) == ["n1", "n1", "n2", "n2"]
    assert len(plan.reasons) == 4


def test_the_plan_counts_its_own_earlier_replicas() -> None:
    # Packing would put every replica on n1 if the plan forgot what it had already placed there.
    table = make_table(make_node("n1", gpus=2), make_node("n2", gpus=2))
    plan = plan_gang(table, gang(2, gpus=2), weights=PACK)
    assert isinstance(plan, Placement)
    assert {a.node for a in plan.assignments} == {"n1", "n2"}


def test_gang_waits_when_one_replica_cannot_fit() -> None:
    table = make_table(
        make_node("n1", gpus=4),
        make_node("n2", gpus=4, gpu_free_milli=(1000, 1000, 0, 0)),
    )
    plan = plan_gang(table, gang(2, gpus=4), weights=SPREAD)
    assert isinstance(plan, Unplaceable)
    assert not plan.never_fits
    assert "replica 2 of 2 has no node now" in plan.reason


def test_a_gang_that_cannot_fit_even_on_an_empty_cluster_never_fits() -> None:
    table = make_table(make_node("n1", gpus=4), make_node("n2", gpus=4))
    plan = plan_gang(table, gang(3, gpus=4), weights=SPREAD)
    assert isinstance(plan, Unplaceable)
    assert plan.never_fits
    assert "do not fit even on an empty cluster" in plan.reason


def test_the_reason_names_the_largest_free_block() -> None:
    table = make_table(
        make_node("node-3", gpus=8, gpu_free_milli=(1000,) + (0,) * 7),
        make_node("node-7", gpus=8, gpu_free_milli=(1000, 1000) + (0,) * 6),
    )
    plan = plan_gang(table, gang(1, gpus=4), weights=SPREAD)
    assert isinstance(plan, Unplaceable)
    assert plan.reason.startswith(
        "llm: needs 4 × 80 GiB GPUs per replica; the largest free block is 2 × 80 GiB GPUs on node-7"
    )


def test_the_request_follows_the_device_memory_of_each_node() -> None:
    # The same model needs 2 × 80 GiB or 8 × 24 GiB devices; only the L4 node has room for it.
    table = make_table(
        make_node("h100", gpus=8, gpu_memory_gib=80, gpu_free_milli=(1000,) + (0,) * 7),
        make_node("l4", gpus=8, gpu_memory_gib=24, product="NVIDIA-L4"),
    )
    requests = ReplicaRequests.sized({80 * 2**30: make_pod(gpus=2), 24 * 2**30: make_pod(gpus=8)})
    plan = plan_gang(table, GangRequest(job="llm", replicas=1, requests=requests), weights=SPREAD)
    assert isinstance(plan, Placement)
    assert plan.assignments[0].node == "l4"
    assert plan.assignments[0].devices == tuple(range(8))


def test_waiting_reason_lists_every_device_size_option() -> None:
    table = make_table(
        make_node("h100", gpus=8, gpu_memory_gib=80, gpu_free_milli=(1000,) + (0,) * 7),
        make_node("l4", gpus=4, gpu_memory_gib=24, product="NVIDIA-L4"),
    )
    requests = ReplicaRequests.sized({80 * 2**30: make_pod(gpus=2), 24 * 2**30: make_pod(gpus=8)})
    plan = plan_gang(table, GangRequest(job="llm", replicas=1, requests=requests), weights=SPREAD)
    assert isinstance(plan, Unplaceable)
    assert "needs 2 × 80 GiB GPUs or 8 × 24 GiB GPUs per replica" in plan.reason
    assert plan.never_fits is False


@pytest.mark.parametrize(
    ("node_memory_gib", "expected_gpus"),
    [(80, 2), (94, 2), (48, 4), (40, 4), (24, 8), (16, None)],
    ids=["exact-80", "above-80", "between-uses-smaller", "exact-40", "exact-24", "below-smallest"],
)
def test_a_node_uses_the_entry_for_the_largest_sized_device_it_can_hold(
    node_memory_gib, expected_gpus
) -> None:
    requests = ReplicaRequests.sized(
        {80 * 2**30: make_pod(gpus=2), 40 * 2**30: make_pod(gpus=4), 24 * 2**30: make_pod(gpus=8)}
    )
    request = requests.for_device_memory(node_memory_gib * 2**30)
    assert (request.resources.gpus if request else None) == expected_gpus


def test_the_input_table_is_left_untouched() -> None:
    table = make_table(make_node("n1", gpus=4))
    before = table.gpu_free_milli.copy()
    assert isinstance(plan_gang(table, gang(2, gpus=2), weights=PACK), Placement)
    np.testing.assert_array_equal(table.gpu_free_milli, before)


def test_gpu_shares_of_one_gang_can_share_a_device() -> None:
    table = make_table(make_node("n1", gpus=1))
    plan = plan_gang(table, gang(2, gpus=1, gpu_milli=500, cpu=1), weights=PACK)
    assert isinstance(plan, Placement)
    assert [a.devices for a in plan.assignments] == [(0,), (0,)]


# --- what separated the choice -------------------------------------------------------------------


def test_nodes_that_score_alike_are_reported_as_a_tie_decided_by_name() -> None:
    # Idle, identical nodes: no scorer tells them apart, and the explanation must say so rather
    # than show a bare score that looks like a judgement.
    table = make_table(make_node("n1", gpus=4), make_node("n2", gpus=4), make_node("n3", gpus=4))
    plan = plan_gang(table, gang(1, gpus=1), weights=SPREAD)
    assert isinstance(plan, Placement)
    [assignment] = plan.assignments
    assert assignment.node == "n1"
    assert re.fullmatch(r"3 nodes tied at 0\.\d\d, the first by name won", assignment.why)


def test_the_scorer_that_separated_the_winner_is_named_with_both_values() -> None:
    table = make_table(
        make_node("n1", gpus=4, gpu_free_milli=(1000, 1000, 0, 0)),
        make_node("n2", gpus=4),
    )
    plan = plan_gang(table, gang(1, gpus=1), weights=SPREAD)
    assert isinstance(plan, Placement)
    [assignment] = plan.assignments
    assert assignment.node == "n2"
    assert assignment.why.startswith("ahead of n1 by ")
    assert "least-allocated " in assignment.why
    assert " vs " in assignment.why
    assert assignment.why in plan.reasons[0]


def test_scores_that_differ_are_never_shown_alike() -> None:
    assert apart(0.5, 0.4999) == ("0.5000", "0.4999")
    assert apart(0.52, 0.41) == ("0.52", "0.41")
    assert apart(0.503, 0.5) == ("0.503", "0.500")


@pytest.mark.parametrize(
    ("scores", "decimals"),
    [
        ((0.52, 0.41, 0.30), 2),  # two decimals already tell them apart
        ((0.5012, 0.4988), 3),  # 0.50 and 0.50 would read alike
        ((0.52, 0.5012, 0.5009), 4),  # one close pair decides for all
        ((0.5, 0.5, 0.41), 2),  # equal scores may read alike: they are alike
        ((0.50001, 0.50002), 4),  # the most a message shows, even where it cannot tell them apart
        ((0.5,), 2),
        ((), 2),
    ],
)
def test_several_scores_get_the_fewest_decimals_that_show_each_distinct_one_distinct(
    scores: tuple[float, ...], decimals: int
) -> None:
    assert figures(scores) == decimals


def test_a_lone_candidate_says_it_was_the_only_node_with_room() -> None:
    table = make_table(make_node("n1", gpus=4), make_node("n2", gpus=4, gpu_free_milli=(0, 0, 0, 0)))
    plan = plan_gang(table, gang(1, gpus=2), weights=SPREAD)
    assert isinstance(plan, Placement)
    assert plan.assignments[0].why == "the only node with room"
