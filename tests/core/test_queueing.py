"""Queue ordering: each policy's order, and its effect over time on a seeded synthetic workload."""

from __future__ import annotations

import statistics

import pytest

from modeljob.core.queueing import (
    DominantResourceFairness,
    FirstComeFirstServed,
    PriorityWithAging,
    QueuedJob,
    QueueOrder,
    QueueSettings,
    RunningTurn,
    ShortestJobFirst,
    ShortestRemainingTimeFirst,
    TimeSliceTurns,
    must_yield,
    order_queues,
    queue_policy,
)
from modeljob.core.resources import Resources
from modeljob.core.sim.queue_simulation import QueueRun, run_queue
from modeljob.core.sim.workload_generator import SyntheticJob, WorkloadSpec, generate_workload
from tests.builders import make_node, make_pod

HOUR = 3600.0


def job(name: str, submitted: float = 0.0, **fields) -> QueuedJob:
    return QueuedJob(name=name, submitted_at_seconds=submitted, **fields)


def names(jobs) -> list[str]:
    return [j.name for j in jobs]


def test_fcfs_orders_by_submission_then_name() -> None:
    jobs = [job("c", 5), job("b", 1), job("a", 5)]
    assert names(FirstComeFirstServed().order(jobs, now_seconds=10)) == ["b", "a", "c"]


def test_sjf_runs_the_shortest_declared_duration_first() -> None:
    jobs = [
        job("long", 0, expected_duration_seconds=5 * HOUR),
        job("short", 1, expected_duration_seconds=10 * 60),
        job("medium", 2, expected_duration_seconds=HOUR / 2),
    ]
    assert names(ShortestJobFirst().order(jobs, now_seconds=10)) == ["short", "medium", "long"]


def test_sjf_falls_back_to_the_estimate_then_the_default_duration() -> None:
    jobs = [
        job("unknown", 0),  # assumed to take the default hour
        job("estimated-half-hour", 1, estimated_duration_seconds=HOUR / 2),
        job("declared-two-hours", 2, expected_duration_seconds=2 * HOUR),
    ]
    order = ShortestJobFirst(default_duration_seconds=HOUR).order(jobs, now_seconds=10)
    assert names(order) == ["estimated-half-hour", "unknown", "declared-two-hours"]


def test_sjf_puts_the_smaller_of_two_equally_long_jobs_first() -> None:
    jobs = [
        job("eight-gpus", 0, expected_duration_seconds=HOUR, demand=Resources(gpus=8)),
        job("one-gpu", 1, expected_duration_seconds=HOUR, demand=Resources(gpus=1)),
    ]
    assert names(ShortestJobFirst().order(jobs, now_seconds=10)) == ["one-gpu", "eight-gpus"]


def test_priority_puts_higher_priority_first() -> None:
    jobs = [job("low", 0, priority=0), job("high", 100, priority=5)]
    assert names(PriorityWithAging(aging_per_hour=1).order(jobs, now_seconds=200)) == ["high", "low"]


@pytest.mark.parametrize(
    ("waited_hours", "first"),
    [(4.9, "new-high"), (5.1, "old-low")],
    ids=["before-catching-up", "after-catching-up"],
)
def test_aging_lifts_a_waiting_job_above_newcomers_after_priority_gap_over_rate(waited_hours, first) -> None:
    now = waited_hours * HOUR
    jobs = [job("old-low", 0, priority=0), job("new-high", now, priority=10)]
    assert names(PriorityWithAging(aging_per_hour=2).order(jobs, now_seconds=now))[0] == first


def test_drf_serves_the_namespace_with_the_smallest_dominant_share_first() -> None:
    policy = DominantResourceFairness(
        capacity=Resources(cpu_milli=100_000, memory_bytes=100, gpus=10),
        usage={"heavy": Resources(gpus=6), "light": Resources(cpu_milli=20_000)},
    )
    jobs = [job("h1", 0, namespace="heavy"), job("l1", 1, namespace="light")]
    assert names(policy.order(jobs, now_seconds=5)) == ["l1", "h1"]


def test_drf_interleaves_namespaces_by_the_share_their_queued_jobs_would_add() -> None:
    policy = DominantResourceFairness(capacity=Resources(cpu_milli=0, memory_bytes=0, gpus=12))
    jobs = [
        *(job(f"a{i}", i, namespace="a", demand=Resources(gpus=4)) for i in range(3)),
        *(job(f"b{i}", 10 + i, namespace="b", demand=Resources(gpus=1)) for i in range(5)),
    ]
    order = names(policy.order(jobs, now_seconds=20))
    assert order == ["a0", "b0", "b1", "b2", "b3", "a1", "b4", "a2"]


def test_weighted_namespaces_get_proportionally_more() -> None:
    policy = DominantResourceFairness(capacity=Resources(gpus=10), weights={"gold": 2.0})
    jobs = [
        *(job(f"g{i}", i, namespace="gold", demand=Resources(gpus=1)) for i in range(4)),
        *(job(f"s{i}", i, namespace="silver", demand=Resources(gpus=1)) for i in range(4)),
    ]
    assert names(policy.order(jobs, now_seconds=9))[:6] == ["g0", "s0", "g1", "g2", "s1", "g3"]


def test_queues_take_turns_whatever_their_backlog() -> None:
    jobs = [
        *(job(f"batch-{i}", i, queue="batch") for i in range(3)),
        job("serve-0", 10, queue="serving"),
    ]
    order = order_queues(jobs, policy=FirstComeFirstServed(), now_seconds=20)
    assert names(order) == ["batch-0", "serve-0", "batch-1", "batch-2"]


def test_srtf_orders_by_what_is_left_of_a_job_not_its_whole_length() -> None:
    jobs = [
        job("fresh-two-hours", 0, expected_duration_seconds=2 * HOUR),
        job(
            "preempted-with-half-an-hour-left", 1, expected_duration_seconds=3 * HOUR, run_seconds=2.5 * HOUR
        ),
        job("fresh-one-hour", 2, expected_duration_seconds=HOUR),
    ]
    order = ShortestRemainingTimeFirst().order(jobs, now_seconds=10)
    assert names(order) == ["preempted-with-half-an-hour-left", "fresh-one-hour", "fresh-two-hours"]


def test_srtf_of_jobs_that_never_ran_is_sjf() -> None:
    jobs = [job(f"j{i}", i, expected_duration_seconds=d * 60) for i, d in enumerate((30, 10, 20, 10))]
    assert names(ShortestRemainingTimeFirst().order(jobs, now_seconds=0)) == names(
        ShortestJobFirst().order(jobs, now_seconds=0)
    )


def test_time_slice_turns_put_a_job_that_yielded_behind_those_already_waiting() -> None:
    jobs = [
        job("yielded", 0, queued_at_seconds=5 * HOUR),
        job("waiting-since-two", 2 * HOUR),
        job("waiting-since-one", HOUR),
    ]
    order = TimeSliceTurns().order(jobs, now_seconds=6 * HOUR)
    assert names(order) == ["waiting-since-one", "waiting-since-two", "yielded"]


def test_a_running_job_yields_only_after_its_slice_and_only_to_a_job_of_its_queue() -> None:
    running = [
        RunningTurn("a-long", "a", started_at_seconds=0),
        RunningTurn("a-longer", "a", started_at_seconds=-HOUR),
        RunningTurn("a-young", "a", started_at_seconds=1.5 * HOUR),
        RunningTurn("b-long", "b", started_at_seconds=0),
    ]
    waiting = [job("a-waiting", HOUR, queue="a")]
    # One job of queue a waits: the one that ran longest yields; b has nobody waiting.
    assert must_yield(running, waiting, slice_seconds=HOUR, now_seconds=2 * HOUR) == ("a-longer",)
    two_waiting = [*waiting, job("a-second", HOUR, queue="a")]
    assert must_yield(running, two_waiting, slice_seconds=HOUR, now_seconds=2 * HOUR) == (
        "a-longer",
        "a-long",
    )
    assert must_yield(running, waiting, slice_seconds=4 * HOUR, now_seconds=2 * HOUR) == ()


@pytest.mark.parametrize(
    ("order", "policy_type"),
    [
        (QueueOrder.FCFS, FirstComeFirstServed),
        (QueueOrder.SHORTEST_JOB_FIRST, ShortestJobFirst),
        (QueueOrder.PRIORITY, PriorityWithAging),
        (QueueOrder.FAIR_SHARE, DominantResourceFairness),
        (QueueOrder.SHORTEST_REMAINING_TIME_FIRST, ShortestRemainingTimeFirst),
        (QueueOrder.TIME_SLICE, TimeSliceTurns),
    ],
    ids=lambda value: value.value if isinstance(value, QueueOrder) else "",
)
def test_policies_are_chosen_by_name(order, policy_type) -> None:
    policy = queue_policy(QueueSettings(order=QueueOrder(order.value)), capacity=Resources(gpus=8))
    assert isinstance(policy, policy_type)


def test_fair_share_needs_the_cluster_capacity() -> None:
    with pytest.raises(ValueError, match="capacity"):
        queue_policy(QueueSettings(order=QueueOrder.FAIR_SHARE))


# --- over time, on the seeded synthetic workload -------------------------------------------

CLUSTER = [make_node(f"gpu-{i}", gpus=8) for i in range(4)]


def mean_wait_hours(run: QueueRun) -> float:
    return statistics.fmean(run.waits()) / HOUR


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sjf_waits_less_on_average_than_fcfs_on_a_saturated_cluster(seed) -> None:
    jobs = generate_workload(WorkloadSpec(jobs=80, mean_interarrival_seconds=60), seed=seed)
    fcfs = run_queue(jobs, CLUSTER, settings=QueueSettings(order=QueueOrder.FCFS))
    sjf = run_queue(jobs, CLUSTER, settings=QueueSettings(order=QueueOrder.SHORTEST_JOB_FIRST))
    assert len(sjf.waits()) == len(fcfs.waits()) == 80
    assert mean_wait_hours(sjf) < 0.8 * mean_wait_hours(fcfs)


def starving_stream(*, aging_per_hour: float) -> tuple[QueueRun, float]:
    """A priority-0 job submitted at 1 h into a steady overload of priority-10 jobs."""
    high = WorkloadSpec(
        jobs=60,
        mean_interarrival_seconds=300,
        median_duration_seconds=1800,
        duration_sigma=0.2,
        priorities=(10,),
        gpus_per_replica=(8,),
        replicas=(1,),
        name_prefix="high",
    )
    probe = SyntheticJob(
        job=QueuedJob(name="low", submitted_at_seconds=HOUR, priority=0, demand=Resources(gpus=8)),
        replicas=1,
        replica_request=make_pod(gpus=8),
        duration_seconds=1800,
    )
    jobs = (*generate_workload(high, seed=4), probe)
    settings = QueueSettings(order=QueueOrder.PRIORITY, aging_per_hour=aging_per_hour)
    run = run_queue(jobs, CLUSTER[:2], settings=settings)
    (outcome,) = [o for o in run.outcomes if o.job.name == "low"]
    assert outcome.started_at_seconds is not None
    return run, outcome.started_at_seconds


def overtakers(run: QueueRun, *, low_started: float, later_than: float) -> list[str]:
    """High-priority jobs submitted after ``later_than`` that started before the low one."""
    return [
        o.job.name
        for o in run.outcomes
        if o.job.priority > 0
        and o.job.submitted_at_seconds > later_than
        and o.started_at_seconds is not None
        and o.started_at_seconds < low_started
    ]


def test_aging_bounds_the_longest_low_priority_wait() -> None:
    # With aging a job `gap` = priority gap / rate hours old outranks every newcomer, so its wait
    # is bounded by `gap` plus draining what was submitted before then; without aging the
    # newcomers keep overtaking it for as long as they come.
    aging = 5.0
    gap_seconds = 10 / aging * HOUR
    aged, aged_start = starving_stream(aging_per_hour=aging)
    assert overtakers(aged, low_started=aged_start, later_than=HOUR + gap_seconds) == []
    starved, starved_start = starving_stream(aging_per_hour=0.0)
    assert len(overtakers(starved, low_started=starved_start, later_than=HOUR + gap_seconds)) >= 10
    assert starved_start > aged_start


def test_drf_keeps_each_namespace_within_one_job_of_its_fair_share() -> None:
    # Same arrival rate, different job sizes: FCFS hands out GPUs in proportion to job size.
    jobs = []
    for seed, (namespace, gpus) in enumerate((("team-a", 4), ("team-b", 1), ("team-c", 2))):
        spec = WorkloadSpec(
            jobs=40,
            namespaces=(namespace,),
            name_prefix=namespace,
            mean_interarrival_seconds=5,
            gpus_per_replica=(gpus,),
            replicas=(1,),
            median_duration_seconds=1800,
            duration_sigma=0.5,
        )
        jobs.extend(generate_workload(spec, seed=seed))
    tolerance = 4 / 32  # one of the largest jobs, as a share of the 32 GPUs

    def shares(order: QueueOrder) -> dict[str, float]:
        run = run_queue(jobs, CLUSTER, settings=QueueSettings(order=order))
        started = {o.job.name: o.started_at_seconds for o in run.outcomes}
        backlog_ends = min(
            max(started[j.job.name] or 0.0 for j in jobs if j.job.namespace == ns)
            for ns in ("team-a", "team-b", "team-c")
        )
        # From one median job length on (the initial fill is first come, first served) until the
        # first namespace runs out of queued work.
        window = [dict(s) for t, s in run.share_samples if 1800 <= t < backlog_ends]
        assert len(window) >= 10
        return {ns: statistics.fmean(s.get(ns, 0.0) for s in window) for ns in ("team-a", "team-b", "team-c")}

    fair = shares(QueueOrder.FAIR_SHARE)
    assert all(abs(share - 1 / 3) <= tolerance for share in fair.values()), fair
    first_come = shares(QueueOrder.FCFS)
    assert any(abs(share - 1 / 3) > tolerance for share in first_come.values()), first_come


@pytest.mark.parametrize(
    "order", [QueueOrder.FCFS, QueueOrder.SHORTEST_JOB_FIRST, QueueOrder.PRIORITY, QueueOrder.FAIR_SHARE]
)
def test_gang_placement_never_binds_part_of_a_job(order) -> None:
    spec = WorkloadSpec(
        jobs=24, mean_interarrival_seconds=30, gpus_per_replica=(2, 4, 8), replicas=(1, 2, 3, 6)
    )
    run = run_queue(
        generate_workload(spec, seed=7), CLUSTER, settings=QueueSettings(order=order), backfill=True
    )
    assert run.partial_placements == 0
    started = [o for o in run.outcomes if o.started_at_seconds is not None]
    assert started
    # 6 replicas × 8 GPUs = 48 > 32 GPUs: such a job can never start, and says so.
    assert all(o.never_fits for o in run.outcomes if o.started_at_seconds is None)


def test_the_workload_generator_is_reproducible_per_seed() -> None:
    spec = WorkloadSpec(jobs=20)
    assert generate_workload(spec, seed=3) == generate_workload(spec, seed=3)
    assert generate_workload(spec, seed=3) != generate_workload(spec, seed=4)
