"""One scheduling cycle: size per node type, order the queue, place gangs whole or not at all."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pytest

from modeljob.core.cluster_state import NodeFacts, PodFacts
from modeljob.core.job_state import JobFacts, JobPhase, Placed
from modeljob.core.jobs import Overrides
from modeljob.core.node_types import node_types, size_job, type_prices
from modeljob.core.queueing import QueueOrder, QueueSettings
from modeljob.core.scheduling_cycle import CycleResult, CycleSettings, run_cycle
from modeljob.core.sizing import Device, size_replica
from modeljob.core.status import scheduled_message
from modeljob.core.steps import Complete, Place, RollBack, SetPhase, Step, Unschedulable, Wait
from tests.operator_builders import (
    H100,
    L4,
    at,
    h100_nodes,
    l4_nodes,
    make_job,
    make_node,
    make_pod,
    placed,
    pods_of,
)

B = 10**9


def with_gpus(job: JobFacts, gpus: int) -> JobFacts:
    """``job`` with spec.resources.gpus set: its replicas need exactly that many GPUs."""
    return replace(job, shape=replace(job.shape, overrides=Overrides(gpus=gpus)))


def cycle(
    jobs: Sequence[JobFacts],
    nodes: Sequence[NodeFacts],
    pods: Sequence[PodFacts] = (),
    *,
    policy: QueueOrder = QueueOrder.FCFS,
    strict: bool = False,
) -> CycleResult:
    settings = CycleSettings(queue=QueueSettings(order=policy), strict=strict)
    return run_cycle(jobs, nodes, pods, now=at(1000), settings=settings)


def outcome(result: CycleResult, name: str) -> Step:
    return next(o for o in result.steps if o.job.name == name)


# --- sizing per node type ------------------------------------------------------------------------


def test_a_replica_is_sized_for_each_node_type_cheapest_first() -> None:
    views = [n.view for n in [*h100_nodes(1), *l4_nodes(1)]]
    sizing = size_job(make_job(parameters=8 * B), node_types(views), prices=type_prices(views))
    assert [(c.node_type.product, c.estimate.gpus) for c in sizing.candidates] == [(L4, 1), (H100, 1)]
    assert sizing.candidates[0].request.products == (L4,)


def test_405b_in_bf16_on_24_gib_gpus_is_a_group_of_11_nodes_that_never_fits_two() -> None:
    job = make_job(parameters=405 * B, products=(L4,))
    sizing = size_job(job, node_types([n.view for n in l4_nodes()]))
    assert [(c.pods_per_replica, c.estimate.gpus) for c in sizing.candidates] == [(11, 4)]
    step = outcome(cycle([job], l4_nodes()), "job")
    assert isinstance(step, Unschedulable)
    assert "needs 11 pods of 4 × 24 GiB GPUs, one node each, per replica" in step.message
    assert "do not fit even on an empty cluster" in step.message


def test_products_the_job_does_not_allow_are_rejected_by_name() -> None:
    views = [n.view for n in [*h100_nodes(1), *l4_nodes(1)]]
    sizing = size_job(make_job(products=(H100,)), node_types(views))
    assert [c.node_type.product for c in sizing.candidates] == [H100]
    assert sizing.rejected == ("NVIDIA-L4, 24.0 GiB: not among spec.accelerator.products",)


def test_nodes_without_a_memory_label_use_the_jobs_memory_per_device() -> None:
    unlabelled = [make_node("gpu-x", product="X", memory_gib=0).view]
    assert size_job(make_job(), node_types(unlabelled)).candidates == ()
    sized = size_job(replace(make_job(), memory_per_device_bytes=80 * 2**30), node_types(unlabelled))
    assert sized.candidates[0].estimate.device_memory_bytes == 80 * 2**30


def test_memory_per_device_is_the_smallest_device_the_job_accepts() -> None:
    views = [n.view for n in [*h100_nodes(1), *l4_nodes(1)]]
    needs_48 = replace(make_job(parameters=8 * B), memory_per_device_bytes=48 * 2**30)
    sizing = size_job(needs_48, node_types(views))
    assert [c.node_type.product for c in sizing.candidates] == [H100]
    assert sizing.candidates[0].estimate.device_memory_bytes == 80 * 2**30  # sized for its own memory
    assert sizing.rejected == (
        "NVIDIA-L4, 24.0 GiB: devices of 24.0 GiB are smaller than spec.accelerator.memoryPerDevice 48.0 GiB",
    )


def test_the_operator_sizes_unlabelled_nodes_as_the_cli_does() -> None:
    unlabelled = [make_node("gpu-x", product="X", memory_gib=0).view]
    job = replace(make_job(parameters=70 * B), memory_per_device_bytes=24 * 2**30)
    operator_estimate = size_job(job, node_types(unlabelled)).candidates[0].estimate
    assert operator_estimate == size_replica(job.shape, Device(memory_bytes=24 * 2**30))


# --- the cycle -----------------------------------------------------------------------------------


def test_job_placed_first_in_a_cycle_is_seen_by_the_next() -> None:
    first = with_gpus(make_job("first", created=0, products=(H100,)), 8)
    second = with_gpus(make_job("second", created=1, products=(H100,)), 8)
    result = cycle([first, second], h100_nodes(1))
    assert isinstance(outcome(result, "first"), Place)
    waiting = outcome(result, "second")
    assert isinstance(waiting, Wait)
    assert waiting.queue_position == 1
    assert waiting.message.startswith("waiting for room: ml/second: needs 8 × 80 GiB GPUs per replica")


def test_a_job_that_only_has_to_wait_stays_queued_while_one_that_never_fits_is_unschedulable() -> None:
    blocker = make_pod("blocker", node="gpu-l4-0", gpus=4)
    waits = make_job("waits", products=(L4,), parameters=8 * B, replicas=2)
    never = make_job("never", products=(L4,), parameters=405 * B)
    result = cycle([with_gpus(waits, 4), never], l4_nodes(), [blocker])
    assert isinstance(outcome(result, "waits"), Wait)
    unschedulable = outcome(result, "never")
    assert isinstance(unschedulable, Unschedulable)
    assert "needs 11 pods of 4 × 24 GiB GPUs, one node each, per replica" in unschedulable.message


def test_a_waiting_jobs_reasons_count_only_the_nodes_it_could_use() -> None:
    # Two H100 nodes are busy, one more is outside the job's nodeSelector, and two L4 nodes are
    # of another type: the reason counts the two busy nodes, names the excluded one, and calls
    # no node "not ready" (they all are).
    pool = {"pool": "training"}
    nodes = [
        make_node("gpu-h100-0", labels=pool),
        make_node("gpu-h100-1", labels=pool),
        make_node("gpu-h100-2", labels={"pool": "serving"}),
        *l4_nodes(2),
    ]
    busy = [make_pod(f"busy-{i}", node=f"gpu-h100-{i}", gpus=8) for i in range(2)]
    job = replace(with_gpus(make_job("waits", products=(H100,)), 8), node_selector=pool)
    result = cycle([job], nodes, busy)
    waiting = outcome(result, "waits")
    assert isinstance(waiting, Wait)
    assert "not ready" not in waiting.message
    assert "2 × not enough free GPUs" in waiting.message
    assert "1 more node(s) of this type do not admit the job" in waiting.message


def test_a_gang_bigger_than_the_whole_cluster_is_unschedulable() -> None:
    job = with_gpus(make_job("huge", replicas=3, products=(H100,)), 8)
    result = cycle([job], h100_nodes(2))
    only = outcome(result, "huge")
    assert isinstance(only, Unschedulable)
    assert only.message.startswith(
        "the job can never fit this cluster: ml/huge: needs 8 × 80 GiB GPUs per replica"
    )
    assert "3 replicas do not fit even on an empty cluster" in only.message


@pytest.mark.parametrize(
    ("policy", "winner"),
    [(QueueOrder.FCFS, "long-early"), (QueueOrder.SHORTEST_JOB_FIRST, "short-late")],
    ids=["fcfs", "sjf"],
)
def test_when_room_is_scarce_the_policy_decides_who_goes_first(policy: QueueOrder, winner: str) -> None:
    early = with_gpus(
        make_job("long-early", created=0, expected_duration_seconds=36_000, products=(H100,)), 8
    )
    late = with_gpus(make_job("short-late", created=5, expected_duration_seconds=600, products=(H100,)), 8)
    result = cycle([early, late], h100_nodes(1), policy=policy)
    assert [o.job.name for o in result.steps if isinstance(o, Place)] == [winner]


def test_backfill_lets_a_small_job_pass_a_big_one_unless_the_order_is_strict() -> None:
    big = with_gpus(make_job("big", created=0, products=(H100,)), 8)
    small = with_gpus(make_job("small", created=5, products=(H100,)), 2)
    blocker = make_pod("blocker", node="gpu-h100-0", gpus=4)
    relaxed = cycle([big, small], h100_nodes(1), [blocker])
    assert isinstance(outcome(relaxed, "big"), Wait)
    assert isinstance(outcome(relaxed, "small"), Place)
    strict = cycle([big, small], h100_nodes(1), [blocker], strict=True)
    assert isinstance(outcome(strict, "small"), Wait)
    assert outcome(strict, "small").message == "waiting behind ml/big (strict queue order)"


def test_a_placement_being_completed_reserves_its_nodes_before_anything_new_is_planned() -> None:
    binding = placed(
        with_gpus(make_job("binding", created=0, products=(H100,)), 8), "gpu-h100-0", binding=True
    )
    newcomer = with_gpus(make_job("newcomer", created=5, products=(H100,)), 8)
    result = cycle([binding, newcomer], h100_nodes(1))
    assert isinstance(outcome(result, "binding"), Complete)
    assert isinstance(outcome(result, "newcomer"), Wait)


def test_a_placement_whose_node_filled_up_meanwhile_is_rolled_back() -> None:
    binding = placed(with_gpus(make_job("binding", products=(H100,)), 8), "gpu-h100-0", binding=True)
    intruder = make_pod("intruder", namespace="other", node="gpu-h100-0", gpus=1)
    result = cycle([binding], h100_nodes(1), [intruder])
    rolled = outcome(result, "binding")
    assert isinstance(rolled, RollBack)
    assert "node gpu-h100-0 no longer has room for replica 0" in rolled.message


def test_running_job_is_reconciled_not_planned() -> None:
    job = replace(placed(make_job("run", products=(H100,)), "gpu-h100-0"), phase=JobPhase.SCHEDULED)
    result = cycle([job], h100_nodes(1), pods_of(job))
    only = outcome(result, "run")
    assert isinstance(only, SetPhase)
    assert only.phase is JobPhase.RUNNING


def test_a_gang_with_room_for_three_of_four_waits_whole() -> None:
    blocker = make_pod("blocker", node="gpu-h100-1", gpus=4)
    gang = with_gpus(make_job("gang", replicas=4, products=(H100,)), 4)
    result = cycle([gang], h100_nodes(), [blocker])
    waiting = outcome(result, "gang")
    assert isinstance(waiting, Wait)
    assert "replica 4 of 4 has no node now" in waiting.message
    assert "the largest free block is 8 × 80 GiB GPUs on gpu-h100-0" in waiting.message


def test_a_gang_is_placed_whole_on_one_node_type() -> None:
    gang = with_gpus(make_job("gang", replicas=4), 4)
    result = cycle([gang], [*h100_nodes(), *l4_nodes()])
    placed_gang = outcome(result, "gang")
    assert isinstance(placed_gang, Place)
    product = placed_gang.candidate.node_type.product
    nodes = {p.node for p in placed_gang.placement}
    assert len(placed_gang.placement) == 4
    assert all(n.startswith("gpu-h100" if product == H100 else "gpu-l4") for n in nodes)


def test_a_job_that_is_not_a_gang_takes_the_room_there_is() -> None:
    loose = with_gpus(make_job("loose", replicas=3, gang=False, products=(H100,)), 8)
    result = cycle([loose], h100_nodes(2))
    partial = outcome(result, "loose")
    assert isinstance(partial, Place)
    assert sorted(p.replica for p in partial.placement) == [0, 1]


def test_pods_of_other_schedulers_count_against_their_nodes() -> None:
    others = [make_pod(f"other-{i}", namespace="default", node=f"gpu-h100-{i}", gpus=7) for i in range(2)]
    job = with_gpus(make_job("needs-2", products=(H100,)), 2)
    assert isinstance(outcome(cycle([job], h100_nodes(2), others), "needs-2"), Wait)


def test_a_placement_says_what_separated_the_node_type_and_the_nodes() -> None:
    # Both node types hold the job on one GPU and every node is idle: the plans score alike, so
    # the cheaper type wins (the sizing's preference), and within it the first node by name.
    result = cycle([make_job("chat")], [*h100_nodes(), *l4_nodes()])
    step = outcome(result, "chat")
    assert isinstance(step, Place)
    assert step.candidate.node_type.product == L4
    assert step.decided == (
        "tied with NVIDIA-H100-80GB-HBM3, 80.0 GiB at 0.50, cheaper per replica (1.28/h vs 4.21/h); "
        "replica 0: 2 nodes tied at 0.50, the first by name won"
    )
    assert "replica 0 -> gpu-l4-0 (score 0.50; 2 nodes tied at 0.50, the first by name won)" in step.message


def test_a_node_type_that_scores_higher_is_named_with_the_score_it_beat() -> None:
    # The L4 nodes have little CPU beside their GPUs: a replica there leaves GPUs no CPU can feed
    # (cpu-balance below 0.5), so the idle H100s win although they cost more.
    l4 = [
        replace(n, view=replace(n.view, allocatable=replace(n.view.allocatable, cpu_milli=9_000)))
        for n in l4_nodes()
    ]
    result = cycle([make_job("chat")], [*h100_nodes(), *l4])
    step = outcome(result, "chat")
    assert isinstance(step, Place)
    assert step.candidate.node_type.product == H100
    chosen = next(t for t in step.tried if t.node_type == step.candidate.node_type)
    other = next(t for t in step.tried if t is not chosen)
    assert chosen.mean_score is not None
    assert other.mean_score is not None
    assert chosen.mean_score > other.mean_score
    assert step.decided.startswith(
        f"{chosen.mean_score:.2f} beat {other.mean_score:.2f} on {other.node_type.describe()}"
    )


def test_node_types_whose_mean_scores_differ_are_never_shown_alike() -> None:
    # A GPU pod of another team on one node of each type sets the two plans apart by less than
    # 0.005: with two decimals the Event would read "mean score 0.50 (chosen)" beside "0.50".
    others = [
        make_pod("other-h100", namespace="default", node="gpu-h100-0", gpus=1, cpu_milli=1_000),
        make_pod("other-l4", namespace="default", node="gpu-l4-0", gpus=1, cpu_milli=20_000),
    ]
    result = cycle([make_job("chat", replicas=2)], [*h100_nodes(), *l4_nodes()], others)
    step = outcome(result, "chat")
    assert isinstance(step, Place)
    scores = sorted(t.mean_score or 0.0 for t in step.tried)
    assert 0 < scores[1] - scores[0] < 0.005, "the case this test is about"
    assert "NVIDIA-L4, 24.0 GiB: 1 GPU(s)/replica, mean score 0.505 (chosen)" in step.message
    assert "NVIDIA-H100-80GB-HBM3, 80.0 GiB: 1 GPU(s)/replica, mean score 0.500;" in step.message
    assert step.decided.startswith("0.505 beat 0.500 on NVIDIA-H100-80GB-HBM3, 80.0 GiB")
    # The condition's own mean score reads with the same decimals as the clause that follows it.
    entries = [Placed(a.replica, f"chat-{a.replica}", a.node, a.score) for a in step.placement]
    line = scheduled_message(entries, step.candidate.node_type, place=step)
    assert ", mean score 0.505 (0.505 beat 0.500 on " in line


def test_fragmentation_is_measured_on_the_cluster_as_the_cycle_found_it() -> None:
    # One H100 node has a single idle GPU, which the waiting 2-GPU job cannot use; the other is
    # idle. At the start of the cycle 1 of the 9 idle GPUs is fragmented: the job placed during
    # the cycle must not change what the metric reports for it.
    busy = make_pod("other", namespace="default", node="gpu-h100-0", gpus=7, cpu_milli=1_000)
    result = cycle([with_gpus(make_job("pair"), 2)], h100_nodes(), [busy])
    assert isinstance(outcome(result, "pair"), Place)
    assert result.fragmentation == pytest.approx(1 / 9)
