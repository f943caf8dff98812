"""A job that asks for more than its queue could ever hold is Unschedulable and holds no one: the
jobs behind it that compete for its quota are admitted and placed as if it were not there (the
chaos soak's hostile ModelJobs among the well-formed ones: a 4,096-GPU job at the head of a queue
held every H100 job behind it forever, docs/reliability.md Findings)."""

from __future__ import annotations

from modeljob.core.quota import Charge, QuotaRequest, Usage, admit
from modeljob.core.quota_tree import build_tree
from modeljob.core.steps import Place, Unschedulable
from tests.core.test_quota_deadlock import GPU_H100, TWO_TEAMS, cycle, gpu_job, step_of
from tests.operator_builders import h100_nodes


def test_a_job_larger_than_its_queue_may_ever_hold_waits_behind_no_one_and_says_why() -> None:
    jobs = [
        gpu_job("a-huge", queue="team-a", gpus=4096, created=1000),
        gpu_job("a-small", queue="team-a", gpus=2, created=1001),
    ]
    result = cycle(jobs, [], nodes=h100_nodes(4))
    huge = step_of(result, "a-huge")
    assert isinstance(huge, Unschedulable), huge
    assert "more than queue team-a may ever hold (32, borrowing included)" in huge.message
    assert isinstance(step_of(result, "a-small"), Place), step_of(result, "a-small")


def test_a_job_the_queue_could_hold_once_others_finish_still_waits_for_quota() -> None:
    """32 is all team-a may hold (16 of its own, 16 lent by team-b): that much waits, never refused."""
    tree = build_tree([q.spec for q in TWO_TEAMS])
    products = GPU_H100.products

    def request(gpus: int) -> QuotaRequest:
        return QuotaRequest("ml/a", "team-a", "ml", gpus=gpus, gpu_products=products)

    busy = Usage().plus("team-b", [Charge(GPU_H100, 16, 0)])
    later = admit(request(32), tree, busy)
    assert (later.admitted, later.never, later.blocks_queue) == (False, False, True), later
    assert admit(request(32), tree, Usage()).admitted
    never = admit(request(33), tree, Usage())
    assert (never.admitted, never.never, never.blocks_queue) == (False, True, False), never
