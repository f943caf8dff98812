"""Quota is charged to the jobs that run or are being placed: a job admitted by quota that no node
layout fits gives its charge back in the same cycle, so it holds no queue and no other job waits
for quota it does not use (the chaos soak's deadlock, docs/reliability.md, Findings 1)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modeljob.core.admission import QueueConfig
from modeljob.core.cluster_state import NodeFacts, PodFacts
from modeljob.core.job_state import JobFacts
from modeljob.core.jobs import Overrides, WorkloadType
from modeljob.core.preemption_rules import PreemptionRules
from modeljob.core.quota_tree import QueueSpec, QuotaEntry, QuotaKey
from modeljob.core.scheduling_cycle import CycleResult, CycleSettings, run_cycle
from modeljob.core.steps import Place, Step, Wait
from tests.core.test_plan_memo import clusters
from tests.operator_builders import H100, L4, at, bound, h100_nodes, l4_nodes, make_job, placed, pods_of

B = 10**9
GPU_H100 = QuotaKey("nvidia.com/gpu", frozenset({H100}))
GPU_L4 = QuotaKey("nvidia.com/gpu", frozenset({L4}))
RECLAIM = PreemptionRules(reclaim_borrowed=True)


def queue(name: str, *quota: QuotaEntry, parent: str | None = None) -> QueueConfig:
    return QueueConfig(spec=QueueSpec(name=name, parent=parent, quota=quota), rules=RECLAIM)


# research pools what team-a and team-b lend; each is guaranteed 16 H100s.
TWO_TEAMS = (
    queue("research"),
    queue("team-a", QuotaEntry(GPU_H100, 16), parent="research"),
    queue("team-b", QuotaEntry(GPU_H100, 16), parent="research"),
)


def gpu_job(name: str, *, queue: str, gpus: int, created: float, product: str = H100) -> JobFacts:
    job = make_job(name, queue=queue, products=(product,), created=created)
    return replace(job, shape=replace(job.shape, overrides=Overrides(gpus=gpus)))


def group(name: str, *, queue: str, created: float) -> JobFacts:
    """A 405B replica: one group of 2 pods of 8 H100s, a whole node each (16 GPUs of quota)."""
    return make_job(name, parameters=405 * B, queue=queue, products=(H100,), created=created)


def training(job: JobFacts) -> JobFacts:
    """The job as a training job: it ends by itself (when, unknown: it declares no duration)."""
    workload = replace(job.shape.workload, type=WorkloadType.TRAINING)
    return replace(job, shape=replace(job.shape, workload=workload))


def running(name: str, *, queue: str, gpus: int, node: str) -> tuple[JobFacts, list[PodFacts]]:
    """A training job running on ``node`` since t=10 s; it may end at any moment."""
    job = replace(placed(training(gpu_job(name, queue=queue, gpus=gpus, created=0)), node), started=at(10))
    return job, pods_of(job, gpus=gpus)


def cycle(
    jobs: Sequence[JobFacts],
    pods: Sequence[PodFacts],
    *,
    nodes: Sequence[NodeFacts],
    queues: Sequence[QueueConfig] = TWO_TEAMS,
) -> CycleResult:
    return run_cycle(jobs, nodes, pods, now=at(10_000), settings=CycleSettings(), queues=queues)


def step_of(result: CycleResult, name: str) -> Step:
    (found,) = [s for s in result.steps if s.job.name == name]
    return found


def fragmented_cluster() -> tuple[list[JobFacts], list[PodFacts]]:
    """32 H100s on 4 nodes, none wholly free: team-b runs 6 + 6 (12 of its 16), team-a 1 + 1."""
    jobs, pods = [], []
    for name, queue_name, gpus, node in [
        ("b-run-0", "team-b", 6, "gpu-h100-0"),
        ("b-run-1", "team-b", 6, "gpu-h100-1"),
        ("a-run-0", "team-a", 1, "gpu-h100-2"),
        ("a-run-1", "team-a", 1, "gpu-h100-3"),
    ]:
        job, job_pods = running(name, queue=queue_name, gpus=gpus, node=node)
        jobs.append(job)
        pods += job_pods
    return jobs, pods


def deadlock_cycle() -> CycleResult:
    """team-a's head, a 2 x 8-GPU group, is admitted by quota (borrowing 2 of team-b's idle 4) but
    no two nodes are wholly free. Charged anyway, it would leave the pool 2 GPUs: team-b's head
    (6 GPUs, borrowing 2) and team-a's next job (3 GPUs) would wait for quota that nothing uses,
    and team-b's small job (2 GPUs, within its nominal) behind its head."""
    jobs, pods = fragmented_cluster()
    waiting = [
        group("a-group", queue="team-a", created=1000),
        gpu_job("a-next", queue="team-a", gpus=3, created=1001),
        gpu_job("b-head", queue="team-b", gpus=6, created=1000),
        gpu_job("b-small", queue="team-b", gpus=2, created=1001),
    ]
    return cycle([*jobs, *waiting], pods, nodes=h100_nodes(4))


def test_a_group_admitted_by_quota_that_no_node_layout_fits_waits_for_room_and_holds_no_quota() -> None:
    result = deadlock_cycle()
    step = step_of(result, "a-group")
    assert isinstance(step, Wait), step
    assert step.message.startswith("waiting for room"), step.message
    assert result.queues is not None
    # What the Queues' status shows: the running jobs and those placed now, not the group.
    assert result.queues.usage.of("team-a", GPU_H100) == 1 + 1 + 3


def test_the_other_queues_jobs_are_admitted_and_placed_in_the_same_cycle() -> None:
    """team-b's head was refused only for the quota the unplaced group was charged."""
    result = deadlock_cycle()
    assert isinstance(step_of(result, "b-head"), Place), step_of(result, "b-head")
    assert isinstance(step_of(result, "b-small"), Place), step_of(result, "b-small")


def test_the_same_queues_next_job_is_admitted_and_placed_in_the_same_cycle() -> None:
    assert isinstance(step_of(deadlock_cycle(), "a-next"), Place), step_of(deadlock_cycle(), "a-next")


def test_a_job_of_another_product_is_placed_behind_a_head_waiting_for_quota() -> None:
    """The head waits for H100 quota; the L4 job asks for nothing the head waits for, so it does not
    wait behind it. The H100 job behind the head still does (large jobs do not starve: kueue#534)."""
    solo = [queue("solo", QuotaEntry(GPU_H100, 8), QuotaEntry(GPU_L4, 8))]
    busy, busy_pods = running("h100-running", queue="solo", gpus=2, node="gpu-h100-0")
    jobs = [
        busy,
        gpu_job("h100-huge", queue="solo", gpus=8, created=1000),  # 2 + 8 > 8: until busy ends
        gpu_job("h100-small", queue="solo", gpus=2, created=1001),
        gpu_job("l4-small", queue="solo", gpus=2, created=1002, product=L4),
    ]
    result = cycle(jobs, busy_pods, nodes=[*h100_nodes(2), *l4_nodes(2)], queues=solo)
    assert isinstance(step_of(result, "h100-huge"), Wait)
    behind = step_of(result, "h100-small")
    assert isinstance(behind, Wait)
    assert behind.message == "queue solo: behind ml/h100-huge, which waits for quota"
    assert isinstance(step_of(result, "l4-small"), Place), step_of(result, "l4-small")


# --- at rest, no job waits for quota nothing uses ---------------------------------------------------


@st.composite
def waiting_jobs(draw: st.DrawFn) -> list[JobFacts]:
    """Up to 10 jobs of both teams: H100 or L4 (or either), one or two replicas of 1-8 GPUs,
    gangs or not, and sometimes a 2 x 8-GPU group."""
    jobs = []
    for index in range(draw(st.integers(1, 10))):
        team = draw(st.sampled_from(("team-a", "team-b")))
        if draw(st.integers(0, 4)) == 0:
            job = group(f"j{index}", queue=team, created=index)
        else:
            products = draw(st.sampled_from(((H100,), (L4,), (H100, L4))))
            job = make_job(
                f"j{index}",
                queue=team,
                products=products,
                created=index,
                replicas=draw(st.sampled_from((1, 2))),
                gang=draw(st.booleans()),
            )
            job = replace(
                job, shape=replace(job.shape, overrides=Overrides(gpus=draw(st.sampled_from((1, 2, 4, 8)))))
            )
        jobs.append(job)
    return jobs


@st.composite
def team_queues(draw: st.DrawFn) -> tuple[QueueConfig, ...]:
    """Two teams under a pooling parent, each with its H100 and L4 nominal (and a borrowingLimit
    sometimes); nothing is preempted, so only running jobs can hold quota at rest."""
    teams = []
    for name in ("team-a", "team-b"):
        limit = draw(st.sampled_from((None, 0, 4)))
        entries = (
            QuotaEntry(GPU_H100, draw(st.sampled_from((0, 4, 8, 16))), borrowing_limit=limit),
            QuotaEntry(GPU_L4, draw(st.sampled_from((0, 4, 8))), borrowing_limit=limit),
        )
        teams.append(QueueConfig(spec=QueueSpec(name=name, parent="research", quota=entries)))
    return (QueueConfig(spec=QueueSpec(name="research")), *teams)


def bind(
    jobs: list[JobFacts], pods: list[PodFacts], result: CycleResult
) -> tuple[list[JobFacts], list[PodFacts]]:
    """Each placed job running where it was placed, as the loop's binding leaves it."""
    placed_now = {s.job.ref: s for s in result.steps if isinstance(s, Place)}
    jobs_now, pods_now = [], list(pods)
    for job in jobs:
        step = placed_now.get(job.ref)
        if step is None:
            jobs_now.append(job)
            continue
        running, new = bound(job, step, now=at(5))
        jobs_now.append(running)
        pods_now += new
    return jobs_now, pods_now


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(clusters(), waiting_jobs(), team_queues())
def test_at_rest_no_job_waits_that_would_be_placed_given_only_the_running_jobs_charges(
    cluster: tuple[list[NodeFacts], list[PodFacts]], jobs: list[JobFacts], queues: tuple[QueueConfig, ...]
) -> None:
    """Cycles repeated until nothing more is placed. Then a job still waiting either is not placed
    when it is the only job waiting (its quota, given the running jobs' charges alone, or the free
    room refuses it), or waits behind a head of its queue that quota refuses that way."""
    nodes, pods = cluster
    for _ in range(12):
        result = cycle(jobs, pods, nodes=nodes, queues=queues)
        if not any(isinstance(s, Place) for s in result.steps):
            break
        jobs, pods = bind(jobs, pods, result)
    else:
        raise AssertionError("cycles kept placing jobs")
    running = [j for j in jobs if j.placement]
    by_ref = {j.ref: j for j in jobs}

    def alone(job: JobFacts) -> Step:
        return step_of(cycle([*running, job], pods, nodes=nodes, queues=queues), job.name)

    for step in result.steps:
        if not isinstance(step, Wait):
            continue
        head = step.message.removeprefix(f"queue {step.job.queue}: behind ").removesuffix(
            ", which waits for quota"
        )
        if head in by_ref:
            refused = alone(by_ref[head])
            assert isinstance(refused, Wait)
            assert refused.message.startswith(f"queue {step.job.queue}: needs"), refused.message
        else:
            assert not isinstance(alone(step.job), Place), f"{step.job.name} waits: {step.message}"
