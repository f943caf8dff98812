"""The shared-queue simulator: quotas with borrowing, reclaim, SRTF and time slices over time, and
the anti-thrash guarantees held over generated job streams."""

from __future__ import annotations

import dataclasses
import math
import statistics

from hypothesis import given, settings
from hypothesis import strategies as st

from modeljob.core.preemption import VictimOrder
from modeljob.core.preemption_rules import PreemptionReason, PreemptionRules, WithinQueue
from modeljob.core.queueing import QueuedJob, QueueOrder, QueueSettings
from modeljob.core.quota_tree import QueueSpec, QuotaEntry, QuotaKey
from modeljob.core.resources import Resources
from modeljob.core.sim.queue_report import SharedRun, queue_stats
from modeljob.core.sim.shared_queues import SharingSettings, run_shared_queues
from modeljob.core.sim.workload_generator import SyntheticJob, WorkloadSpec, generate_workload
from tests.builders import make_node, make_pod

HOUR = 3600.0
DAY = 24 * HOUR
TWO_NODES = [make_node(f"gpu-{i}", gpus=8) for i in range(2)]
FOUR_NODES = [make_node(f"gpu-{i}", gpus=8) for i in range(4)]
GPU = QuotaKey("nvidia.com/gpu")


def two_teams(
    a: int = 8, b: int = 8, *, a_borrowing_limit: int | None = None, b_lending_limit: int | None = None
) -> tuple[QueueSpec, ...]:
    """team-a and team-b under one parent that declares no GPU quota: it pools what they lend."""
    return (
        QueueSpec("research"),
        QueueSpec(
            "team-a", parent="research", quota=(QuotaEntry(GPU, a, borrowing_limit=a_borrowing_limit),)
        ),
        QueueSpec("team-b", parent="research", quota=(QuotaEntry(GPU, b, lending_limit=b_lending_limit),)),
    )


def synthetic(
    name: str, *, at: float, queue: str, gpus: int, replicas: int = 1, hours: float = 4.0, **job
) -> SyntheticJob:
    return SyntheticJob(
        job=QueuedJob(
            name=name,
            submitted_at_seconds=at,
            queue=queue,
            demand=Resources(gpus=gpus * replicas),
            expected_duration_seconds=hours * HOUR,
            **job,
        ),
        replicas=replicas,
        replica_request=make_pod(gpus=gpus),
        duration_seconds=hours * HOUR,
    )


def started(run: SharedRun, name: str) -> float | None:
    (record,) = [r for r in run.records if r.job.name == name]
    return record.first_started_at_seconds


def test_a_queue_reclaims_its_nominal_from_a_borrower_whole_gangs_and_no_more() -> None:
    # team-a's two 8-GPU gangs of 2 pods... borrow all 16 GPUs; team-b (nominal 8) submits 8 GPUs.
    jobs = [
        synthetic("a-0", at=0, queue="team-a", gpus=4, replicas=2),
        synthetic("a-1", at=1, queue="team-a", gpus=4, replicas=2),
        synthetic("b-0", at=HOUR, queue="team-b", gpus=8),
    ]
    rules = PreemptionRules(reclaim_borrowed=True, min_runtime_seconds=600)
    run = run_shared_queues(jobs, TWO_NODES, settings=SharingSettings(queues=two_teams(), rules=rules))
    assert started(run, "b-0") == HOUR
    assert [(e.victim, e.reason, e.pods_released, e.pods_of_job) for e in run.events] == [
        ("a-1", PreemptionReason.RECLAIM_BORROWED, 2, 2)
    ]
    finished = {r.job.name: r.finished_at_seconds for r in run.records}
    assert all(finished.values()), "the victim runs again once room frees"


def test_without_reclaim_the_borrower_keeps_its_gpus() -> None:
    jobs = [
        synthetic("a-0", at=0, queue="team-a", gpus=8),
        synthetic("a-1", at=1, queue="team-a", gpus=8),
        synthetic("b-0", at=HOUR, queue="team-b", gpus=8),
    ]
    run = run_shared_queues(
        jobs, TWO_NODES, settings=SharingSettings(queues=two_teams(), rules=PreemptionRules())
    )
    assert run.events == ()
    assert started(run, "b-0") == 4 * HOUR


def test_a_borrowing_limit_holds_a_queue_below_the_idle_capacity() -> None:
    jobs = [synthetic(f"a-{i}", at=i, queue="team-a", gpus=8) for i in range(2)]
    run = run_shared_queues(jobs, TWO_NODES, settings=SharingSettings(queues=two_teams(a_borrowing_limit=0)))
    assert started(run, "a-1") == 4 * HOUR


def test_a_lending_limit_keeps_part_of_the_lenders_nominal_for_itself() -> None:
    # team-b lends at most 4 of its 8: team-a borrows 4 of the idle 8 GPUs, no more.
    jobs = [
        synthetic("a-0", at=0, queue="team-a", gpus=8),
        synthetic("a-1", at=1, queue="team-a", gpus=4),
        synthetic("a-2", at=2, queue="team-a", gpus=4),
    ]
    run = run_shared_queues(jobs, TWO_NODES, settings=SharingSettings(queues=two_teams(b_lending_limit=4)))
    assert (started(run, "a-1"), started(run, "a-2")) == (1, 4 * HOUR)


def test_a_job_no_quota_of_its_tree_can_ever_admit_never_starts_and_holds_nobody_back() -> None:
    jobs = [
        synthetic("a-big", at=0, queue="team-a", gpus=8, replicas=2),
        synthetic("a-0", at=1, queue="team-a", gpus=8),
    ]
    run = run_shared_queues(jobs, TWO_NODES, settings=SharingSettings(queues=two_teams(a_borrowing_limit=4)))
    never = {r.job.name for r in run.records if r.never_fits}
    assert never == {"a-big"}
    assert started(run, "a-0") == 1


def test_a_job_admitted_but_not_placed_holds_no_quota_against_the_jobs_after_it() -> None:
    """team-b's filler runs 5 + 5 GPUs for 10 h; team-a's 4-GPU job is admitted (its nominal 6) but
    no node has 4 free. It gives its charge back: team-a's 3-GPU job and team-b's, refused against
    that charge before, start on arrival, as the operator places them."""
    jobs = [
        synthetic("b-filler", at=0, queue="team-b", gpus=5, replicas=2, hours=10),
        synthetic("a-big", at=HOUR, queue="team-a", gpus=4),
        synthetic("a-small", at=HOUR + 1, queue="team-a", gpus=3),
        synthetic("b-small", at=HOUR + 2, queue="team-b", gpus=3),
    ]
    run = run_shared_queues(jobs, TWO_NODES, settings=SharingSettings(queues=two_teams(6, 10)))
    assert (started(run, "a-small"), started(run, "b-small")) == (HOUR + 1, HOUR + 2)
    assert started(run, "a-big") == 10 * HOUR  # once the filler's room frees


def test_behind_a_head_waiting_for_quota_only_a_job_that_ends_before_it_could_start_goes_first() -> None:
    """team-a may hold 8 (no borrowing). a-head (8 GPUs) waits for a-long to end at 4 h; a-short
    declares 1 h and goes first (it ends long before); a-longer declares 6 h and waits behind the
    head (it would delay it), as the operator's backfill decides (core/backfill.py)."""
    jobs = [
        synthetic("a-long", at=0, queue="team-a", gpus=4, hours=4),
        synthetic("a-head", at=1, queue="team-a", gpus=8),
        synthetic("a-short", at=2, queue="team-a", gpus=2, hours=1),
        synthetic("a-longer", at=3, queue="team-a", gpus=2, hours=6),
    ]
    run = run_shared_queues(jobs, TWO_NODES, settings=SharingSettings(queues=two_teams(a_borrowing_limit=0)))
    assert (started(run, "a-short"), started(run, "a-head"), started(run, "a-longer")) == (
        2,
        4 * HOUR,
        8 * HOUR,
    )


def test_a_reclaiming_queue_takes_back_only_what_was_borrowed_from_its_own_parent() -> None:
    # Two subtrees: team-c (under "other") borrows nothing from research, so team-b's claim
    # cannot touch it; only team-a's borrowed job is reclaimed.
    queues = (
        *two_teams(),
        QueueSpec("other"),
        QueueSpec("team-c", parent="other", quota=(QuotaEntry(GPU, 8),)),
    )
    jobs = [
        synthetic("c-0", at=0, queue="team-c", gpus=8),
        synthetic("a-0", at=1, queue="team-a", gpus=8),
        synthetic("a-1", at=2, queue="team-a", gpus=8),
        synthetic("b-0", at=HOUR, queue="team-b", gpus=8),
    ]
    rules = PreemptionRules(reclaim_borrowed=True, min_runtime_seconds=600)
    three_nodes = [make_node(f"gpu-{i}", gpus=8) for i in range(3)]
    run = run_shared_queues(jobs, three_nodes, settings=SharingSettings(queues=queues, rules=rules))
    assert [(e.victim, e.preemptor, e.reason) for e in run.events] == [
        ("a-1", "b-0", PreemptionReason.RECLAIM_BORROWED)
    ]
    assert started(run, "b-0") == HOUR


def test_srtf_preempts_the_job_with_the_most_remaining_time_past_the_margin() -> None:
    jobs = [
        synthetic("long", at=0, queue="q", gpus=8, hours=10),
        synthetic("longer", at=1, queue="q", gpus=8, hours=12),
        synthetic("short", at=HOUR, queue="q", gpus=8, hours=1),
    ]
    settings_ = SharingSettings(
        queue=QueueSettings(order=QueueOrder.SHORTEST_REMAINING_TIME_FIRST),
        rules=PreemptionRules(within_queue=WithinQueue.SHORTER_REMAINING_TIME, min_runtime_seconds=600),
    )
    run = run_shared_queues(jobs, TWO_NODES, settings=settings_)
    # Both have run an hour: "longer" loses 8 GPU-h like "long" but has more left... both lose the
    # same work, so the tie goes by name; what matters: the short job starts at once.
    assert started(run, "short") == HOUR
    assert [e.reason for e in run.events] == [PreemptionReason.SHORTER_REMAINING_TIME]


def test_time_slices_alternate_two_long_jobs_on_one_node() -> None:
    jobs = [synthetic(name, at=i, queue="q", gpus=8, hours=3) for i, name in enumerate(("first", "second"))]
    jobs = [dataclasses.replace(item, checkpoint_interval_seconds=HOUR / 2) for item in jobs]
    settings_ = SharingSettings(
        queue=QueueSettings(order=QueueOrder.TIME_SLICE),
        rules=PreemptionRules(time_slice_seconds=HOUR, min_runtime_seconds=600),
    )
    run = run_shared_queues(jobs, TWO_NODES[:1], settings=settings_)
    turns = [(e.at_seconds // HOUR, e.victim) for e in run.events]
    assert turns[:3] == [(1, "first"), (2, "second"), (3, "first")]
    assert all(e.reason is PreemptionReason.TIME_SLICE and e.lost_gpu_hours == 0 for e in run.events)
    assert all(r.finished_at_seconds for r in run.records)


def test_srtf_beats_fcfs_and_sjf_on_mean_completion_when_durations_are_known() -> None:
    # SRTF assumes preempt-resume: every job checkpoints every 5 minutes.
    spec = WorkloadSpec(
        jobs=80,
        declared_error_sigma=0.0,
        mean_interarrival_seconds=90,
        checkpoint_share=1.0,
        checkpoint_intervals_seconds=(300.0,),
    )
    srtf = SharingSettings(
        queue=QueueSettings(order=QueueOrder.SHORTEST_REMAINING_TIME_FIRST),
        rules=PreemptionRules(within_queue=WithinQueue.SHORTER_REMAINING_TIME, min_runtime_seconds=600),
    )
    fcfs = SharingSettings(queue=QueueSettings(order=QueueOrder.FCFS))
    sjf = SharingSettings(queue=QueueSettings(order=QueueOrder.SHORTEST_JOB_FIRST))

    def mean_completion(sharing: SharingSettings) -> float:
        runs = [
            run_shared_queues(generate_workload(spec, seed=s), FOUR_NODES, settings=sharing) for s in (1, 2)
        ]
        return statistics.fmean(queue_stats(run)[-1].mean_completion_hours for run in runs)

    ours = mean_completion(srtf)
    assert ours < mean_completion(sjf) < mean_completion(fcfs)


def test_the_shadow_chooser_is_asked_on_the_same_state_and_ours_never_loses_more_there() -> None:
    spec = WorkloadSpec(jobs=80, priorities=(0, 1, 2), checkpoint_share=0.5, mean_interarrival_seconds=90)
    sharing = SharingSettings(
        queue=QueueSettings(order=QueueOrder.PRIORITY),
        rules=PreemptionRules(within_queue=WithinQueue.LOWER_PRIORITY, min_runtime_seconds=600),
        shadow_order=VictimOrder.KUEUE_LIKE,
    )
    run = run_shared_queues(generate_workload(spec, seed=3), FOUR_NODES, settings=sharing)
    paired = [d for d in run.decisions if d.shadow_lost_gpu_hours is not None]
    assert len(paired) >= 5
    assert all(d.lost_gpu_hours <= d.shadow_lost_gpu_hours + 1e-9 for d in paired)  # type: ignore[operator]


def test_per_queue_report_counts_shares_against_nominal() -> None:
    jobs = [synthetic("a-0", at=0, queue="team-a", gpus=8), synthetic("b-0", at=0, queue="team-b", gpus=8)]
    queues = two_teams(12, 4)
    rows = {
        row.queue: row
        for row in queue_stats(run_shared_queues(jobs, TWO_NODES, settings=SharingSettings(queues=queues)))
    }
    assert rows["team-a"].share_received == rows["team-b"].share_received == 0.5
    assert (rows["team-a"].share_entitled, rows["team-b"].share_entitled) == (0.75, 0.25)
    assert rows["all"].gpu_utilisation == 1.0


# --- anti-thrash properties over generated streams --------------------------------------------


Stream = tuple[list[SyntheticJob], SharingSettings]


@st.composite
def streams(draw: st.DrawFn) -> Stream:
    spec = WorkloadSpec(
        jobs=draw(st.integers(3, 14)),
        queues=("team-a", "team-b"),
        priorities=(0, 1, 2),
        mean_interarrival_seconds=draw(st.sampled_from((60.0, 600.0, 1800.0))),
        median_duration_seconds=draw(st.sampled_from((1800.0, 4 * HOUR))),
        gpus_per_replica=(1, 2, 4, 8),
        replicas=(1, 2),
        checkpoint_share=draw(st.sampled_from((0.0, 0.5))),
    )
    jobs = generate_workload(spec, seed=draw(st.integers(0, 10_000)))
    slices = draw(st.booleans())
    rules = PreemptionRules(
        within_queue=draw(st.sampled_from(WithinQueue)),
        reclaim_borrowed=draw(st.booleans()),
        min_runtime_seconds=draw(st.sampled_from((600.0, 1800.0))),
        max_victims_per_cycle=draw(st.integers(1, 4)),
        time_slice_seconds=HOUR if slices else None,
    )
    order = (
        QueueOrder.TIME_SLICE
        if slices
        else draw(st.sampled_from(QueueOrder).filter(lambda o: o is not QueueOrder.FAIR_SHARE))
    )
    queues = draw(st.sampled_from(((), two_teams(), two_teams(a_borrowing_limit=4, b_lending_limit=4))))
    sharing = SharingSettings(
        queue=QueueSettings(order=order),
        queues=queues,
        rules=rules,
        victim_order=draw(st.sampled_from(VictimOrder)),
    )
    return list(jobs), sharing


def has_cycle(edges: set[tuple[str, str]]) -> bool:
    graph: dict[str, set[str]] = {}
    for preemptor, victim in edges:
        graph.setdefault(preemptor, set()).add(victim)
    seen: set[str] = set()
    on_path: set[str] = set()

    def visit(node: str) -> bool:
        if node in on_path:
            return True
        if node in seen:
            return False
        seen.add(node)
        on_path.add(node)
        found = any(visit(next_node) for next_node in graph.get(node, ()))
        on_path.discard(node)
        return found

    return any(visit(node) for node in list(graph))


@settings(max_examples=500, deadline=None, derandomize=True)
@given(streams())
def test_no_thrashing_no_partial_gang_and_no_starvation(
    stream: tuple[list[SyntheticJob], SharingSettings],
) -> None:
    jobs, sharing = stream
    assert sharing.rules is not None
    run = run_shared_queues(jobs, TWO_NODES, settings=sharing)
    # No preemption cycle: the who-preempted-whom graph over the whole run is acyclic.
    chained = {(e.preemptor, e.victim) for e in run.events if e.reason is not PreemptionReason.TIME_SLICE}
    assert not has_cycle(chained)
    # Each preemption needs minRuntime of running since the job's last start (priorities are
    # constant): at most one per minRuntime of its running, so per simulated day:
    bound = math.ceil(run.span_seconds / DAY) * DAY / sharing.rules.min_runtime_seconds
    per_job: dict[str, int] = {}
    for e in run.events:
        per_job[e.victim] = per_job.get(e.victim, 0) + 1
    assert all(count <= bound for count in per_job.values())
    # Gangs are evicted and bound whole; a preemptor always fits once its victims are gone.
    assert all(e.pods_released == e.pods_of_job for e in run.events)
    assert run.partial_placements == 0
    assert run.preemptor_misfits == 0
    assert run.quota_overruns == 0
    # Nobody starves: every job that fits the cluster (and its queue's quota) finishes.
    assert all(r.finished_at_seconds is not None for r in run.records if not r.never_fits)
