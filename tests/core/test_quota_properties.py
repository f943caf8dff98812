"""Quota invariants over generated queue trees and job streams (hypothesis, 500 scenarios each).

Each scenario: up to 7 queues with random parents (cycles and missing parents included), random
H100 nominal, borrowing and lending limits, and a stream of submissions and completions. The
invariants are checked by counting usage directly, not through the admission code's own sums.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modeljob.core.quota import Admission, QuotaRequest, Usage, admit
from modeljob.core.quota_rounds import admit_pending
from modeljob.core.quota_tree import QueueSpec, QueueTree, QuotaEntry, QuotaKey, build_tree

H100 = "NVIDIA-H100-80GB-HBM3"
KEY = QuotaKey("nvidia.com/gpu", frozenset({H100}))
SCENARIOS = settings(
    max_examples=500, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


@st.composite
def entries(draw: st.DrawFn) -> tuple[QuotaEntry, ...]:
    if not draw(st.booleans()):
        return ()  # no quota: pools what its children lend
    nominal = draw(st.integers(0, 16))
    borrowing = draw(st.none() | st.integers(0, 8))
    lending = draw(st.none() | st.integers(0, nominal))
    return (QuotaEntry(KEY, nominal, borrowing, lending),)


@st.composite
def trees(draw: st.DrawFn, *, sound: bool) -> QueueTree:
    """Queues q0..qn; a sound tree's parents come earlier (no cycle, nothing missing)."""
    count = draw(st.integers(1, 7))
    specs = []
    for index in range(count):
        parent: str | None = None
        if sound and index:
            parent = draw(st.none() | st.sampled_from([f"q{i}" for i in range(index)]))
        elif not sound:
            parent = draw(st.none() | st.sampled_from([f"q{i}" for i in range(count)] + ["ghost"]))
        weight = draw(st.sampled_from([0.5, 1.0, 2.0, 3.0]))
        specs.append(QueueSpec(f"q{index}", parent=parent, weight=weight, quota=draw(entries())))
    return build_tree(specs)


@dataclass(frozen=True)
class Step:
    """Submit a job of `gpus` to queue `queue`, or (gpus == 0) finish the `queue`-th running job."""

    queue: int
    gpus: int


steps = st.lists(st.builds(Step, st.integers(0, 6), st.integers(0, 12)), min_size=1, max_size=30)


def used(tree: QueueTree, running: list[Admission], name: str) -> int:
    """What the queue's subtree holds, counted job by job."""
    members = set(tree.subtree(name))
    return sum(c.amount for job in running if job.queue in members for c in job.charges if c.key == KEY)


def total(tree: QueueTree, name: str) -> int:
    return tree.level(name, KEY).total


def assert_within_quota(tree: QueueTree, running: list[Admission]) -> None:
    if KEY not in tree.keys:
        return
    for name, spec in tree.queues.items():
        entry = spec.entry(KEY)
        held = used(tree, running, name)
        if entry is not None and entry.borrowing_limit is not None:
            assert held <= total(tree, name) + entry.borrowing_limit, f"{name} borrowed past its limit"
        root = tree.root_of(name)
        if root == name and not tree.ancestors(name):
            assert held <= total(tree, name), f"tree {name} holds more than its nominal"
        # Where a queue's chain is broken its nominal means nothing (and nothing of it is admitted).
        if entry is not None and entry.lending_limit is not None and tree.blocking_problem(name) is None:
            others = used(tree, running, root) - held
            lendable = total(tree, root) - total(tree, name) + entry.lending_limit
            assert others <= lendable, f"{name} lent more than its lendingLimit"


def nobody_borrows(tree: QueueTree, running: list[Admission]) -> bool:
    """No subtree above its nominal, and no parent's own jobs above what it keeps unassigned
    (beyond that, a parent's jobs take what its children lend)."""
    for name in tree.queues:
        own = total(tree, name) - sum(total(tree, kid) for kid in tree.children[name])
        direct = sum(c.amount for job in running if job.queue == name for c in job.charges)
        if used(tree, running, name) > total(tree, name) or direct > own:
            return False
    return True


def replay(tree: QueueTree, stream: list[Step]) -> None:
    running: list[Admission] = []
    usage = Usage()
    for number, step in enumerate(stream):
        if step.gpus == 0:
            if running:
                done = running.pop(step.queue % len(running))
                usage = usage.plus(done.queue, done.charges, sign=-1)
            continue
        name = f"q{step.queue % len(tree.queues)}"
        request = QuotaRequest(f"j{number}", name, "ns", gpus=step.gpus, gpu_products=frozenset({H100}))
        room = total(tree, name) - used(tree, running, name) if KEY in tree.keys else step.gpus
        # A leaf's nominal is all its own; a parent's also covers its children's guarantees.
        leaf = not tree.children.get(name)
        sound = tree.blocking_problem(name) is None
        must_fit = leaf and sound and step.gpus <= room and nobody_borrows(tree, running)
        decision = admit(request, tree, usage)
        assert decision.admitted or decision.reason, "a waiting job always has a reason"
        if must_fit:
            assert decision.admitted, f"{name} below its nominal was refused: {decision.reason}"
        if decision.admitted:
            assert tree.blocking_problem(name) is None, "a broken queue admitted a job"
            running.append(decision)
            usage = usage.plus(name, decision.charges)
        assert_within_quota(tree, running)


@SCENARIOS
@given(trees(sound=True), steps)
def test_sound_trees_admit_within_quota_and_never_refuse_a_queue_below_its_nominal(
    tree: QueueTree, stream: list[Step]
) -> None:
    replay(tree, stream)


@SCENARIOS
@given(trees(sound=False), steps)
def test_broken_trees_never_crash_and_their_queues_admit_nothing(tree: QueueTree, stream: list[Step]) -> None:
    replay(tree, stream)


@SCENARIOS
@given(trees(sound=True), steps)
def test_a_round_over_everything_pending_loses_no_job_and_stays_within_quota(
    tree: QueueTree, stream: list[Step]
) -> None:
    pending = [
        QuotaRequest(
            f"j{n}", f"q{s.queue % len(tree.queues)}", "ns", gpus=s.gpus, gpu_products=frozenset({H100})
        )
        for n, s in enumerate(stream)
    ]
    result = admit_pending(pending, tree, Usage())
    assert sorted(a.job for a in (*result.admitted, *result.waiting)) == sorted(r.job for r in pending)
    assert all(a.reason for a in result.waiting)
    assert_within_quota(tree, list(result.admitted))
