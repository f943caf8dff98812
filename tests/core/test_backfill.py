"""A waiting head's earliest start (core/backfill.py) against its definition: the soonest moment
at which quota admits it with every job that will have ended by then released, jobs of unknown
end counted as ending now, serving jobs never."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from modeljob.core.backfill import UNTIL_DELETED, Holder, earliest_start, goes_first
from modeljob.core.quota import QuotaRequest, Usage, admit
from tests.core.test_quota import job, two_teams

TREE = two_teams(lending=6)
ENDS = st.one_of(st.none(), st.just(UNTIL_DELETED), st.integers(0, 10).map(lambda h: h * 600.0))


def released(
    usage: Usage, holders: Sequence[Holder], by_seconds: float, *, inclusive: bool, evictable: frozenset[str]
) -> Usage:
    """``usage`` with the holders that will have ended by then released (unknown ends and those
    the head may preempt: ended now; serving jobs: never)."""
    for holder in holders:
        seconds = None if holder.admission.job in evictable else holder.seconds
        ended = seconds is None or (seconds <= by_seconds if inclusive else seconds < by_seconds)
        if ended and seconds != UNTIL_DELETED:
            usage = usage.plus(holder.admission.queue, holder.admission.charges, sign=-1)
    return usage


@st.composite
def held_quota(draw: st.DrawFn) -> tuple[Usage, list[Holder], QuotaRequest, frozenset[str]]:
    """Jobs of both teams admitted one by one while quota admits them, each with an end; some of
    them the head may preempt."""
    usage, holders = Usage(), []
    for index in range(draw(st.integers(0, 8))):
        team = draw(st.sampled_from(("team-a", "team-b")))
        decision = admit(job(f"h{index}", team, draw(st.integers(1, 8))), TREE, usage)
        if decision.admitted:
            usage = usage.plus(team, decision.charges)
            holders.append(Holder(decision, draw(ENDS)))
    request = job("head", draw(st.sampled_from(("team-a", "team-b"))), draw(st.integers(1, 24)))
    evictable = frozenset(h.admission.job for h in holders if draw(st.booleans()))
    return usage, holders, request, evictable


@settings(max_examples=400, deadline=None, database=None)
@given(held_quota())
def test_the_earliest_start_is_the_first_end_after_which_quota_admits_the_head(
    case: tuple[Usage, list[Holder], QuotaRequest, frozenset[str]],
) -> None:
    usage, holders, request, evictable = case
    start = earliest_start(request, TREE, usage, holders, evictable=evictable)
    if start == UNTIL_DELETED:
        ending = released(usage, holders, UNTIL_DELETED, inclusive=False, evictable=evictable)
        assert not admit(request, TREE, ending).admitted
        return
    by_start = released(usage, holders, start, inclusive=True, evictable=evictable)
    assert admit(request, TREE, by_start).admitted
    if start > 0:
        before = released(usage, holders, start, inclusive=False, evictable=evictable)
        assert not admit(request, TREE, before).admitted


def test_what_goes_first_behind_a_head() -> None:
    """Behind a head waiting for serving jobs, any job that ends by itself; behind one that starts
    in an hour, only jobs known to end within the hour; a serving job never."""
    assert goes_first(None, UNTIL_DELETED)
    assert goes_first(7200.0, UNTIL_DELETED)
    assert not goes_first(UNTIL_DELETED, UNTIL_DELETED)
    assert goes_first(1800.0, 3600.0)
    assert goes_first(3600.0, 3600.0)
    assert not goes_first(3601.0, 3600.0)
    assert not goes_first(None, 3600.0)
    assert not goes_first(UNTIL_DELETED, 3600.0)
