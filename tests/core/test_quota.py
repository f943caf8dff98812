"""Admission by quota: nominal, borrowing and lending through the queue tree, reasons with numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from modeljob.core.quota import (
    Admission,
    Charge,
    QuotaRequest,
    Usage,
    admit,
    borrowed_uses,
    reclaimable_by,
    usage_of,
)
from modeljob.core.quota_rounds import admit_pending, dominant_share
from modeljob.core.quota_status import KeyReport, queue_report
from modeljob.core.quota_tree import CPU, MEMORY, QueueSpec, QueueTree, QuotaEntry, QuotaKey, build_tree

H100 = "NVIDIA-H100-80GB-HBM3"
A100 = "NVIDIA-A100-SXM4-80GB"
L4 = "NVIDIA-L4"
GPU = "nvidia.com/gpu"
H100_KEY = QuotaKey(GPU, frozenset({H100}))
GIB = 2**30


def gpus(
    nominal: int, *, borrowing: int | None = None, lending: int | None = None, product: str = H100
) -> QuotaEntry:
    return QuotaEntry(QuotaKey(GPU, frozenset({product})), nominal, borrowing, lending)


def queue(
    name: str,
    *quota: QuotaEntry,
    parent: str | None = None,
    weight: float = 1.0,
    namespaces: frozenset[str] = frozenset(),
) -> QueueSpec:
    return QueueSpec(name, parent=parent, weight=weight, namespaces=namespaces, quota=quota)


def job(
    name: str,
    queue_name: str,
    count: int,
    *,
    namespace: str = "ns",
    cpu_milli: int = 0,
    memory_bytes: int = 0,
) -> QuotaRequest:
    """A job of `count` H100 GPUs (and CPU and memory when given)."""
    return QuotaRequest(
        name,
        queue_name,
        namespace,
        gpus=count,
        gpu_products=frozenset({H100}),
        cpu_milli=cpu_milli,
        memory_bytes=memory_bytes,
    )


def two_teams(*, lending: int | None = None) -> QueueTree:
    """research pools what team-a (16 H100) and team-b (8 H100, lending at most `lending`) lend."""
    return build_tree(
        [
            queue("research"),
            queue("team-a", gpus(16), parent="research"),
            queue("team-b", gpus(8, lending=lending), parent="research"),
        ]
    )


def holding(tree: QueueTree, *jobs: QuotaRequest) -> Usage:
    """The usage after admitting each job in turn (each must be admitted)."""
    usage = Usage()
    for request in jobs:
        decision = admit(request, tree, usage)
        assert decision.admitted, decision.reason
        usage = usage.plus(request.queue, decision.charges)
    return usage


# --- no queues, missing queues, namespaces, broken trees -------------------------------------------


def test_without_any_queue_every_job_is_admitted_as_before() -> None:
    decision = admit(job("big", "anything", 4096), build_tree([]), Usage())
    assert decision.admitted
    assert decision.charges == ()


def test_a_job_naming_a_missing_queue_waits_saying_so() -> None:
    decision = admit(job("j", "team-c", 1), two_teams(), Usage())
    assert not decision.admitted
    assert decision.reason.startswith("queue team-c does not exist")
    assert not decision.blocks_queue


def test_once_queues_exist_default_is_a_queue_like_any_other() -> None:
    decision = admit(job("j", "default", 1), two_teams(), Usage())
    assert decision.reason.startswith("queue default does not exist")


def test_a_namespace_the_queue_does_not_admit_waits_saying_so() -> None:
    tree = build_tree([queue("team-a", gpus(8), namespaces=frozenset({"team-a", "ml"}))])
    assert admit(job("j", "team-a", 1, namespace="ml"), tree, Usage()).admitted
    decision = admit(job("j", "team-a", 1, namespace="other"), tree, Usage())
    assert decision.reason == "queue team-a does not admit namespace other (it admits ml, team-a)"


@pytest.mark.parametrize(
    ("specs", "broken", "reason", "message"),
    [
        (
            [queue("a", gpus(8), parent="b"), queue("b", gpus(8), parent="a")],
            "a",
            "ParentCycle",
            "queue a: its parent chain is a cycle (a -> b -> a)",
        ),
        ([queue("a", gpus(8), parent="gone")], "a", "ParentMissing", "queue a: parent gone does not exist"),
        (
            [queue("p", gpus(12)), queue("a", gpus(8), parent="p"), queue("b", gpus(8), parent="p")],
            "p",
            "ChildrenAboveNominal",
            f"queue p: its children's nominal 16 of nvidia.com/gpu [{H100}] is above its own 12",
        ),
        (
            [queue("p", gpus(16, product=A100)), queue("a", gpus(8), parent="p")],
            "p",
            "ProductsMismatch",
            f"queue p: child a declares nvidia.com/gpu [{H100}], which p does not; a parent that "
            "declares nvidia.com/gpu must declare every products list its children use",
        ),
        ([queue("a", gpus(8, lending=9))], "a", "LendingAboveNominal", None),
        ([queue("a", gpus(8), gpus(4))], "a", "DuplicateQuota", None),
        ([queue("a", gpus(-1))], "a", "NegativeQuota", None),
    ],
    ids=[
        "cycle",
        "missing-parent",
        "children-above-parent",
        "products-mismatch",
        "lending-above",
        "duplicate",
        "negative",
    ],
)
def test_a_broken_queue_is_reported_not_raised(
    specs: list[QueueSpec], broken: str, reason: str, message: str | None
) -> None:
    tree = build_tree(specs)
    problem = tree.problems[broken][0]
    assert problem.reason == reason
    if message is not None:
        assert problem.message == message


def test_a_parent_without_quota_pools_without_a_problem() -> None:
    assert two_teams().problems == {}


def test_jobs_of_a_broken_queue_and_of_the_queues_under_it_wait_with_its_reason() -> None:
    tree = build_tree(
        [queue("p", gpus(12)), queue("a", gpus(8), parent="p"), queue("b", gpus(8), parent="p")]
    )
    own = admit(job("j", "p", 1), tree, Usage())
    below = admit(job("j", "a", 1), tree, Usage())
    assert own.reason.startswith("queue p: its children's nominal 16")
    assert below.reason.startswith("queue a: waits for queue p: its children's nominal 16")
    assert not below.admitted


# --- nominal, borrowing, lending --------------------------------------------------------------------


def test_a_job_that_fits_the_nominal_is_admitted_without_borrowing() -> None:
    decision = admit(job("j", "team-a", 16), two_teams(), Usage())
    assert decision.admitted
    assert decision.charges == (Charge(H100_KEY, 16, borrowed=0),)
    assert decision.products == frozenset({H100})


def test_a_job_borrows_what_its_sibling_lends_through_the_parent() -> None:
    tree = two_teams()
    decision = admit(job("j", "team-a", 24), tree, Usage())
    assert decision.admitted
    assert decision.borrowed == 8


def test_the_issue_example_names_queue_numbers_lender_and_limit() -> None:
    tree = two_teams(lending=2)
    usage = holding(tree, job("running", "team-a", 12))
    decision = admit(job("j", "team-a", 8), tree, usage)
    assert not decision.admitted
    assert decision.blocks_queue
    assert decision.reason == (
        f"queue team-a: needs 8 {H100} GPUs, nominal 16, used 12; can borrow 2 from research (lendingLimit)"
    )


def test_a_lender_never_lends_beyond_its_lending_limit() -> None:
    tree = two_teams(lending=2)
    assert admit(job("j", "team-a", 18), tree, Usage()).admitted
    assert not admit(job("j", "team-a", 19), tree, Usage()).admitted


def test_the_borrowing_limit_caps_what_a_queue_takes_and_is_named() -> None:
    tree = build_tree(
        [
            queue("research"),
            queue("team-a", gpus(8, borrowing=2), parent="research"),
            queue("team-b", gpus(8), parent="research"),
        ]
    )
    assert admit(job("j", "team-a", 10), tree, Usage()).admitted
    decision = admit(job("j", "team-a", 11), tree, Usage())
    assert decision.reason == (
        f"queue team-a: needs 11 {H100} GPUs, nominal 8, used 0; can borrow 2 from research "
        "(borrowingLimit); more than queue team-a may ever hold (10, borrowing included)"
    )
    assert decision.never, "no running job's end would make room: it holds no one behind it"


def test_a_root_queue_has_no_one_to_borrow_from() -> None:
    tree = build_tree([queue("solo", gpus(8))])
    decision = admit(job("j", "solo", 9), tree, Usage())
    assert decision.reason == (
        f"queue solo: needs 9 {H100} GPUs, nominal 8, used 0; no parent to borrow from; "
        "more than queue solo may ever hold (8, borrowing included)"
    )


def test_nominal_lent_to_a_borrower_is_named_as_in_use_by_others() -> None:
    tree = two_teams()
    usage = holding(tree, job("borrower", "team-a", 24))
    decision = admit(job("j", "team-b", 4), tree, usage)
    assert decision.reason == (
        f"queue team-b: needs 4 {H100} GPUs, nominal 8, used 0; "
        "8 of its nominal is in use by other queues that borrowed it"
    )


def test_a_guaranteed_part_is_kept_even_while_others_borrow() -> None:
    """team-b lends at most 2 of its 8: the other 6 stay its own whatever team-a does."""
    tree = two_teams(lending=2)
    usage = holding(tree, job("borrower", "team-a", 18))
    assert admit(job("j", "team-b", 6), tree, usage).admitted
    assert not admit(job("j", "team-b", 7), tree, usage).admitted


def test_a_parent_that_declares_quota_caps_its_whole_subtree() -> None:
    tree = build_tree(
        [
            queue("org"),
            queue("research", gpus(16), parent="org"),
            queue("team-a", gpus(8), parent="research"),
            queue("team-b", gpus(4), parent="research"),
            queue("prod", gpus(8), parent="org"),
        ]
    )
    assert tree.problems == {}
    # team-a may use research's unassigned 4, team-b's idle 4 and prod's idle 8.
    assert admit(job("j", "team-a", 24), tree, Usage()).admitted
    assert not admit(job("j", "team-a", 25), tree, Usage()).admitted


def test_a_resource_no_queue_of_the_tree_declares_is_not_limited() -> None:
    tree = two_teams()
    request = job("j", "team-a", 0, cpu_milli=10**9, memory_bytes=10**15)
    assert admit(request, tree, Usage()).admitted


def test_cpu_and_memory_are_counted_in_their_units_and_named_as_written() -> None:
    tree = build_tree(
        [queue("q", QuotaEntry(QuotaKey(CPU), 64_000), QuotaEntry(QuotaKey(MEMORY), 512 * GIB))]
    )
    assert admit(job("j", "q", 0, cpu_milli=64_000, memory_bytes=512 * GIB), tree, Usage()).admitted
    decision = admit(job("j", "q", 0, cpu_milli=1_000, memory_bytes=600 * GIB), tree, Usage())
    assert decision.reason == (
        "queue q: needs 600Gi memory, nominal 512Gi, used 0; no parent to borrow from; "
        "more than queue q may ever hold (512Gi, borrowing included)"
    )


def test_a_job_accepting_two_products_takes_the_first_key_with_room_and_is_narrowed_to_it() -> None:
    tree = build_tree([queue("q", gpus(4, product=H100), gpus(8, product=A100))])
    request = QuotaRequest("j", "q", "ns", gpus=6, gpu_products=frozenset({H100, A100}))
    decision = admit(request, tree, Usage())
    assert decision.products == frozenset({A100})
    assert decision.charges[0].key.products == frozenset({A100})


def test_a_queue_below_its_nominal_is_admitted_while_nobody_borrows() -> None:
    tree = two_teams(lending=2)
    usage = holding(tree, job("a", "team-a", 16), job("b", "team-b", 3))
    assert admit(job("j", "team-b", 5), tree, usage).admitted


# --- many pending jobs: queue order and fair sharing among borrowers ----------------------------


def test_a_head_waiting_for_quota_holds_the_jobs_behind_it_in_its_queue_only() -> None:
    tree = two_teams()
    usage = holding(tree, job("b-running", "team-b", 4))  # huge (21 of the 24 team-b may hold) waits for it
    pending = [job("huge", "team-b", 21), job("small", "team-b", 1), job("other", "team-a", 2)]
    result = admit_pending(pending, tree, usage)
    assert [a.job for a in result.admitted] == ["other"]
    assert {a.job: a.reason for a in result.waiting}[
        "small"
    ] == "queue team-b: behind huge, which waits for quota"


def test_a_head_waiting_for_quota_does_not_hold_a_job_asking_for_none_of_its_keys() -> None:
    """huge waits for H100 quota; the L4 job behind it asks for nothing huge could be charged to,
    so it goes on; the H100 job behind it waits for huge (kueue#534)."""
    tree = build_tree([queue("q", gpus(8), gpus(4, product=L4))])
    l4_job = QuotaRequest("l4", "q", "ns", gpus=2, gpu_products=frozenset({L4}))
    usage = holding(tree, job("running", "q", 2))  # huge (all 8) waits for it
    result = admit_pending([job("huge", "q", 8), job("small", "q", 1), l4_job], tree, usage)
    assert [a.job for a in result.admitted] == ["l4"]
    waiting = {a.job: a for a in result.waiting}
    assert waiting["huge"].competes_for == frozenset({H100_KEY})
    assert (waiting["small"].behind, waiting["small"].reason) == (
        "huge",
        "queue q: behind huge, which waits for quota",
    )


def test_a_job_admitted_but_not_placed_gives_its_charge_back_before_the_next_is_admitted() -> None:
    """group borrows the last 4 of team-a's nominal and is not placed: team-b's next job is
    admitted against what is held, not against the group's charge."""
    tree = two_teams()
    usage = holding(tree, job("a0", "team-a", 8))
    pending = [job("group", "team-b", 12), job("b-next", "team-b", 4), job("a1", "team-a", 4)]
    tried: list[str] = []

    def place(decision: Admission) -> bool:
        tried.append(decision.job)
        return decision.job != "group"

    result = admit_pending(pending, tree, usage, place=place)
    assert [a.job for a in result.unplaced] == ["group"]
    assert [a.job for a in result.admitted] == ["a1", "b-next"]
    assert tried == ["a1", "group", "b-next"]  # within nominal first, then borrowers
    assert not result.waiting
    assert result.usage == holding(
        tree, job("a0", "team-a", 8), job("a1", "team-a", 4), job("b-next", "team-b", 4)
    )
    # Charged anyway (no placement asked), the group leaves no room for b-next.
    assert [a.job for a in admit_pending(pending, tree, usage).waiting] == ["b-next"]


def test_jobs_within_nominal_go_before_borrowers() -> None:
    tree = two_teams()
    usage = holding(tree, job("a0", "team-a", 16))
    result = admit_pending([job("a1", "team-a", 8), job("b1", "team-b", 8)], tree, usage)
    assert [a.job for a in result.admitted] == ["b1"]


def test_borrowers_share_what_is_lent_by_weighted_dominant_share() -> None:
    """lender lends 12; heavy (weight 2) gets twice light's share of it, one GPU at a time."""
    tree = build_tree(
        [
            queue("root"),
            queue("lender", gpus(12), parent="root"),
            queue("heavy", gpus(0), parent="root", weight=2.0),
            queue("light", gpus(0), parent="root", weight=1.0),
        ]
    )
    pending = [job(f"h{i}", "heavy", 1) for i in range(12)] + [job(f"l{i}", "light", 1) for i in range(12)]
    result = admit_pending(pending, tree, Usage())
    taken = [a.queue for a in result.admitted]
    assert (taken.count("heavy"), taken.count("light")) == (8, 4)
    assert dominant_share("heavy", tree, result.usage) == pytest.approx(
        dominant_share("light", tree, result.usage)
    )


# --- borrowed quota, for preemption ------------------------------------------------------------------


def _running(tree: QueueTree, *jobs: QuotaRequest) -> list[Admission]:
    usage, found = Usage(), []
    for request in jobs:
        decision = admit(request, tree, usage)
        assert decision.admitted, decision.reason
        usage = usage.plus(request.queue, decision.charges)
        found.append(decision)
    return found


def test_the_youngest_jobs_of_a_queue_above_its_nominal_hold_what_it_borrowed() -> None:
    tree = two_teams()
    running = _running(tree, job("a1", "team-a", 8), job("a2", "team-a", 8), job("a3", "team-a", 8))
    uses = borrowed_uses(tree, running)
    assert [(u.job, u.amount, u.lenders) for u in uses] == [("a3", 8, ("team-b",))]


def test_a_queue_below_nominal_may_reclaim_what_others_borrowed_but_not_from_itself() -> None:
    tree = two_teams()
    running = _running(tree, job("a1", "team-a", 20), job("b1", "team-b", 2))
    assert [u.job for u in reclaimable_by("team-b", tree, running)] == ["a1"]
    assert reclaimable_by("team-a", tree, running) == ()


def test_usage_counts_only_admitted_jobs() -> None:
    held = Admission("j", "q", admitted=True, charges=(Charge(H100_KEY, 3),))
    waiting = Admission("k", "q", admitted=False, reason="waits")
    assert usage_of([held, waiting]).of("q", H100_KEY) == 3


# --- status numbers -----------------------------------------------------------------------------------


def test_the_status_of_two_teams_shows_who_borrowed_and_who_lent() -> None:
    tree = two_teams()
    usage = holding(tree, job("a1", "team-a", 20), job("b1", "team-b", 2))
    team_a, team_b = queue_report("team-a", tree, usage), queue_report("team-b", tree, usage)
    assert team_a.keys == (KeyReport(H100_KEY, nominal=16, used=20, borrowed=4, lent=0),)
    assert team_b.keys == (KeyReport(H100_KEY, nominal=8, used=2, borrowed=0, lent=4),)
    assert (team_a.line("borrowed"), team_b.line("borrowed")) == (f"4 {H100} GPUs", "0")
    parent = queue_report("research", tree, usage).keys[0]
    assert (parent.nominal, parent.used, parent.borrowed) == (24, 22, 0)


def test_the_worked_example_of_docs_queues_md_is_what_the_code_says() -> None:
    """Steps 1-3 of docs/queues.md: team-a borrows team-b's idle 8, then with lendingLimit 2 only 2."""
    doc = " ".join((Path(__file__).resolve().parents[2] / "docs" / "queues.md").read_text().split())
    for lending in (None, 2):
        tree = build_tree(
            [
                queue("research"),
                queue("team-a", gpus(8), parent="research"),
                queue("team-b", gpus(8, lending=lending), parent="research"),
            ]
        )
        jobs = [job(f"a{i}", "team-a", 4, namespace="team-a") for i in range(1, 5)]
        result = admit_pending(jobs, tree, Usage())
        if lending is None:
            assert [a.job for a in result.admitted] == ["a1", "a2", "a3", "a4"]
            reason = admit(job("b1", "team-b", 8), tree, result.usage).reason
            assert [u.job for u in reclaimable_by("team-b", tree, list(result.admitted))] == ["a3", "a4"]
        else:
            assert [a.job for a in result.admitted] == ["a1", "a2"]
            reason = result.waiting[0].reason
            assert admit(job("b1", "team-b", 6), tree, result.usage).admitted
        assert reason in doc
