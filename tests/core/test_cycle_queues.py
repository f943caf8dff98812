"""Queues in the scheduling cycle: admission by quota before placement, and preemption of whole
running jobs when an admitted (or reclaiming) job cannot be placed; all derived from status."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from modeljob.core.admission import QueueConfig
from modeljob.core.cluster_state import PodFacts
from modeljob.core.job_state import JobFacts, JobPhase, Requeue
from modeljob.core.jobs import Overrides
from modeljob.core.preemption_rules import PreemptionRules, WithinQueue
from modeljob.core.queueing import QueueOrder
from modeljob.core.quota_tree import QueueSpec, QuotaEntry, QuotaKey
from modeljob.core.scheduling_cycle import CycleResult, CycleSettings, run_cycle
from modeljob.core.steps import Keep, Place, Preempt, SetPhase, Step, Wait
from tests.operator_builders import H100, at, h100_nodes, make_job, placed, pods_of

GPU_H100 = QuotaKey("nvidia.com/gpu", frozenset({H100}))
RECLAIM = PreemptionRules(reclaim_borrowed=True)


def gpu_job(name: str, *, queue: str, gpus: int = 4, replicas: int = 1, **changes: object) -> JobFacts:
    job = make_job(name, queue=queue, replicas=replicas, products=(H100,), namespace="ml")
    job = replace(job, shape=replace(job.shape, overrides=Overrides(gpus=gpus)))
    return replace(job, **changes) if changes else job  # type: ignore[arg-type]


def running(job: JobFacts, *nodes: str, started: float, gpus: int = 4) -> tuple[JobFacts, list[PodFacts]]:
    job = replace(placed(job, *nodes), started=at(started))
    return job, pods_of(job, gpus=gpus)


def queue(
    name: str,
    nominal: int | None = None,
    *,
    parent: str | None = None,
    rules: PreemptionRules = RECLAIM,
    order: QueueOrder = QueueOrder.FCFS,
) -> QueueConfig:
    quota = (QuotaEntry(GPU_H100, nominal),) if nominal is not None else ()
    return QueueConfig(spec=QueueSpec(name=name, parent=parent, quota=quota), order=order, rules=rules)


TWO_TEAMS = (queue("research"), queue("team-a", 8, parent="research"), queue("team-b", 8, parent="research"))


def cycle(
    jobs: Sequence[JobFacts], pods: Sequence[PodFacts] = (), *, queues: Sequence[QueueConfig] = TWO_TEAMS
) -> CycleResult:
    return run_cycle(jobs, h100_nodes(2), pods, now=at(10_000), settings=CycleSettings(), queues=queues)


def step_of(result: CycleResult, name: str) -> Step:
    found = [s for s in result.steps if s.job.name == name]
    assert len(found) == 1, f"{name}: {found}"
    return found[0]


def team_a_borrowing_all_16() -> tuple[list[JobFacts], list[PodFacts]]:
    """team-a's four 4-GPU jobs on 16 GPUs: a1 and a2 within its nominal 8, a3 and a4 (the
    youngest) borrowing team-b's idle 8."""
    jobs, pods = [], []
    for index, (node, started) in enumerate(
        [("gpu-h100-0", 100), ("gpu-h100-1", 200), ("gpu-h100-0", 300), ("gpu-h100-1", 400)]
    ):
        job, job_pods = running(gpu_job(f"a{index + 1}", queue="team-a"), node, started=started)
        jobs.append(job)
        pods += job_pods
    return jobs, pods


# --- admission ------------------------------------------------------------------------------------


def test_without_queue_objects_every_job_is_admitted_as_before() -> None:
    result = cycle([gpu_job("solo", queue="nowhere", gpus=8)], queues=())
    assert isinstance(step_of(result, "solo"), Place)
    assert result.queues is None


def test_a_job_above_its_queues_quota_waits_naming_the_queue_and_the_numbers() -> None:
    busy, pods = running(gpu_job("busy", queue="solo", gpus=2), "gpu-h100-0", started=100, gpus=2)
    result = cycle([busy, gpu_job("big", queue="solo", gpus=4)], pods, queues=[queue("solo", 4)])
    step = step_of(result, "big")
    assert isinstance(step, Wait)
    assert step.message.startswith(f"queue solo: needs 4 {H100} GPUs, nominal 4, used 2; no parent")
    assert result.queues is not None
    assert result.queues.pending == {"solo": 1}


def test_a_job_naming_a_missing_queue_or_a_namespace_it_does_not_admit_waits_saying_so() -> None:
    closed = replace(queue("closed", 8), spec=QueueSpec(name="closed", namespaces=frozenset({"team-x"})))
    result = cycle([gpu_job("lost", queue="team-z"), gpu_job("outsider", queue="closed")], queues=[closed])
    lost, outsider = step_of(result, "lost"), step_of(result, "outsider")
    assert isinstance(lost, Wait)
    assert "queue team-z does not exist" in lost.message
    assert isinstance(outsider, Wait)
    assert "does not admit namespace ml" in outsider.message


def test_jobs_of_a_broken_queue_wait_with_its_problem_and_nothing_running_is_touched() -> None:
    broken = (
        queue("research", 12),
        queue("team-a", 8, parent="research"),
        queue("team-b", 8, parent="research"),
    )
    a1, pods = running(gpu_job("a1", queue="team-a"), "gpu-h100-0", started=100)
    result = cycle([a1, gpu_job("b1", queue="team-b")], pods, queues=broken)
    step = step_of(result, "b1")
    assert isinstance(step, Wait)
    assert "queue team-b: waits for queue research: its children's nominal 16" in step.message
    assert isinstance(step_of(result, "a1"), Keep | SetPhase)


def test_usage_follows_what_is_placed_so_a_queue_fills_its_nominal_then_borrows() -> None:
    jobs = [gpu_job(f"a{i}", queue="team-a", created=at(i)) for i in range(5)]
    result = cycle(jobs)
    placed_now = [s.job.name for s in result.steps if isinstance(s, Place)]
    assert placed_now == ["a0", "a1", "a2", "a3"]  # 16 GPUs: 8 nominal, 8 borrowed from team-b
    assert result.queues is not None
    assert result.queues.admitted == {"team-a": 4}


# --- preemption -----------------------------------------------------------------------------------


def test_team_b_takes_back_what_team_a_borrowed_by_preempting_its_youngest_jobs_whole() -> None:
    jobs, pods = team_a_borrowing_all_16()
    result = cycle([*jobs, gpu_job("b1", queue="team-b", replicas=2)], pods)
    step = step_of(result, "b1")
    assert isinstance(step, Preempt), step
    assert sorted(v.job.name for v in step.victims) == ["a3", "a4"]
    for victim in step.victims:
        assert (victim.preempted_by, victim.preemption_rule) == ("ml/b1", "ReclaimBorrowed")
        assert victim.requeue is Requeue.PREEMPTED
        assert victim.phase is JobPhase.QUEUED
        assert victim.delete_pods == tuple(e.pod for e in victim.job.placement)  # whole job
        assert "queue team-b takes back the quota queue team-a borrowed" in victim.message
    assert step.nodes == ("gpu-h100-0", "gpu-h100-1")
    # a1, a2 and b1: the victims' evictions ride in b1's Preempt, so no victim gets a second step.
    assert len(result.steps) == 3


def test_a_queue_without_reclaim_waits_for_its_lent_quota() -> None:
    jobs, pods = team_a_borrowing_all_16()
    patient = [
        queue("research"),
        queue("team-a", 8, parent="research"),
        queue("team-b", 8, parent="research", rules=PreemptionRules()),
    ]
    step = step_of(cycle([*jobs, gpu_job("b1", queue="team-b", replicas=2)], pods, queues=patient), "b1")
    assert isinstance(step, Wait)
    assert "in use by other queues that borrowed it" in step.message


def test_a_lower_priority_job_of_the_same_queue_is_preempted_for_a_higher_one() -> None:
    rules = PreemptionRules(within_queue=WithinQueue.LOWER_PRIORITY)
    low, low_pods = running(gpu_job("low", queue="q", gpus=8), "gpu-h100-0", started=100, gpus=8)
    other, other_pods = running(
        gpu_job("other", queue="q", gpus=8, priority=5), "gpu-h100-1", started=50, gpus=8
    )
    urgent = gpu_job("urgent", queue="q", gpus=8, priority=10)
    result = cycle([low, other, urgent], [*low_pods, *other_pods], queues=[queue("q", 16, rules=rules)])
    step = step_of(result, "urgent")
    assert isinstance(step, Preempt)
    assert [(v.job.name, v.preemption_rule) for v in step.victims] == [("low", "LowerPriority")]


def test_min_runtime_protects_a_young_job() -> None:
    rules = PreemptionRules(within_queue=WithinQueue.LOWER_PRIORITY, min_runtime_seconds=600)
    young, pods = running(
        gpu_job("young", queue="q", gpus=8, replicas=2), "gpu-h100-0", "gpu-h100-1", started=9_900, gpus=8
    )
    result = cycle(
        [young, gpu_job("urgent", queue="q", gpus=8, priority=10)], pods, queues=[queue("q", 32, rules=rules)]
    )
    step = step_of(result, "urgent")
    assert isinstance(step, Wait)
    assert "no preemption: no running job may be preempted (1 ran less than minRuntime)" in step.message


def test_shorter_remaining_time_preempts_the_job_with_the_most_remaining_time() -> None:
    rules = PreemptionRules(within_queue=WithinQueue.SHORTER_REMAINING_TIME)
    long, long_pods = running(
        gpu_job("long", queue="q", gpus=8, expected_duration_seconds=36_000),
        "gpu-h100-0",
        started=1000,
        gpus=8,
    )
    short, short_pods = running(
        gpu_job("short", queue="q", gpus=8, expected_duration_seconds=10_000),
        "gpu-h100-1",
        started=1000,
        gpus=8,
    )
    new = gpu_job("new", queue="q", gpus=8, expected_duration_seconds=600)
    result = cycle(
        [long, short, new],
        [*long_pods, *short_pods],
        queues=[queue("q", 16, rules=rules, order=QueueOrder.SHORTEST_REMAINING_TIME_FIRST)],
    )
    step = step_of(result, "new")
    assert isinstance(step, Preempt)
    assert [(v.job.name, v.preemption_rule) for v in step.victims] == [("long", "ShorterRemainingTime")]


def test_shorter_remaining_time_counts_the_work_a_readmitted_job_kept_from_earlier_runs() -> None:
    """``resumed`` (10 h expected) ran 2.5 h now after keeping 5.5 h from runs it was preempted
    from (status.checkpointedSeconds): 2 h remain, fewer than ``fresh``'s 3 h. Only the time
    run now counted, ``resumed`` would seem to have 7.5 h left and be chosen."""
    rules = PreemptionRules(within_queue=WithinQueue.SHORTER_REMAINING_TIME)
    resumed, resumed_pods = running(
        gpu_job(
            "resumed",
            queue="q",
            gpus=8,
            expected_duration_seconds=36_000,
            checkpoint_interval_seconds=600,
            run_before_seconds=19_800,
        ),
        "gpu-h100-0",
        started=1000,
        gpus=8,
    )
    fresh, fresh_pods = running(
        gpu_job("fresh", queue="q", gpus=8, expected_duration_seconds=19_800),
        "gpu-h100-1",
        started=1000,
        gpus=8,
    )
    new = gpu_job("new", queue="q", gpus=8, expected_duration_seconds=600)
    result = cycle(
        [resumed, fresh, new],
        [*resumed_pods, *fresh_pods],
        queues=[queue("q", 16, rules=rules, order=QueueOrder.SHORTEST_REMAINING_TIME_FIRST)],
    )
    step = step_of(result, "new")
    assert isinstance(step, Preempt)
    assert [(v.job.name, v.preemption_rule) for v in step.victims] == [("fresh", "ShorterRemainingTime")]


def test_srtf_orders_a_waiting_job_by_its_expected_time_less_the_work_its_earlier_runs_kept() -> None:
    """Room for one: ``resumed`` (10 h expected, 9 h kept) goes before ``short`` (2 h)."""
    resumed = gpu_job("resumed", queue="q", gpus=8, replicas=2, expected_duration_seconds=36_000)
    resumed = replace(resumed, run_before_seconds=32_400)
    short = gpu_job("short", queue="q", gpus=8, replicas=2, expected_duration_seconds=7_200)
    result = cycle([short, resumed], queues=[queue("q", 16, order=QueueOrder.SHORTEST_REMAINING_TIME_FIRST)])
    assert isinstance(step_of(result, "resumed"), Place)
    assert isinstance(step_of(result, "short"), Wait)


def test_a_job_that_checkpoints_yields_to_a_waiting_job_of_its_queue_once_past_its_time_slice() -> None:
    rules = PreemptionRules(time_slice_seconds=600)
    turn, pods = running(
        gpu_job("first", queue="q", gpus=8, replicas=2, checkpoint_interval_seconds=300),
        "gpu-h100-0",
        "gpu-h100-1",
        started=9_000,
        gpus=8,
    )
    waiting = gpu_job("second", queue="q", gpus=8, replicas=2)
    result = cycle([turn, waiting], pods, queues=[queue("q", 16, rules=rules, order=QueueOrder.TIME_SLICE)])
    step = step_of(result, "second")
    assert isinstance(step, Preempt)
    assert [(v.job.name, v.preemption_rule) for v in step.victims] == [("first", "TimeSlice")]


def test_a_job_never_preempts_the_job_that_preempted_it() -> None:
    rules = PreemptionRules(within_queue=WithinQueue.LOWER_PRIORITY)
    holder, pods = running(
        gpu_job("holder", queue="q", gpus=8, replicas=2), "gpu-h100-0", "gpu-h100-1", started=100, gpus=8
    )
    back = gpu_job("back", queue="q", gpus=8, replicas=2, priority=10, preempted_by=("ml/holder",))
    step = step_of(cycle([holder, back], pods, queues=[queue("q", 32, rules=rules)]), "back")
    assert isinstance(step, Wait)
    assert "1 preempted it earlier" in step.message


# --- a preemption across a restart ----------------------------------------------------------------


def b1_with_a_plan(**changes: object) -> JobFacts:
    """team-b's b1, submitted once team-a's jobs ran (t=500), with its plan written: evict a3 and
    a4 (team_a_borrowing_all_16), whose nodes are kept for it."""
    plan: dict[str, object] = {
        "created": at(500),
        "queued_since": at(500),
        "preempting": ("ml/a3", "ml/a4"),
        "nominated_nodes": ("gpu-h100-0", "gpu-h100-1"),
    }
    return gpu_job("b1", queue="team-b", replicas=2, **(plan | changes))


def test_after_a_restart_the_victims_a_written_plan_names_and_not_yet_evicted_are_evicted() -> None:
    jobs, pods = team_a_borrowing_all_16()
    a3 = replace(jobs[2], placement=(), phase=JobPhase.QUEUED, preempted_by=("ml/b1",), started=None)
    a3_pods = [replace(p, terminating=True) for p in pods if p.job_uid == a3.uid]
    rest = [p for p in pods if p.job_uid != a3.uid]
    b1 = b1_with_a_plan()
    result = cycle([jobs[0], jobs[1], a3, jobs[3], b1], [*rest, *a3_pods])
    step = step_of(result, "b1")
    assert isinstance(step, Preempt)
    assert [v.job.name for v in step.victims] == ["a4"]


def test_a_preemptor_waits_while_its_victims_pods_go_then_is_placed_first() -> None:
    jobs, pods = team_a_borrowing_all_16()
    evicted = [
        replace(j, placement=(), phase=JobPhase.QUEUED, preempted_by=("ml/b1",), started=None)
        for j in jobs[2:]
    ]
    going = [replace(p, terminating=True) for p in pods if p.job_uid in {j.uid for j in evicted}]
    kept = [p for p in pods if p not in going and p.job_uid not in {j.uid for j in evicted}]
    b1 = b1_with_a_plan()
    step = step_of(cycle([*jobs[:2], *evicted, b1], [*kept, *going]), "b1")
    assert isinstance(step, Wait)
    assert "waiting for the pods of the jobs it preempted to go" in step.message
    result = cycle([*jobs[:2], *evicted, b1], kept)  # the pods are gone
    assert isinstance(step_of(result, "b1"), Place)
    assert all(isinstance(step_of(result, j.name), Wait) for j in evicted)  # team-a's wait for quota


def test_a_preemptor_holds_its_quota_while_its_victims_go_and_who_waits_for_it_is_told_its_name() -> None:
    """b1 is not running yet but its victims are being evicted: it keeps its charge (else a3 would
    be admitted again into the room b1 made), and a3's reason names the reservation it counts."""
    jobs, pods = team_a_borrowing_all_16()
    evicted = [
        replace(j, placement=(), phase=JobPhase.QUEUED, preempted_by=("ml/b1",), started=None)
        for j in jobs[2:]
    ]
    going = [replace(p, terminating=True) for p in pods if p.job_uid in {j.uid for j in evicted}]
    kept = [p for p in pods if p not in going]
    result = cycle([*jobs[:2], *evicted, b1_with_a_plan()], [*kept, *going])
    assert isinstance(step_of(result, "b1"), Wait)
    a3 = step_of(result, "a3")
    assert isinstance(a3, Wait), a3
    assert a3.message.startswith(f"queue team-a: needs 4 {H100} GPUs, nominal 8, used 8; can borrow 0"), (
        a3.message
    )
    assert f"; counted as in use: 8 {H100} GPUs reserved by ml/b1 for its preemption;" in a3.message
    assert result.queues is not None
    assert result.queues.usage.of("team-b", GPU_H100) == 0, "the Queue's status shows what runs"


def test_a_job_whose_nodes_are_all_kept_for_a_preemption_waits_and_is_not_unschedulable() -> None:
    """b1's plan keeps both nodes while a4 is still to be evicted; a3, evicted already and admitted
    again by borrowing what b1 has not taken yet, sees no node: that is "not now", not "never"."""
    jobs, pods = team_a_borrowing_all_16()
    a3 = replace(jobs[2], placement=(), phase=JobPhase.QUEUED, preempted_by=("ml/b1",), started=None)
    rest = [p for p in pods if p.job_uid != a3.uid]
    b1 = b1_with_a_plan()
    result = cycle([jobs[0], jobs[1], a3, jobs[3], b1], rest)
    assert isinstance(step_of(result, "b1"), Preempt)
    step = step_of(result, "a3")
    assert isinstance(step, Wait), step
    assert "kept for another job's preemption" in step.message


def test_a_preemptors_nodes_stay_kept_in_the_cycle_that_finds_its_victims_gone() -> None:
    """a3 and a4 were evicted for b1 and their pods are gone, but team-b's quota shrank to 4 so b1
    (8 GPUs) now waits for quota. Its plan is still written this cycle (the Wait clears it): the
    nodes it names stay kept, so a3, admitted again by borrowing, is not placed back onto them."""
    jobs, pods = team_a_borrowing_all_16()
    evicted = [
        replace(j, placement=(), phase=JobPhase.QUEUED, preempted_by=("ml/b1",), started=None)
        for j in jobs[2:]
    ]
    kept = [p for p in pods if p.job_uid not in {j.uid for j in evicted}]
    shrunk = (queue("research"), queue("team-a", 8, parent="research"), queue("team-b", 4, parent="research"))
    result = cycle([*jobs[:2], *evicted, b1_with_a_plan()], kept, queues=shrunk)
    b1 = step_of(result, "b1")
    assert isinstance(b1, Wait), b1
    assert not b1.keeps_plan, "the Wait for quota clears the plan"
    a3 = step_of(result, "a3")
    assert isinstance(a3, Wait), a3
    assert "kept for another job's preemption" in a3.message


def test_without_queue_objects_the_queues_take_turns_each_in_its_own_order() -> None:
    """Nothing fits now (both nodes held): the queue numbers show the order the jobs were tried
    in, team-a's and team-b's in turn, and one queue alone in its own order."""
    jobs = [
        gpu_job(n, queue=q, gpus=8, created=at(t))
        for t, (n, q) in enumerate([("a1", "team-a"), ("a2", "team-a"), ("a3", "team-a"), ("b1", "team-b")])
    ]

    def numbers(result: CycleResult) -> list[tuple[str, int]]:
        waits = [s for s in result.steps if isinstance(s, Wait)]
        return sorted(((s.job.name, s.queue_position) for s in waits), key=lambda item: item[1])

    hold, pods = running(
        gpu_job("hold", queue="other", gpus=8, replicas=2), "gpu-h100-0", "gpu-h100-1", started=0, gpus=8
    )
    assert numbers(cycle([hold, *jobs], pods, queues=())) == [("a1", 1), ("b1", 2), ("a2", 3), ("a3", 4)]
    assert numbers(cycle([hold, *jobs[:3]], pods, queues=())) == [("a1", 1), ("a2", 2), ("a3", 3)]
