"""A head waiting for quota holds the jobs behind it only while they could delay its start (EASY
backfill, core/backfill.py): behind a head that waits for serving jobs, which run until deleted,
whatever fits runs (the second chaos soak's starvation, docs/reliability.md Findings 1); behind a
head that waits for training jobs to end, only the jobs expected to end before it could start."""

from __future__ import annotations

from dataclasses import replace

import pytest

from modeljob.core.admission import QueueConfig
from modeljob.core.cluster_state import PodFacts
from modeljob.core.job_state import JobFacts
from modeljob.core.jobs import ModelShape
from modeljob.core.preemption_rules import WithinQueue
from modeljob.core.quota_tree import QuotaEntry
from modeljob.core.steps import Place, Preempt, Unschedulable, Wait
from tests.core.test_quota_deadlock import GPU_H100, bind, cycle, gpu_job, group, queue, step_of, training
from tests.operator_builders import at, h100_nodes, placed, pods_of

HOUR = 3600.0
NOW = 10_000.0  # the cycle's clock (test_quota_deadlock.cycle)
SOLO = [queue("solo", QuotaEntry(GPU_H100, 32))]


def serving_fleet(nodes: int) -> tuple[list[JobFacts], list[PodFacts]]:
    """One 8-GPU serving job on each of the first ``nodes`` H100 nodes: they run until deleted."""
    jobs: list[JobFacts] = []
    pods: list[PodFacts] = []
    for index in range(nodes):
        job = replace(
            placed(gpu_job(f"serve-{index}", queue="solo", gpus=8, created=0), f"gpu-h100-{index}"),
            started=at(10),
        )
        jobs.append(job)
        pods += pods_of(job, gpus=8)
    return jobs, pods


def trainer(name: str, *, gpus: int, created: float, hours: float | None) -> JobFacts:
    """A 1B-parameter training job on ``gpus`` GPUs, expected to take ``hours`` (None: unknown)."""
    job = training(gpu_job(name, queue="solo", gpus=gpus, created=created))
    return replace(
        job,
        shape=replace(job.shape, model=ModelShape(parameters=10**9)),
        expected_duration_seconds=None if hours is None else hours * HOUR,
    )


def test_a_head_waiting_for_serving_jobs_holds_no_one_behind_it() -> None:
    """Serving jobs hold 24 of the queue's 32 GPUs; the head, a 2 x 8-GPU group, needs 16 and can
    start only when one of them is deleted. The 1-GPU training job behind it runs in the same cycle
    on the 8 that are free; the head keeps its place and its reason."""
    serving, pods = serving_fleet(3)
    jobs = [
        *serving,
        group("group-head", queue="solo", created=1000),
        trainer("train-behind", gpus=1, created=1001, hours=None),
    ]
    result = cycle(jobs, pods, nodes=h100_nodes(4), queues=SOLO)
    head = step_of(result, "group-head")
    assert isinstance(head, Wait)
    assert head.message.startswith("queue solo: needs 16"), head.message
    assert isinstance(step_of(result, "train-behind"), Place), step_of(result, "train-behind")


def solo_within(within: WithinQueue) -> list[QueueConfig]:
    """The solo queue, preempting within itself by ``within``."""
    (config,) = SOLO
    return [replace(config, rules=replace(config.rules, within_queue=within))]


@pytest.mark.parametrize("within", [WithinQueue.LOWER_PRIORITY, WithinQueue.SHORTER_REMAINING_TIME])
def test_holders_a_head_may_not_evict_do_not_hold_the_jobs_behind_it(within: WithinQueue) -> None:
    """The head's queue preempts within itself, but the serving jobs are of the head's priority (and
    their remaining time is unknown), so it can evict none of them: it still waits for a deletion,
    and the training job behind it runs now. (Counting every job of its own queue as ending now, a
    review found, made the head look startable and held the job behind for as long as they served.)"""
    serving, pods = serving_fleet(3)
    jobs = [
        *serving,
        group("group-head", queue="solo", created=1000),
        trainer("train-behind", gpus=1, created=1001, hours=None),
    ]
    result = cycle(jobs, pods, nodes=h100_nodes(4), queues=solo_within(within))
    assert isinstance(step_of(result, "group-head"), Wait), step_of(result, "group-head")
    assert isinstance(step_of(result, "train-behind"), Place), step_of(result, "train-behind")


def test_holders_a_head_may_evict_count_as_ending_now() -> None:
    """The same queue and fleet, the head of higher priority: it preempts serving jobs now, so
    the job behind it waits and the room made is the head's."""
    serving, pods = serving_fleet(3)
    jobs = [
        *serving,
        replace(group("group-head", queue="solo", created=1000), priority=10),
        trainer("train-behind", gpus=1, created=1001, hours=None),
    ]
    result = cycle(jobs, pods, nodes=h100_nodes(4), queues=solo_within(WithinQueue.LOWER_PRIORITY))
    assert isinstance(step_of(result, "group-head"), Preempt), step_of(result, "group-head")
    held = step_of(result, "train-behind")
    assert isinstance(held, Wait), held
    assert held.message == "queue solo: behind ml/group-head, which waits for quota"


def with_training_holder(*behind: JobFacts) -> list[JobFacts]:
    """Of the queue's 32 GPUs, 16 held by a serving fleet and 8 by a training job that declared 4 h
    and has run 9,990 s; the head, a 16-GPU group, can start when the training job ends: in 4,410 s."""
    return [
        replace(
            placed(trainer("train-running", gpus=8, created=0, hours=4), "gpu-h100-2"),
            started=at(10),
        ),
        group("group-head", queue="solo", created=1000),
        *behind,
    ]


def test_behind_a_head_waiting_for_a_training_job_only_what_ends_first_goes() -> None:
    serving, pods = serving_fleet(2)
    jobs = [
        *serving,
        *with_training_holder(
            trainer("one-hour", gpus=1, created=1001, hours=1),  # ends 3,600 s from now: goes
            trainer("two-hours", gpus=1, created=1002, hours=2),  # 7,200 s: would delay the head
            trainer("unknown", gpus=1, created=1003, hours=None),  # might run for ever
            gpu_job("serving", queue="solo", gpus=1, created=1004),  # runs until deleted
        ),
    ]
    running = [j for j in jobs if j.name == "train-running"]
    result = cycle(jobs, pods + pods_of(running[0], gpus=8), nodes=h100_nodes(4), queues=SOLO)
    assert isinstance(step_of(result, "one-hour"), Place), step_of(result, "one-hour")
    for name in ("two-hours", "unknown", "serving"):
        held = step_of(result, name)
        assert isinstance(held, Wait), (name, held)
        assert held.message == "queue solo: behind ml/group-head, which waits for quota", (name, held)


def test_a_job_behind_a_head_that_can_never_be_admitted_says_so_itself() -> None:
    """A hostile job behind a waiting head shows its own reason, not the head's (Findings 2)."""
    serving, pods = serving_fleet(3)
    jobs = [
        *serving,
        group("group-head", queue="solo", created=1000),
        gpu_job("hostile", queue="solo", gpus=4096, created=1001),
    ]
    result = cycle(jobs, pods, nodes=h100_nodes(4), queues=SOLO)
    hostile = step_of(result, "hostile")
    assert isinstance(hostile, Unschedulable), hostile
    assert "more than queue solo may ever hold (32, borrowing included)" in hostile.message


def test_a_training_job_of_unknown_end_keeps_the_strict_hold() -> None:
    """The head waits for a training job that declares no duration: it may end at any moment, so
    nothing behind it goes first, however short (kueue#534's protection, kept)."""
    serving, pods = serving_fleet(2)
    holder = replace(
        placed(trainer("train-running", gpus=8, created=0, hours=None), "gpu-h100-2"), started=at(10)
    )
    jobs = [
        *serving,
        holder,
        group("group-head", queue="solo", created=1000),
        trainer("short", gpus=1, created=1001, hours=0.1),
    ]
    result = cycle(jobs, pods + pods_of(holder, gpus=8), nodes=h100_nodes(4), queues=SOLO)
    assert isinstance(step_of(result, "short"), Wait), step_of(result, "short")


def test_behind_a_head_that_can_reclaim_now_nothing_goes_first() -> None:
    """team-b runs three 8-GPU jobs for 10 h, 8 GPUs of them borrowed from team-a; team-a's head,
    a 16-GPU group, may take them back (reclaimBorrowed). The 1 h job behind it would end long
    before team-b's jobs, but the head need not wait for them: it preempts now, and the job behind
    it waits, so the free node and team-a's quota stay the head's."""
    jobs: list[JobFacts] = []
    pods: list[PodFacts] = []
    for index in range(3):
        job = replace(trainer(f"b-run-{index}", gpus=8, created=0, hours=10), queue="team-b")
        job = replace(placed(job, f"gpu-h100-{index}"), started=at(10 + index))
        jobs.append(job)
        pods += pods_of(job, gpus=8)
    head = group("a-head", queue="team-a", created=1000)
    short = replace(trainer("a-short", gpus=8, created=1001, hours=1), queue="team-a")
    result = cycle([*jobs, head, short], pods, nodes=h100_nodes(4))
    assert isinstance(step_of(result, "a-head"), Preempt), step_of(result, "a-head")
    held = step_of(result, "a-short")
    assert isinstance(held, Wait), held
    assert held.message == "queue team-a: behind ml/a-head, which waits for quota"


def test_a_serving_job_never_goes_first_and_a_freed_share_is_the_heads() -> None:
    """Behind a head waiting for serving jobs to be deleted, a serving job waits (what it took it
    would keep); the training job of unknown length goes. Once a serving job is deleted the head
    could start when that training job ends, so the next job behind it waits for the head."""
    serving, pods = serving_fleet(3)
    head = group("group-head", queue="solo", created=1000)
    jobs = [
        *serving,
        head,
        gpu_job("serve-behind", queue="solo", gpus=1, created=1001),
        trainer("train-behind", gpus=1, created=1002, hours=None),
    ]
    result = cycle(jobs, pods, nodes=h100_nodes(4), queues=SOLO)
    assert isinstance(step_of(result, "serve-behind"), Wait), step_of(result, "serve-behind")
    first = step_of(result, "train-behind")
    assert isinstance(first, Place), first

    jobs, pods = bind(jobs, pods, result)
    deleted = serving[0]
    jobs = [j for j in jobs if j.ref != deleted.ref and j.name != "serve-behind"]
    pods = [p for p in pods if p.job_uid != deleted.uid]
    later = trainer("train-later", gpus=1, created=1003, hours=None)
    result = cycle([*jobs, later], pods, nodes=h100_nodes(4), queues=SOLO)
    assert isinstance(step_of(result, "group-head"), Wait)
    held = step_of(result, "train-later")
    assert isinstance(held, Wait), held
    assert held.message == "queue solo: behind ml/group-head, which waits for quota"
