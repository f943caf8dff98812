"""What a cycle leaves for the next (CycleMemory: node-set lookups, quota requests, plans made on
the ledger as it started) never changes a decision: over a run of cycles with the cluster changing
between them (placements bound, nodes added and removed, pods gone, jobs added, deleted or changed,
the quota changed), every cycle decides what a cycle planning everything afresh decides.

Every pod bound or gone, and every job that arrives, changes the scoring context (it learns from
them): a remembered result that read scores (a placement) must then be planned again, while a
verdict reached before any node was chosen is kept. The runs make both happen: jobs arrive like
ones already queued (the same demand), and in strict order the jobs behind a waiting one are
planned, and remembered, without being placed."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modeljob.core import gang_placement, planning
from modeljob.core.admission import QueueConfig
from modeljob.core.cluster_state import NodeFacts, PodFacts, Taint, TaintEffect, Toleration
from modeljob.core.gang_request import GangRequest
from modeljob.core.job_state import JobFacts, JobPhase
from modeljob.core.jobs import Overrides
from modeljob.core.nodes import NodeTable
from modeljob.core.preemption_rules import PreemptionRules, WithinQueue
from modeljob.core.quota_tree import QueueSpec, QuotaEntry, QuotaKey
from modeljob.core.scheduling_cycle import CycleMemory, CycleResult, CycleSettings, run_cycle
from modeljob.core.steps import Place, Wait
from tests.core.test_plan_memo import HOST, ZONE, clusters, queues, shapes
from tests.operator_builders import H100, L4, at, bound, make_job, make_node, make_pod

RUNS = settings(max_examples=120, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

# One change to the cluster between two cycles: what it is and its arguments.
Change = tuple[Any, ...]


def changes() -> st.SearchStrategy[Change]:
    index = st.integers(0, 50)
    return st.one_of(
        st.tuples(st.just("add node"), st.booleans(), st.sampled_from("ab")),
        st.tuples(st.just("drop node"), index),
        st.tuples(st.just("drop pod"), index),
        st.tuples(st.just("add pod"), index, st.integers(1, 4)),
        st.tuples(st.just("add cpu pod"), index),
        st.tuples(st.just("add job"), shapes()),
        st.tuples(st.just("add job like"), index),
        st.tuples(st.just("delete job"), index),
        st.tuples(st.just("priority"), index, st.integers(0, 3)),
        st.tuples(st.just("gpus"), index, st.sampled_from((1, 2, 4, 8))),
        st.tuples(st.just("same job, new object"), index),
        st.tuples(st.just("quota"), st.sampled_from((None, 4, 8, 16, 32))),
        # A node that stays, changed otherwise than by its pods (core/node_set_memory.py).
        st.tuples(st.just("taint"), index),
        st.tuples(st.just("ready"), index),
        st.tuples(st.just("cordon"), index),
        st.tuples(st.just("zone"), index, st.sampled_from("abc")),
        st.tuples(st.just("price"), index, st.sampled_from((None, 1.0, 2.0))),
        st.tuples(st.just("allocatable"), index, st.sampled_from((1_000, 96_000, 192_000))),
        st.tuples(st.just("tolerate"), index),
        st.tuples(st.just("nothing")),
    )


LAGGING = Taint(key="lagging", effect=TaintEffect.NO_SCHEDULE)


class World:
    """The cluster as the loop would see it from cycle to cycle: unchanged objects stay the same
    objects (as the loop's caches keep them), changed ones are new."""

    def __init__(
        self, nodes: list[NodeFacts], pods: list[PodFacts], jobs: list[JobFacts], *, strict: bool = False
    ) -> None:
        self.nodes, self.pods, self.jobs = nodes, pods, jobs
        self.quota: int | None = None
        self.added = 0
        self.strict = strict

    def queues(self) -> list[QueueConfig]:
        if self.quota is None:
            return []
        spec = QueueSpec(
            name="default", quota=(QuotaEntry(QuotaKey("nvidia.com/gpu", frozenset()), self.quota),)
        )
        return [QueueConfig(spec=spec, rules=PreemptionRules(within_queue=WithinQueue.LOWER_PRIORITY))]

    def bind(self, result: CycleResult, now: int) -> None:
        """Each placed job running where it was placed, as the loop's binding leaves it."""
        placed = {s.job.ref: s for s in result.steps if isinstance(s, Place)}
        for index, job in enumerate(self.jobs):
            step = placed.get(job.ref)
            if step is not None:
                self.jobs[index], pods = bound(job, step, now=at(now))
                self.pods += pods

    def change(self, change: Change) -> None:
        what, *args = change
        if what == "add node":
            l4, zone = args
            name = f"new-{self.added}"
            self.added += 1
            gpus = 4 if l4 else 8
            labels = {HOST: name, ZONE: zone}
            product, memory = (L4, 24) if l4 else (H100, 80)
            self.nodes = [
                *self.nodes,
                make_node(name, gpus=gpus, product=product, memory_gib=memory, labels=labels),
            ]
        elif what == "drop node" and len(self.nodes) > 1:
            self.nodes = [n for i, n in enumerate(self.nodes) if i != args[0] % len(self.nodes)]
        elif what == "drop pod" and self.pods:
            self.pods = [p for i, p in enumerate(self.pods) if i != args[0] % len(self.pods)]
        elif what == "add pod":
            node = self.nodes[args[0] % len(self.nodes)]
            self.pods = [*self.pods, make_pod(f"other-new-{self.added}", node=node.name, gpus=args[1])]
            self.added += 1
        elif what == "add cpu pod":  # most of a node's CPU, none of its GPUs: room without a free block
            node = self.nodes[args[0] % len(self.nodes)]
            self.pods = [*self.pods, make_pod(f"cpu-{self.added}", node=node.name, cpu_milli=190_000)]
            self.added += 1
        elif what == "add job":
            job = args[0]
            name = f"added-{self.added}"
            self.added += 1
            self.jobs = [
                *self.jobs,
                replace(job, name=name, uid=f"uid-{name}", created=at(500), queued_since=at(500)),
            ]
        elif what == "add job like" and self.jobs:
            self._add_like(self.jobs[args[0] % len(self.jobs)])
        elif what == "delete job" and self.jobs:
            self.jobs = [j for i, j in enumerate(self.jobs) if i != args[0] % len(self.jobs)]
        elif what in ("priority", "gpus", "same job, new object") and self.jobs:
            self._change_job(args[0] % len(self.jobs), what, args[1:])
        elif what == "quota":
            self.quota = args[0]
        elif what in ("taint", "ready", "cordon", "zone", "price", "allocatable"):
            index = args[0] % len(self.nodes)
            node = changed_node(self.nodes[index], what, args[1:])
            self.nodes = [*self.nodes[:index], node, *self.nodes[index + 1 :]]
        elif what == "tolerate" and self.jobs:
            self._change_job(args[0] % len(self.jobs), what, args[1:])

    def _add_like(self, job: JobFacts) -> None:
        """A new job of ``job``'s template, queued: the same demand, a new name."""
        name = f"added-{self.added}"
        self.added += 1
        self.jobs = [
            *self.jobs,
            replace(
                job,
                name=name,
                uid=f"uid-{name}",
                created=at(500),
                queued_since=at(500),
                placement=(),
                placed_generation=None,
                phase=JobPhase.QUEUED,
                started=None,
            ),
        ]

    def _change_job(self, index: int, what: str, args: list[Any]) -> None:
        job = self.jobs[index]
        if what == "priority":
            job = replace(job, priority=args[0])
        elif what == "tolerate" and not job.placement:
            tolerated = () if job.tolerations else (Toleration(key="lagging", operator_exists=True),)
            job = replace(job, tolerations=tolerated, spec_hash=f"tolerates-{bool(tolerated)}")
        elif what == "gpus" and not job.placement:  # a placed job's spec change is a rolling matter
            job = replace(
                job, shape=replace(job.shape, overrides=Overrides(gpus=args[0])), spec_hash=f"gpus-{args[0]}"
            )
        else:
            job = replace(job)
        self.jobs = [*self.jobs[:index], job, *self.jobs[index + 1 :]]


def changed_node(node: NodeFacts, what: str, args: list[Any]) -> NodeFacts:
    """``node`` tainted or not, Ready or not, cordoned or not, in another zone, at another price or
    with another CPU allocatable, as the watch would show it (a Node's readiness and cordon both
    make its view unready)."""
    if what == "taint":
        taints = () if node.taints else (LAGGING,)
        return replace(node, taints=taints)
    if what in ("ready", "cordon"):
        ready = not node.ready if what == "ready" else node.ready
        schedulable = not node.schedulable if what == "cordon" else node.schedulable
        view = replace(node.view, ready=ready and schedulable)
        return replace(node, view=view, ready=ready, schedulable=schedulable, not_ready_since=None)
    if what == "zone":
        return replace(node, labels={**node.labels, ZONE: args[0]})
    if what == "allocatable":
        allocatable = replace(node.view.allocatable, cpu_milli=args[0])
        return replace(node, view=replace(node.view, allocatable=allocatable))
    return replace(node, view=replace(node.view, price_per_hour=args[0]))


def decide(world: World, now: int, memory: CycleMemory | None) -> CycleResult:
    return run_cycle(
        world.jobs,
        world.nodes,
        world.pods,
        now=at(now),
        settings=CycleSettings(strict=world.strict),
        queues=world.queues(),
        memory=memory,
        remember_plans=memory is not None,
    )


@RUNS
@given(clusters(), queues(), st.lists(st.lists(changes(), max_size=3), min_size=1, max_size=5), st.booleans())
def test_cycles_with_memory_decide_what_cycles_planning_afresh_decide(
    cluster: tuple[list[NodeFacts], list[PodFacts]],
    jobs: list[JobFacts],
    between: list[list[Change]],
    strict: bool,
) -> None:
    world = World(*cluster, jobs, strict=strict)
    memory = CycleMemory()
    for number, changed in enumerate([[], *between]):
        for change in changed:
            world.change(change)
        now = 1000 + 10 * number
        remembered = decide(world, now, memory)
        assert remembered.steps == decide(world, now, None).steps, f"cycle {number}"
        world.bind(remembered, now)


def test_a_deep_queues_verdicts_are_kept_until_their_node_types_room_changes() -> None:
    """Ten 8-GPU jobs wait on a full H100 node; the next cycle finds them remembered (nothing is
    planned) and says the same; once a pod there is gone, they are planned again and one fits."""
    job = replace(make_job(), shape=replace(make_job().shape, overrides=Overrides(gpus=8)))
    jobs = [replace(job, name=f"j{i}", uid=f"u{i}", created=at(i), queued_since=at(i)) for i in range(10)]
    busy = make_pod("other", node="h100-0", gpus=8)
    world = World([make_node("h100-0", labels={HOST: "h100-0"})], [busy], jobs)
    memory = CycleMemory()
    first = decide(world, 1000, memory)
    assert {type(s) for s in first.steps} == {Wait}
    carried = dict(memory.plans.jobs)
    assert len(carried) == 1, "one demand among the ten"
    second = decide(world, 1010, memory)
    assert second.steps == first.steps
    # The very results carried, not equal ones planned again.
    assert all(memory.plans.jobs[key][1][1] is plan[1] for key, (_, plan, _) in carried.items())
    world.pods = []
    third = decide(world, 1020, memory)
    assert [type(s).__name__ for s in third.steps][:2] == ["Place", "Wait"]


def test_a_running_job_on_a_node_gone_not_ready_is_requeued_once_the_grace_has_passed() -> None:
    """The same job, pod and node objects in both cycles: only the clock moved (node lost after
    30 s NotReady, the cycle's default), so the step the first cycle gave cannot be kept."""
    node = make_node("h100-0", labels={HOST: "h100-0"})
    world = World([node], [], [make_job()])
    memory = CycleMemory()
    world.bind(decide(world, 1000, memory), 1000)
    assert [type(s).__name__ for s in decide(world, 1010, memory).steps] == ["Keep"]
    world.nodes = [replace(node, ready=False, not_ready_since=at(1015))]
    assert [type(s).__name__ for s in decide(world, 1020, memory).steps] == ["Keep"]
    requeued = decide(world, 1050, memory).steps
    assert [type(s).__name__ for s in requeued] == ["RollBack"]
    assert requeued == decide(world, 1050, None).steps


def test_a_placement_remembered_from_the_last_cycle_is_not_given_once_its_nodes_filled() -> None:
    """j0 and j1 ask the same of one 8-GPU node: j0 is placed; the next cycle, with j0 running
    there, j1 still waits (the plan that placed j0 was made on rows that have changed since)."""
    job = replace(make_job(), shape=replace(make_job().shape, overrides=Overrides(gpus=8)))
    jobs = [replace(job, name=f"j{i}", uid=f"u{i}", created=at(i), queued_since=at(i)) for i in range(2)]
    world = World([make_node("h100-0")], [], jobs)
    memory = CycleMemory()
    first = decide(world, 1000, memory)
    assert [type(s).__name__ for s in first.steps] == ["Place", "Wait"]
    world.bind(first, 1000)
    assert [type(s).__name__ for s in decide(world, 1010, memory).steps] == ["Keep", "Wait"]


def _strict_queue() -> tuple[World, JobFacts]:
    """A head of 8 GPUs that fits no H100 now, and behind it, in strict order, a 1-GPU job that
    fits (planned, so remembered, but not placed)."""
    head, behind = (
        replace(make_job(name, created=t), shape=replace(make_job().shape, overrides=Overrides(gpus=n)))
        for name, t, n in (("head", 0, 8), ("behind", 1, 1))
    )
    nodes = [make_node("h100-0"), make_node("h100-1"), make_node("l4-0", gpus=4, product=L4, memory_gib=24)]
    pods = [make_pod("o1", node="h100-0", gpus=4), make_pod("o2", node="h100-1", gpus=6)]
    return World(nodes, pods, [head, behind], strict=True), head


def test_a_remembered_placement_is_planned_again_once_the_scoring_context_changed() -> None:
    """The head goes and a pod lands on the L4 node: the H100 rows are as they were, but what the
    scorers learn from changed, so the job behind is placed by today's scores, not remembered ones."""
    world, head = _strict_queue()
    memory = CycleMemory()
    assert [type(s) for s in decide(world, 1000, memory).steps] == [Wait, Wait]
    world.jobs = [j for j in world.jobs if j is not head]
    world.pods = [*world.pods, make_pod("o3", node="l4-0", gpus=2)]
    remembered = decide(world, 1010, memory)
    assert [type(s) for s in remembered.steps] == [Place]
    assert remembered.steps == decide(world, 1010, None).steps


def test_a_verdict_reached_before_any_node_was_chosen_outlives_a_scoring_change() -> None:
    """Ten 8-GPU jobs wait on full H100 nodes (no node has room for one pod); a pod lands on the
    L4 node, which they cannot use: their verdict is kept, not planned again, and still right."""
    job = replace(make_job(products=(H100,)), shape=replace(make_job().shape, overrides=Overrides(gpus=8)))
    jobs = [replace(job, name=f"j{i}", uid=f"u{i}", created=at(i), queued_since=at(i)) for i in range(10)]
    nodes = [make_node("h100-0"), make_node("l4-0", gpus=4, product=L4, memory_gib=24)]
    world = World(nodes, [make_pod("busy", node="h100-0", gpus=2)], jobs)
    memory = CycleMemory()
    first = decide(world, 1000, memory)
    carried = dict(memory.plans.jobs)
    assert len(carried) == 1
    assert {type(s) for s in first.steps} == {Wait}
    world.pods = [*world.pods, make_pod("o3", node="l4-0", gpus=2)]
    second = decide(world, 1010, memory)
    assert second.steps == decide(world, 1010, None).steps
    assert all(memory.plans.jobs[key][1][1] is plan[1] for key, (_, plan, _) in carried.items())


@pytest.mark.parametrize(
    ("gpus_taken", "gpus_asked", "after"),
    [
        pytest.param(0, 1, [Place, Place, Place], id="now-it-fits"),
        pytest.param(7, 2, [Wait, Wait, Wait], id="still-waits-counted-under-gpus-not-cpu"),
    ],
)
def test_a_verdict_is_planned_again_when_its_node_changed_but_not_its_largest_block(
    gpus_taken: int, gpus_asked: int, after: list[type]
) -> None:
    """Three jobs wait on an H100 node whose CPU other work holds; that work ends, and the largest
    free block is as it was: yet the node has room for them now, or the reason they wait counts it
    under another check. Either way they get what a cycle planning afresh gives, not the verdict
    of the last cycle."""
    shape = replace(make_job().shape, overrides=Overrides(gpus=gpus_asked))
    job = replace(make_job(products=(H100,)), shape=shape)
    jobs = [replace(job, name=f"j{i}", uid=f"u{i}", created=at(i), queued_since=at(i)) for i in range(3)]
    busy = [make_pod("gpus", node="h100-0", gpus=gpus_taken)] if gpus_taken else []
    world = World([make_node("h100-0")], [*busy, make_pod("hog", node="h100-0", cpu_milli=190_000)], jobs)
    memory = CycleMemory()
    first = decide(world, 1000, memory)
    assert {type(s) for s in first.steps} == {Wait}
    world.pods = busy
    second = decide(world, 1010, memory)
    assert [type(s) for s in second.steps] == after
    assert second.steps == decide(world, 1010, None).steps


def cpu_held_world() -> tuple[World, list[PodFacts]]:
    """Three 2-GPU jobs waiting on an H100 node whose CPU other work holds ("hog"), and 7 of its
    GPUs ("gpus", returned: the pods left once the CPU comes free)."""
    shape = replace(make_job().shape, overrides=Overrides(gpus=2))
    job = replace(make_job(products=(H100,)), shape=shape)
    jobs = [replace(job, name=f"j{i}", uid=f"u{i}", created=at(i), queued_since=at(i)) for i in range(3)]
    busy = [make_pod("gpus", node="h100-0", gpus=7)]
    world = World([make_node("h100-0")], [*busy, make_pod("hog", node="h100-0", cpu_milli=190_000)], jobs)
    return world, busy


def counted_plans(monkeypatch: pytest.MonkeyPatch) -> list[GangRequest]:
    """Every gang planned from now on (not recalled from the memo), in order."""
    planned: list[GangRequest] = []

    def plan_gang_with(table: NodeTable, gang: GangRequest, **kwargs: Any) -> tuple[Any, Any]:
        planned.append(gang)
        return gang_placement.plan_gang_with(table, gang, **kwargs)

    monkeypatch.setattr(planning, "plan_gang_with", plan_gang_with)
    return planned


def test_a_verdict_whose_counts_changed_while_no_node_has_room_is_restated_not_planned_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Three 2-GPU jobs wait on an H100 node whose CPU other work holds (and 7 of its GPUs); the
    CPU comes free, the GPUs do not: the node now counts under another check, still without room.
    The verdict is kept with its counts said anew (core/plan_validity.py), word for word what a
    cycle planning afresh says, and nothing is planned again."""
    world, busy = cpu_held_world()
    memory = CycleMemory()
    first = decide(world, 1000, memory)
    assert all(isinstance(s, Wait) and "(1 × not enough CPU)" in s.message for s in first.steps)
    world.pods = busy
    afresh = decide(world, 1010, None)
    planned = counted_plans(monkeypatch)
    second = decide(world, 1010, memory)
    assert second.steps == afresh.steps
    assert all(isinstance(s, Wait) and "(1 × not enough free GPUs)" in s.message for s in second.steps)
    assert planned == []


def test_a_verdict_carried_through_a_quiet_cycle_is_still_checked_not_planned_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As above, with a cycle between in which nothing changed (the jobs' whole planning was
    recalled, not the verdicts it was made of): when the CPU comes free after it, the verdict is
    still there to be checked, and nothing is planned again. A deep queue after a quiet spell
    would otherwise plan every one of its demands again at the first change."""
    world, busy = cpu_held_world()
    memory = CycleMemory()
    first = decide(world, 1000, memory)
    planned = counted_plans(monkeypatch)
    assert decide(world, 1005, memory).steps == first.steps
    world.pods = busy
    third = decide(world, 1010, memory)
    assert planned == []
    assert all(isinstance(s, Wait) and "(1 × not enough free GPUs)" in s.message for s in third.steps)
    assert third.steps == decide(world, 1010, None).steps


def test_a_verdict_undone_by_room_come_free_holds_again_once_a_job_placed_there_took_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An 8-GPU job heads a queue of 4-GPU jobs, all waiting on two full H100 nodes. A pod on one
    node ends: at the next cycle's start that node has room for a 4-GPU job, so the 4-GPU jobs'
    verdict does not hold; the head is placed there and takes it all, and the verdict holds
    again (plan_carry.Deferred). Only the head is planned; every job gets what a cycle planning
    afresh gives it."""
    head = replace(
        make_job("head", created=0, products=(H100,)),
        shape=replace(make_job().shape, overrides=Overrides(gpus=8)),
    )
    four = replace(make_job(products=(H100,)), shape=replace(make_job().shape, overrides=Overrides(gpus=4)))
    jobs = [head] + [
        replace(four, name=f"j{i}", uid=f"u{i}", created=at(i + 1), queued_since=at(i + 1)) for i in range(3)
    ]
    nodes = [make_node("h100-0"), make_node("h100-1")]
    ending, staying = make_pod("ending", node="h100-0", gpus=8), make_pod("staying", node="h100-1", gpus=8)
    world = World(nodes, [ending, staying], jobs)
    memory = CycleMemory()
    assert {type(s) for s in decide(world, 1000, memory).steps} == {Wait}
    world.pods = [staying]
    afresh = decide(world, 1010, None)
    planned = counted_plans(monkeypatch)
    second = decide(world, 1010, memory)
    assert second.steps == afresh.steps
    assert [type(s) for s in second.steps] == [Place, Wait, Wait, Wait]
    assert [gang.job for gang in planned] == ["ml/head"]
