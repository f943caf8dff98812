"""Counting replicas (core/gang_capacity.py) says what the gang plan finds, where it is used: one
pod per replica, whole GPUs or none, no rule that can refuse a node."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modeljob.core.fragmentation import TaskShape, compile_workload, learn_target_workload
from modeljob.core.gang_capacity import replicas_held, surely_placed
from modeljob.core.gang_placement import plan_gang
from modeljob.core.gang_request import GangRequest, Placement, ReplicaRequests
from modeljob.core.nodes import NodeTable, PodRequest
from modeljob.core.scoring.ranking import ScoringContext
from tests.builders import make_node, make_pod, make_table

SCENARIOS = settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


@st.composite
def tables(draw: st.DrawFn) -> NodeTable:
    """A few nodes with some devices, CPU and memory already taken (some not ready)."""
    nodes = []
    for index in range(draw(st.integers(1, 5))):
        gpus = draw(st.sampled_from((0, 4, 8)))
        free = [draw(st.sampled_from((0, 1000, 1000, 500))) for _ in range(gpus)]
        nodes.append(
            make_node(
                f"node-{index}",
                gpus=gpus,
                cpu=16,
                memory_gib=128,
                gpu_free_milli=free,
                requested_cpu=draw(st.integers(0, 16)),
                requested_memory_gib=draw(st.integers(0, 128)),
                ready=draw(st.integers(0, 5)) > 0,
            )
        )
    return make_table(*nodes)


requests = st.builds(
    lambda gpus, cpu, memory: make_pod(gpus=gpus, cpu=cpu, memory_gib=memory),
    st.integers(0, 4),
    st.sampled_from((0, 1, 2, 5)),
    st.sampled_from((0, 8, 40)),
)


def planned(table: NodeTable, request: PodRequest, replicas: int) -> bool:
    """The cycle's plan: default weights, the request's own shape as the target workload."""
    gang = GangRequest(job="ml/job", replicas=replicas, requests=ReplicaRequests.uniform(request))
    shape = TaskShape(cpu_milli=request.resources.cpu_milli, gpu_milli=1000, gpus=request.resources.gpus)
    context = ScoringContext(workload=compile_workload(learn_target_workload([shape]), table.products))
    return isinstance(plan_gang(table, gang, context=context, check_never_fits=False), Placement)


@SCENARIOS
@given(tables(), requests, st.integers(1, 12))
def test_counting_says_what_the_plan_finds(table: NodeTable, request: PodRequest, replicas: int) -> None:
    classes = [(request, np.arange(len(table)))]
    counted = surely_placed(table, classes, replicas=replicas, group_size=1, rules=None)
    assert counted == planned(table, request, replicas)


def test_a_node_holds_as_many_replicas_as_its_scarcest_resource_allows() -> None:
    table = make_table(
        make_node("a", gpus=8, cpu=16, gpu_free_milli=[1000] * 6 + [0, 500]),  # 6 idle GPUs, 16 cores
        make_node("b", gpus=8, cpu=3),  # 3 cores
        make_node("c", gpus=8, ready=False),
    )
    assert replicas_held(table, make_pod(gpus=2, cpu=2)).tolist() == [3, 1, 0]


def test_gpu_shares_and_groups_are_left_to_the_plan() -> None:
    table = make_table(make_node("a"))
    share = make_pod(gpus=1, gpu_milli=500)
    whole = make_pod(gpus=1)
    rows = np.arange(1)
    assert not surely_placed(table, [(share, rows)], replicas=1, group_size=1, rules=None)
    assert not surely_placed(table, [(whole, rows)], replicas=1, group_size=2, rules=None)
    assert surely_placed(table, [(whole, rows)], replicas=8, group_size=1, rules=None)
