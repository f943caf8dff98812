"""Preemption as a specification: who may be evicted, which whole jobs are, and what never happens."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from modeljob.core.gang_placement import plan_gang
from modeljob.core.gang_request import GangRequest, Placement, ReplicaRequests
from modeljob.core.nodes import NodeTable
from modeljob.core.preemption import (
    NoPreemption,
    Preemption,
    VictimOrder,
    choose_victims,
    gang_fits,
)
from modeljob.core.preemption_rules import (
    PodSlot,
    PreemptionHistory,
    PreemptionReason,
    PreemptionRules,
    Preemptor,
    RunningJob,
    WithinQueue,
    eligibility,
)
from modeljob.core.scoring.weights import ScoringWeights
from tests.builders import make_node, make_pod, make_table

HOUR = 3600.0
NOW = 10 * HOUR
LOWER = PreemptionRules(within_queue=WithinQueue.LOWER_PRIORITY)
PACK = ScoringWeights(most_allocated=1.0)  # a plan that needs no learned workload


@dataclass
class Cluster:
    """Nodes of 8 GPUs with jobs bound on them, kept in the ledger as the operator keeps them."""

    table: NodeTable
    jobs: list[RunningJob] = field(default_factory=list)

    @classmethod
    def of(cls, nodes: int) -> Cluster:
        return cls(make_table(*(make_node(f"n{i}", gpus=8) for i in range(nodes))).working_copy())

    def run(self, name: str, *where: tuple[str, int], hours_ago: float = 1.0, **fields: object) -> RunningJob:
        """Bind job ``name`` with one pod per (node, GPUs), started ``hours_ago``."""
        pods = []
        for node, gpus in where:
            request = make_pod(gpus=gpus)
            devices = self.table.reserve(self.table.names.index(node), request)
            pods.append(PodSlot(node=node, request=request, devices=devices))
        fields.setdefault("queue", "a")
        fields.setdefault("priority", 0)
        job = RunningJob(name=name, started_at_seconds=NOW - hours_ago * HOUR, pods=tuple(pods), **fields)
        self.jobs.append(job)
        return job

    def choose(
        self, *, gpus: int, replicas: int = 1, priority: int = 1, queue: str = "a", **options: object
    ) -> Preemption | NoPreemption:
        preemptor = Preemptor(
            name="waiting",
            queue=queue,
            priority=priority,
            expected_duration_seconds=options.pop("duration", None),
        )
        gang = GangRequest(
            job="waiting", replicas=replicas, requests=ReplicaRequests.uniform(make_pod(gpus=gpus))
        )
        options.setdefault("rules", LOWER)
        return choose_victims(
            preemptor,
            self.jobs,
            table=self.table,
            fits=gang_fits(gang, weights=PACK),
            now_seconds=NOW,
            **options,
        )


def victims(outcome: Preemption | NoPreemption) -> list[str]:
    assert isinstance(outcome, Preemption), outcome
    return [victim.name for victim in outcome.victims]


def test_a_job_that_fits_evicts_nobody() -> None:
    cluster = Cluster.of(1)
    cluster.run("low", ("n0", 4), priority=0)
    assert victims(cluster.choose(gpus=4)) == []


def test_a_lower_priority_job_of_the_same_queue_is_evicted() -> None:
    cluster = Cluster.of(1)
    cluster.run("low", ("n0", 8), priority=0)
    outcome = cluster.choose(gpus=8, priority=1)
    assert victims(outcome) == ["low"]
    assert isinstance(outcome, Preemption)
    assert outcome.victims[0].reason is PreemptionReason.LOWER_PRIORITY
    assert outcome.lost_gpu_hours == pytest.approx(8.0)


@pytest.mark.parametrize(
    ("rules", "priority", "why"),
    [
        (LOWER, 0, "not lower priority"),
        (PreemptionRules(within_queue=WithinQueue.NEVER), 5, "withinQueue is Never"),
        (
            PreemptionRules(within_queue=WithinQueue.LOWER_PRIORITY, min_runtime_seconds=2 * HOUR),
            5,
            "minRuntime",
        ),
    ],
    ids=["equal-priority", "never", "min-runtime-protects-a-young-job"],
)
def test_no_rule_no_victim_and_the_reason_says_which(rules: PreemptionRules, priority: int, why: str) -> None:
    cluster = Cluster.of(1)
    cluster.run("running", ("n0", 8), priority=0, hours_ago=1.0)
    outcome = cluster.choose(gpus=8, priority=priority, rules=rules)
    assert isinstance(outcome, NoPreemption)
    assert why in outcome.reason


def test_the_job_that_loses_the_fewest_gpu_hours_is_chosen() -> None:
    cluster = Cluster.of(2)
    cluster.run("old", ("n0", 8), hours_ago=5)
    cluster.run("young", ("n1", 8), hours_ago=1)
    assert victims(cluster.choose(gpus=8)) == ["young"]


def test_a_job_that_checkpoints_loses_only_the_time_since_its_last_checkpoint() -> None:
    cluster = Cluster.of(2)
    # 5 h 6 min in, checkpoints every 30 min: 6 minutes lost, less than the young job's hour.
    cluster.run("checkpointing", ("n0", 8), hours_ago=5.1, checkpoint_interval_seconds=HOUR / 2)
    cluster.run("young", ("n1", 8), hours_ago=1)
    outcome = cluster.choose(gpus=8)
    assert victims(outcome) == ["checkpointing"]
    assert isinstance(outcome, Preemption)
    assert outcome.lost_gpu_hours == pytest.approx(8 * 0.1)


def test_gpu_hours_count_gpus_not_only_time() -> None:
    # Preemptor needs 1 GPU: the 1-GPU job run 4 h loses 4 GPU-h, the 8-GPU job run 1 h loses 8.
    cluster = Cluster.of(2)
    cluster.run("wide", ("n0", 8), hours_ago=1)
    for index in range(8):
        cluster.run(f"narrow-{index}", ("n1", 1), hours_ago=4 + index)
    assert victims(cluster.choose(gpus=1)) == ["narrow-0"]


def test_a_gang_is_evicted_whole_with_all_its_pods() -> None:
    cluster = Cluster.of(2)
    cluster.run("gang", ("n0", 8), ("n1", 8), hours_ago=1)
    outcome = cluster.choose(gpus=8)
    assert victims(outcome) == ["gang"]


def test_the_reverse_pass_puts_back_a_victim_that_was_not_needed() -> None:
    # Cheapest first evicts "tiny" (n0 then has 1 free GPU: not enough), then "middle" (n1
    # empties): the preemptor fits on n1 alone, so "tiny" is put back.
    cluster = Cluster.of(2)
    cluster.run("tiny", ("n0", 1), hours_ago=0.1)
    cluster.run("big", ("n0", 7), hours_ago=10, priority=5)
    cluster.run("middle", ("n1", 8), hours_ago=1)
    assert victims(cluster.choose(gpus=8)) == ["middle"]


def test_a_job_never_preempts_one_that_preempted_it_even_through_a_chain() -> None:
    cluster = Cluster.of(1)
    cluster.run("first", ("n0", 8), priority=0)
    # "first" preempted "middle", which preempted "waiting": waiting may not evict "first".
    history = PreemptionHistory().record("first", ["middle"]).record("middle", ["waiting"])
    outcome = cluster.choose(gpus=8, priority=9, history=history)
    assert isinstance(outcome, NoPreemption)
    assert "preempted it earlier" in outcome.reason
    assert victims(cluster.choose(gpus=8, priority=9)) == ["first"]


def test_forgetting_a_finished_job_keeps_the_chain_through_it() -> None:
    history = PreemptionHistory().record("first", ["middle"]).record("middle", ["waiting"])
    assert history.forget("middle").preempted_before("waiting") == {"first"}
    assert history.counts == {"middle": 1, "waiting": 1}


@pytest.mark.parametrize(
    ("reclaim", "borrows", "evicted"),
    [(True, True, ["borrower"]), (False, True, []), (True, False, [])],
    ids=["reclaims-borrowed", "reclaim-off", "not-a-borrower"],
)
def test_jobs_of_other_queues_are_evicted_only_to_reclaim_borrowed_quota(
    reclaim: bool, borrows: bool, evicted: list[str]
) -> None:
    cluster = Cluster.of(1)
    cluster.run("borrower", ("n0", 8), queue="b", priority=9, borrows_from_lender=borrows)
    rules = PreemptionRules(within_queue=WithinQueue.LOWER_PRIORITY, reclaim_borrowed=reclaim)
    outcome = cluster.choose(gpus=8, priority=0, rules=rules)
    if evicted:
        assert victims(outcome) == evicted
        assert isinstance(outcome, Preemption)
        assert outcome.victims[0].reason is PreemptionReason.RECLAIM_BORROWED
    else:
        assert isinstance(outcome, NoPreemption)


@pytest.mark.parametrize(
    ("victim_expected_hours", "preempts"),
    [(4.0, True), (2.2, False)],
    ids=["much-longer-remaining", "within-the-margin"],
)
def test_shorter_remaining_time_preempts_only_past_the_margin(
    victim_expected_hours: float, preempts: bool
) -> None:
    # The running job has run 1 h; the waiting one needs 1 h. Margin 25%: the victim must have
    # more than 1.25 h left (4 - 1 = 3 h does, 2.2 - 1 = 1.2 h does not).
    cluster = Cluster.of(1)
    cluster.run("long", ("n0", 8), expected_duration_seconds=victim_expected_hours * HOUR)
    rules = PreemptionRules(within_queue=WithinQueue.SHORTER_REMAINING_TIME)
    outcome = cluster.choose(gpus=8, priority=0, rules=rules, duration=HOUR)
    assert isinstance(outcome, Preemption) is preempts, outcome


SRT = PreemptionRules(within_queue=WithinQueue.SHORTER_REMAINING_TIME)


def test_shorter_remaining_time_evicts_the_job_with_the_most_time_left_even_when_it_loses_more() -> None:
    # Both have more than 1.25 h left. By lost work "ten-hours" (run 1 h) is the cheaper victim;
    # the rule takes "twenty-hours", which has run 3 h but has 17 h left against 9 h.
    cluster = Cluster.of(2)
    cluster.run("twenty-hours", ("n0", 8), hours_ago=3, expected_duration_seconds=20 * HOUR)
    cluster.run("ten-hours", ("n1", 8), hours_ago=1, expected_duration_seconds=10 * HOUR)
    outcome = cluster.choose(gpus=8, priority=0, rules=SRT, duration=HOUR)
    assert victims(outcome) == ["twenty-hours"]
    assert isinstance(outcome, Preemption)
    assert [v.reason for v in outcome.victims] == [PreemptionReason.SHORTER_REMAINING_TIME]
    # Both below a priority-1 preemptor, by lost work alone, the other is the one taken.
    assert victims(cluster.choose(gpus=8, priority=1, rules=LOWER)) == ["ten-hours"]


def test_equal_remaining_times_fall_back_to_the_fewest_gpu_hours_lost() -> None:
    cluster = Cluster.of(2)
    cluster.run("old", ("n0", 8), hours_ago=3, expected_duration_seconds=13 * HOUR)
    cluster.run("young", ("n1", 8), hours_ago=1, expected_duration_seconds=11 * HOUR)
    assert victims(cluster.choose(gpus=8, priority=0, rules=SRT, duration=HOUR)) == ["young"]


def test_under_shorter_remaining_time_a_lower_priority_job_goes_before_an_equal_peer() -> None:
    cluster = Cluster.of(2)
    cluster.run("peer", ("n0", 8), hours_ago=1, expected_duration_seconds=20 * HOUR)
    cluster.run("low", ("n1", 8), hours_ago=5, priority=-1, expected_duration_seconds=6 * HOUR)
    outcome = cluster.choose(gpus=8, priority=0, rules=SRT, duration=HOUR)
    assert isinstance(outcome, Preemption)
    assert [(v.name, v.reason) for v in outcome.victims] == [("low", PreemptionReason.LOWER_PRIORITY)]


def test_the_bound_per_cycle_refuses_a_preemption_that_needs_more_victims() -> None:
    cluster = Cluster.of(1)
    cluster.run("half-a", ("n0", 4))
    cluster.run("half-b", ("n0", 4))
    assert victims(cluster.choose(gpus=8, victims_left=2)) == ["half-a", "half-b"]
    outcome = cluster.choose(gpus=8, victims_left=1)
    assert isinstance(outcome, NoPreemption)
    assert "needs 2 victims; 1 preemptions left this cycle" in outcome.reason


def test_a_job_that_never_checkpoints_takes_no_time_slice_turns() -> None:
    cluster = Cluster.of(1)
    cluster.run("turn", ("n0", 8), hours_ago=1.5)
    outcome = cluster.choose(gpus=8, priority=0, rules=PreemptionRules(time_slice_seconds=HOUR))
    assert isinstance(outcome, NoPreemption)


def test_time_slice_lets_a_same_queue_job_past_its_slice_yield_whatever_the_chain() -> None:
    cluster = Cluster.of(1)
    cluster.run("turn", ("n0", 8), hours_ago=1.5, checkpoint_interval_seconds=HOUR / 2)
    rules = PreemptionRules(time_slice_seconds=HOUR)
    history = PreemptionHistory().record("turn", ["waiting"], chained=False)
    outcome = cluster.choose(gpus=8, priority=0, rules=rules, history=history)
    assert isinstance(outcome, Preemption)
    assert [(v.name, v.reason) for v in outcome.victims] == [("turn", PreemptionReason.TIME_SLICE)]
    assert isinstance(
        cluster.choose(gpus=8, priority=0, rules=PreemptionRules(time_slice_seconds=2 * HOUR)), NoPreemption
    )


def test_the_kueue_like_order_takes_the_most_recently_started_even_when_it_loses_more() -> None:
    cluster = Cluster.of(2)
    cluster.run("wide", ("n0", 8), hours_ago=1)
    for index in range(8):
        cluster.run(f"narrow-{index}", ("n1", 1), hours_ago=2)
    kueue = cluster.choose(gpus=1, order=VictimOrder.KUEUE_LIKE)
    ours = cluster.choose(gpus=1)
    assert victims(kueue) == ["wide"]
    assert victims(ours) == ["narrow-0"]
    assert isinstance(kueue, Preemption)
    assert isinstance(ours, Preemption)
    assert ours.lost_gpu_hours < kueue.lost_gpu_hours


def test_when_even_evicting_everyone_allowed_is_not_enough_nothing_is_evicted() -> None:
    cluster = Cluster.of(1)
    cluster.run("low", ("n0", 4), priority=0)
    cluster.run("high", ("n0", 4), priority=9)
    outcome = cluster.choose(gpus=8, priority=1)
    assert isinstance(outcome, NoPreemption)
    assert "evicting all 1 preemptible jobs leaves no room (1 not lower priority)" in outcome.reason


# --- properties over generated scenarios ----------------------------------------------------

JOB_SHAPES = st.tuples(st.sampled_from((1, 2, 4, 8)), st.integers(1, 3))  # (GPUs per pod, pods)


@st.composite
def scenarios(draw: st.DrawFn, *, peers: bool = False) -> tuple[Cluster, dict[str, object]]:
    """Up to 3 nodes of 8 GPUs holding random jobs (placed by the planner), a random waiting job,
    random rules and a random who-preempted-whom history. ``peers``: one queue under
    ShorterRemainingTime, every job of one priority with an expected duration (that rule's case)."""
    cluster = Cluster.of(draw(st.integers(1, 3)))
    names = [f"j{index}" for index in range(draw(st.integers(0, 12)))]
    for name in names:
        gpus, pods = draw(JOB_SHAPES)
        request = make_pod(gpus=gpus)
        plan = plan_gang(
            cluster.table, GangRequest(name, pods, ReplicaRequests.uniform(request)), weights=PACK
        )
        if not isinstance(plan, Placement):
            continue
        where = tuple((a.node, gpus) for a in plan.assignments)
        cluster.run(
            name,
            *where,
            hours_ago=draw(st.floats(0.0, 8.0)),
            queue="a" if peers else draw(st.sampled_from(("a", "b"))),
            priority=0 if peers else draw(st.integers(0, 2)),
            expected_duration_seconds=draw(
                st.floats(HOUR, 12 * HOUR) | (st.nothing() if peers else st.none())
            ),
            checkpoint_interval_seconds=draw(st.none() | st.sampled_from((600.0, 1800.0))),
            borrows_from_lender=draw(st.booleans()),
        )
    everyone = ["waiting", *names]
    history = PreemptionHistory()
    for _ in range(draw(st.integers(0, 4))):
        history = history.record(draw(st.sampled_from(everyone)), [draw(st.sampled_from(everyone))])
    rules = PreemptionRules(
        within_queue=WithinQueue.SHORTER_REMAINING_TIME if peers else draw(st.sampled_from(WithinQueue)),
        reclaim_borrowed=draw(st.booleans()),
        min_runtime_seconds=draw(st.sampled_from((0.0, 600.0, 2 * HOUR))),
        max_victims_per_cycle=draw(st.integers(1, 6)),
        time_slice_seconds=None if peers else draw(st.none() | st.just(3 * HOUR)),
    )
    options: dict[str, object] = {
        "gpus": draw(st.sampled_from((1, 2, 4, 8))),
        "replicas": draw(st.integers(1, 3)),
        "priority": 0 if peers else draw(st.integers(0, 3)),
        "queue": "a" if peers else draw(st.sampled_from(("a", "b"))),
        "duration": draw(st.floats(0.5 * HOUR, 6 * HOUR) | (st.nothing() if peers else st.none())),
        "rules": rules,
        "history": history,
        "order": draw(st.sampled_from(VictimOrder)),
    }
    return cluster, options


def without(cluster: Cluster, names: set[str]) -> NodeTable:
    table = cluster.table.working_copy()
    for job in cluster.jobs:
        if job.name in names:
            for pod in job.pods:
                table.release(table.names.index(pod.node), pod.request, pod.devices)
    return table


@settings(max_examples=500, deadline=None, derandomize=True)
@given(scenarios() | scenarios(peers=True))
def test_every_preemption_is_allowed_whole_minimal_and_enough(
    scenario: tuple[Cluster, dict[str, object]],
) -> None:
    cluster, options = scenario
    rules = options["rules"]
    history = options["history"]
    assert isinstance(rules, PreemptionRules)
    assert isinstance(history, PreemptionHistory)
    gang = GangRequest(
        "waiting",
        int(options["replicas"]),
        ReplicaRequests.uniform(make_pod(gpus=int(options["gpus"]))),
    )
    fits = gang_fits(gang, weights=PACK)
    outcome = cluster.choose(**options)
    event("no preemption" if isinstance(outcome, NoPreemption) else f"{len(outcome.victims)} victims")
    if isinstance(outcome, NoPreemption):
        assert not fits(cluster.table)  # a job that fits is told so with an empty preemption
        return
    chosen = {victim.name for victim in outcome.victims}
    assert len(chosen) <= rules.max_victims_per_cycle
    # Enough: with every pod of every victim gone, the waiting job fits.
    assert fits(without(cluster, chosen))
    # Minimal: putting back any one victim leaves no room (the reverse pass spared the rest).
    for name in chosen:
        assert not fits(without(cluster, chosen - {name})), f"{name} was not needed"
    by_name = {job.name: job for job in cluster.jobs}
    preempted_before = history.preempted_before("waiting")
    for victim in outcome.victims:
        job = by_name[victim.name]
        # minRuntime always holds, and nobody who preempted the preemptor is preempted back
        # (except a time-slice turn, which is no preemption in the chain sense).
        assert job.run_seconds(NOW) >= rules.min_runtime_seconds
        assert victim.reason is PreemptionReason.TIME_SLICE or victim.name not in preempted_before
        assert victim.lost_gpu_hours == pytest.approx(job.lost_gpu_hours(NOW))


def preference(job: RunningJob, reason: PreemptionReason) -> tuple[bool, float]:
    """The victim order as the issue states it: a job another rule allows first, fewest GPU-hours
    lost first; a job allowed only by ShorterRemainingTime last, the most remaining time first."""
    if reason is PreemptionReason.SHORTER_REMAINING_TIME:
        return (True, -(job.remaining_seconds(NOW) or 0.0))
    return (False, job.lost_gpu_hours(NOW))


@settings(max_examples=500, deadline=None, derandomize=True)
@given(scenarios() | scenarios(peers=True))
def test_the_preferred_victim_is_the_one_taken_when_it_alone_makes_room(
    scenario: tuple[Cluster, dict[str, object]],
) -> None:
    cluster, options = scenario
    options["order"] = VictimOrder.LEAST_LOST_WORK
    rules, history = options["rules"], options["history"]
    assert isinstance(rules, PreemptionRules)
    assert isinstance(history, PreemptionHistory)
    preemptor = Preemptor(
        "waiting",
        str(options["queue"]),
        int(options["priority"]),
        options["duration"],  # type: ignore[arg-type]
    )
    before = history.preempted_before("waiting")
    allowed = [
        (job, reason)
        for job in cluster.jobs
        if isinstance(
            reason := eligibility(preemptor, job, rules=rules, preempted_before=before, now_seconds=NOW),
            PreemptionReason,
        )
    ]
    gang = GangRequest(
        "waiting", int(options["replicas"]), ReplicaRequests.uniform(make_pod(gpus=int(options["gpus"])))
    )
    fits = gang_fits(gang, weights=PACK)
    if not allowed or fits(cluster.table):
        event("nothing to choose")
        return
    best, reason = min(allowed, key=lambda item: preference(*item))
    if not fits(without(cluster, {best.name})):
        event("the preferred victim alone is not enough")
        return
    event(f"alone enough ({reason.value})")
    outcome = cluster.choose(**options)
    assert isinstance(outcome, Preemption), outcome
    (victim,) = outcome.victims
    by_name = {job.name: job for job in cluster.jobs}
    assert preference(by_name[victim.name], victim.reason) == preference(best, reason)
