"""A head asks only the jobs some rule could let it evict, and gets the answer asking every
running job would give."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from modeljob.core.preemption_rules import PreemptionRules, Preemptor, RunningJob, WithinQueue
from modeljob.core.preemption_view import CandidatePool, evictable_by

QUEUES = ("team-a", "team-b", "team-c")
HOUR = 3600.0
NOW = 10 * HOUR
DURATIONS = st.one_of(st.none(), st.integers(1, 12).map(lambda h: h * HOUR))


@st.composite
def running_jobs(draw: st.DrawFn) -> list[RunningJob]:
    return [
        RunningJob(
            name=f"job-{index}",
            queue=draw(st.sampled_from(QUEUES)),
            priority=draw(st.integers(0, 2)),
            started_at_seconds=NOW - draw(st.integers(0, 6)) * 1200.0,
            pods=(),
            expected_duration_seconds=draw(DURATIONS),
            checkpoint_interval_seconds=draw(st.sampled_from((None, 600.0, 3600.0))),
        )
        for index in range(draw(st.integers(0, 10)))
    ]


RULES = st.builds(
    PreemptionRules,
    within_queue=st.sampled_from(tuple(WithinQueue)),
    reclaim_borrowed=st.booleans(),
    min_runtime_seconds=st.sampled_from((0.0, 1200.0)),
    time_slice_seconds=st.sampled_from((None, 1800.0, 3600.0)),
)


HEADS = st.builds(
    Preemptor,
    name=st.just("head"),
    queue=st.sampled_from(QUEUES),
    priority=st.integers(0, 2),
    expected_duration_seconds=DURATIONS,
)


@settings(max_examples=400, deadline=None, database=None)
@given(jobs=running_jobs(), rules=RULES, head=HEADS, data=st.data())
def test_the_pool_answers_as_asking_every_running_job_would(
    jobs: list[RunningJob], rules: PreemptionRules, head: Preemptor, data: st.DataObject
) -> None:
    # Borrowers the caller's quota tree marks reclaimable, and a name no longer running.
    names = [job.name for job in jobs] + ["gone"]
    reclaimable = frozenset(data.draw(st.lists(st.sampled_from(names), unique=True)))

    asked_of_all = evictable_by(head, rules, jobs, reclaimable=reclaimable, now_seconds=NOW)
    pooled = CandidatePool.of(jobs).evictable(head, rules, reclaimable=reclaimable, now_seconds=NOW)

    assert pooled == asked_of_all


def test_a_queue_that_never_preempts_within_itself_may_still_reclaim_its_borrowers() -> None:
    own = RunningJob("own", "team-a", 0, started_at_seconds=0.0, pods=())
    borrower = RunningJob("borrower", "team-b", 5, started_at_seconds=0.0, pods=())
    head = Preemptor("head", "team-a", 2)
    rules = PreemptionRules(within_queue=WithinQueue.NEVER, reclaim_borrowed=True)

    pool = CandidatePool.of([own, borrower])

    assert pool.evictable(head, rules, reclaimable={"borrower"}, now_seconds=NOW) == {"borrower"}
    assert pool.evictable(head, rules, reclaimable=(), now_seconds=NOW) == frozenset()
