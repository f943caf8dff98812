"""What the scheduling cycle keeps so a deep queue costs less (the node masks jobs share, each
mask's key) gives what working it out again gives: a changed input is seen at once."""

from __future__ import annotations

import numpy as np

from modeljob.core.cycle_cluster import Cluster
from modeljob.core.nodes import build_node_table
from modeljob.core.plan_memo import PlanMemo
from tests.operator_builders import make_job, make_node


def _cluster() -> Cluster:
    return Cluster([make_node(f"gpu-{i}") for i in range(4)], [], {})


def test_the_nodes_a_job_may_use_drop_those_kept_for_a_preemption_reserved_after_asking() -> None:
    cluster, job = _cluster(), make_job("waiting")
    assert cluster.usable(job).tolist() == [True] * 4
    cluster.reserve_nodes("ml/preemptor", ["gpu-1"])
    assert cluster.usable(job).tolist() == [True, False, True, True]
    cluster.reserve_nodes("ml/other", ["gpu-3"])  # asked again since: seen
    assert cluster.usable(job).tolist() == [True, False, True, False]


def test_a_preemptor_may_use_the_nodes_kept_for_itself_but_not_those_kept_for_others() -> None:
    cluster, preemptor, other = _cluster(), make_job("preemptor"), make_job("other")
    cluster.reserve_nodes(preemptor.ref, ["gpu-0"])
    cluster.reserve_nodes(other.ref, ["gpu-2"])
    assert cluster.usable(preemptor).tolist() == [True, True, False, True]
    assert cluster.usable(other).tolist() == [False, True, True, True]
    assert cluster.usable(make_job("third")).tolist() == [False, True, False, True]


def test_jobs_that_may_use_the_same_nodes_share_one_mask_until_a_reservation() -> None:
    cluster = _cluster()
    cluster.reserve_nodes("ml/preemptor", ["gpu-1"])
    first, second = cluster.usable(make_job("a")), cluster.usable(make_job("b"))
    assert first is second
    cluster.reserve_nodes("ml/preemptor", ["gpu-2"])  # the same holder, other nodes
    assert cluster.usable(make_job("a")).tolist() == [True, True, False, True]


def test_a_masks_key_is_its_bytes_and_another_mask_gets_its_own() -> None:
    cluster = _cluster()
    memo = PlanMemo(build_node_table(cluster.views), node_type_of=cluster.type_of)
    mask = np.array([True, False, True, True])
    assert memo.mask_key(mask) == mask.tobytes()
    assert memo.mask_key(mask) is memo.mask_key(mask)  # worked out once
    other = np.array([True, True, True, False])
    assert memo.mask_key(other) == other.tobytes() != memo.mask_key(mask)
    for index in range(200):  # many short-lived masks (ids come round again): each keyed by its own
        fresh = np.array([index % 2 == 0, index % 3 == 0, False, True])
        assert memo.mask_key(fresh) == fresh.tobytes()
