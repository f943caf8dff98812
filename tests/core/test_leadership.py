"""Leader election on a Lease: who creates, acquires, renews or stands by, and how long a leader may act."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import pytest

from modeljob.core.leadership import (
    MIN_CALL_TIMEOUT_SECONDS,
    Action,
    Election,
    LeaseRecord,
    LeaseTiming,
    decide,
    next_try_seconds,
    observe,
    released,
    stepped_down,
    written,
)
from tests.operator_builders import at

KUBE_SCHEDULER = LeaseTiming(duration_seconds=15, renew_deadline_seconds=10, retry_period_seconds=2)


def held_by(holder: str, *, renewed: float = 0, transitions: int = 0) -> LeaseRecord:
    return LeaseRecord(holder, 15, acquired=at(0), renewed=at(renewed), transitions=transitions)


def seen(identity: str, record: LeaseRecord | None, *, at_seconds: float, version: str = "1") -> Election:
    return observe(Election(identity), record, version=version, now_seconds=at_seconds)


def leader(identity: str = "a", *, sent: float = 100.0) -> Election:
    """A replica whose renewal sent at ``sent`` went through."""
    election = seen(identity, held_by(identity), at_seconds=sent - 1)
    decision = decide(election, timing=KUBE_SCHEDULER, now_seconds=sent, wall=at(sent))
    return written(election, decision, version="2", sent_seconds=sent, timing=KUBE_SCHEDULER)


# --- what to do -----------------------------------------------------------------------------------


def test_the_first_replica_creates_the_lease_holding_it_from_now() -> None:
    decision = decide(Election("a"), timing=KUBE_SCHEDULER, now_seconds=5, wall=at(5))
    assert decision.action is Action.CREATE
    assert decision.record == LeaseRecord("a", 15, acquired=at(5), renewed=at(5), transitions=0)
    assert decision.version is None


def test_a_standby_waits_while_the_holder_keeps_renewing() -> None:
    election = seen("b", held_by("a", renewed=0), at_seconds=100)
    for second in range(102, 200, 2):  # a new renewTime each retry period restarts the clock
        election = observe(election, held_by("a", renewed=second), version=str(second), now_seconds=second)
        decision = decide(election, timing=KUBE_SCHEDULER, now_seconds=second + 1, wall=at(second + 1))
        assert decision.action is Action.STAND_BY
    assert not election.leads(200)


@pytest.mark.parametrize(
    ("now", "action"),
    [(114.9, Action.STAND_BY), (115.0, Action.ACQUIRE), (500.0, Action.ACQUIRE)],
    ids=["just-before-the-duration", "after-the-duration", "long-after"],
)
def test_a_standby_takes_a_lease_left_unchanged_for_its_duration(now: float, action: Action) -> None:
    election = seen("b", held_by("a", transitions=3), at_seconds=100, version="7")
    for second in (102, 110, 114):  # read again, unchanged: the clock keeps running from 100
        election = observe(election, held_by("a", transitions=3), version="7", now_seconds=second)
    decision = decide(election, timing=KUBE_SCHEDULER, now_seconds=now, wall=at(now))
    assert decision.action is action
    if action is Action.ACQUIRE:
        assert decision.record == LeaseRecord("b", 15, acquired=at(now), renewed=at(now), transitions=4)
        assert decision.version == "7"  # conditional: of two candidates only one can write it


def test_a_released_lease_is_taken_at_once() -> None:
    free = LeaseRecord("", 1, renewed=at(0), transitions=2)
    decision = decide(seen("b", free, at_seconds=100), timing=KUBE_SCHEDULER, now_seconds=100, wall=at(100))
    assert decision.action is Action.ACQUIRE
    assert decision.record is not None
    assert decision.record.transitions == 3


def test_a_replica_renews_its_own_lease_keeping_acquisition_and_transitions() -> None:
    election = seen("a", held_by("a", transitions=5), at_seconds=100)
    decision = decide(election, timing=KUBE_SCHEDULER, now_seconds=101, wall=at(101))
    assert decision.action is Action.RENEW
    assert decision.record == LeaseRecord("a", 15, acquired=at(0), renewed=at(101), transitions=5)


# --- clock skew: expiry is judged on the reader's own clock -------------------------------------


@pytest.mark.parametrize(
    "holder_clock_offset_seconds",
    [-3600.0, -15.0, 0.0, 3600.0],
    ids=["holder-an-hour-behind", "holder-a-duration-behind", "same-clock", "holder-an-hour-ahead"],
)
def test_the_holders_wall_clock_never_shortens_or_extends_the_lease(
    holder_clock_offset_seconds: float,
) -> None:
    record = held_by("a", renewed=holder_clock_offset_seconds)
    election = seen("b", record, at_seconds=1000)
    assert decide(election, timing=KUBE_SCHEDULER, now_seconds=1014.9, wall=at(0)).action is Action.STAND_BY
    assert decide(election, timing=KUBE_SCHEDULER, now_seconds=1015, wall=at(0)).action is Action.ACQUIRE


def test_the_leaders_proof_ends_before_any_standby_may_take_over() -> None:
    """The standby sees the renewal after it was sent, so waits at least sent + duration; the
    leader stops at sent + renew deadline: the margin is what a write in flight may take."""
    sent = 100.0
    election = leader("a", sent=sent)
    standby = seen("b", election.observed.record if election.observed else None, at_seconds=sent + 0.001)
    last_action = sent + KUBE_SCHEDULER.renew_deadline_seconds
    first_takeover = sent + KUBE_SCHEDULER.duration_seconds
    assert election.leads(last_action - 0.001)
    assert not election.leads(last_action)
    assert decide(standby, timing=KUBE_SCHEDULER, now_seconds=first_takeover - 0.01, wall=at(0)).action is (
        Action.STAND_BY
    )
    assert first_takeover - last_action == KUBE_SCHEDULER.fencing_margin_seconds == 5


# --- leading and stepping down --------------------------------------------------------------------


def test_leadership_is_proven_from_when_the_renewal_was_sent_not_answered() -> None:
    election = seen("a", held_by("a"), at_seconds=99)
    decision = decide(election, timing=KUBE_SCHEDULER, now_seconds=100, wall=at(100))
    election = written(election, decision, version="2", sent_seconds=100, timing=KUBE_SCHEDULER)
    assert election.proven_until_seconds == 110
    assert election.observed is not None
    assert election.observed.version == "2"


def test_failed_renewals_end_leadership_at_the_renew_deadline() -> None:
    election = leader("a", sent=100)
    for second in (102, 104, 106, 108):  # every renewal fails: nothing written, nothing proven
        assert election.leads(second)
        decision = decide(election, timing=KUBE_SCHEDULER, now_seconds=second, wall=at(second))
        assert decision.action is Action.RENEW
    assert election.leads(109.99)
    assert not election.leads(110)


def test_a_successful_renewal_extends_the_proof() -> None:
    election = leader("a", sent=100)
    decision = decide(election, timing=KUBE_SCHEDULER, now_seconds=108, wall=at(108))
    election = written(election, decision, version="3", sent_seconds=108, timing=KUBE_SCHEDULER)
    assert election.leads(117.9)
    assert not election.leads(118)


def test_a_lease_seen_held_by_another_replica_ends_leadership_at_once() -> None:
    """After a conflicting write (someone else took it), the next read shows the new holder."""
    election = leader("a", sent=100)
    election = observe(election, held_by("b", renewed=101), version="9", now_seconds=101)
    assert not election.leads(101)
    assert decide(election, timing=KUBE_SCHEDULER, now_seconds=102, wall=at(102)).action is Action.STAND_BY


def test_reading_ones_own_lease_again_keeps_the_proof() -> None:
    election = leader("a", sent=100)
    assert election.observed is not None
    again = observe(election, election.observed.record, version="2", now_seconds=103)
    assert again.proven_until_seconds == 110


def test_a_deleted_lease_ends_leadership_and_is_created_again() -> None:
    election = observe(leader("a", sent=100), None, version="", now_seconds=101)
    assert not election.leads(101)
    assert decide(election, timing=KUBE_SCHEDULER, now_seconds=101, wall=at(101)).action is Action.CREATE


def test_a_restarted_replica_with_the_same_identity_renews_without_a_transition() -> None:
    election = seen("a", held_by("a", transitions=2), at_seconds=5)
    assert not election.leads(5)  # not proven by this process yet
    decision = decide(election, timing=KUBE_SCHEDULER, now_seconds=5, wall=at(5))
    assert decision.action is Action.RENEW
    assert decision.record is not None
    assert decision.record.transitions == 2


def test_release_empties_the_holder_so_a_standby_need_not_wait() -> None:
    decision = released(leader("a", sent=100), wall=at(101))
    assert decision is not None
    assert decision.record is not None
    assert (decision.record.holder, decision.record.duration_seconds) == ("", 1)
    assert decision.version == "2"
    assert released(seen("b", held_by("a"), at_seconds=1), wall=at(1)) is None


def test_stepping_down_stops_acting_at_once() -> None:
    assert not stepped_down(leader("a", sent=100)).leads(100.5)


# --- settings -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timing", "problem"),
    [
        (KUBE_SCHEDULER, None),
        (LeaseTiming(15, 15, 2), "shorter than the lease duration"),
        (LeaseTiming(15, 2.4, 2), "1.2 x the retry period"),
    ],
    ids=["kube-scheduler", "deadline-not-below-duration", "deadline-within-jitter"],
)
def test_timings_that_cannot_keep_one_leader_are_refused(timing: LeaseTiming, problem: str | None) -> None:
    found = timing.problem()
    assert found is None if problem is None else (found is not None and problem in found)


def test_times_written_are_the_wall_clock_given() -> None:
    wall = at(0) + timedelta(hours=5)
    decision = decide(Election("a"), timing=KUBE_SCHEDULER, now_seconds=0, wall=wall)
    assert decision.record is not None
    assert decision.record.renewed == wall


@pytest.mark.parametrize(
    ("holder", "now", "wait"),
    [("b", 101, 0.5), ("b", 114.75, 0.25), ("b", 115, 2), ("a", 113.5, 2), (None, 100, 2)],
    ids=["far-from-expiry", "expires-within-a-read-period", "expired-and-not-taken", "own-lease", "no-lease"],
)
def test_a_standby_reads_four_times_a_retry_period_and_again_the_moment_the_lease_expires(
    holder: str | None, now: float, wait: float
) -> None:
    election = seen("a", None if holder is None else held_by(holder), at_seconds=100)
    assert next_try_seconds(election, timing=KUBE_SCHEDULER, now_seconds=now) == pytest.approx(wait)


def test_a_standby_reads_the_lease_a_quarter_of_a_retry_period_apart() -> None:
    assert KUBE_SCHEDULER.standby_read_period_seconds == 0.5
    assert LeaseTiming(60, 40, 8).standby_read_period_seconds == 2


# --- how soon a standby sees renewals, and takes over ---------------------------------------------


@dataclass(frozen=True)
class Watched:
    first_seen_seconds: dict[float, float]  # each renewal's send time -> when the standby first saw it
    takeover_seconds: float


def standby_watching(renewals: Sequence[float], *, first_read_seconds: float) -> Watched:
    """A standby reading when ``next_try_seconds`` says, while the leader's renewals (sent at the
    given times, each visible from then on) go through until the last one: the leader then dies."""
    election, now = Election("b"), first_read_seconds
    first_seen: dict[float, float] = {}
    while True:
        sent = max(t for t in renewals if t <= now)
        election = observe(election, held_by("a", renewed=sent), version=str(sent), now_seconds=now)
        assert election.observed is not None
        first_seen.setdefault(sent, election.observed.since_seconds)
        if decide(election, timing=KUBE_SCHEDULER, now_seconds=now, wall=at(now)).action is Action.ACQUIRE:
            return Watched(first_seen, now)
        now += next_try_seconds(election, timing=KUBE_SCHEDULER, now_seconds=now)


EVERY_RETRY_PERIOD = [100.0 + 2.0 * n for n in range(10)]
SLOW_RENEWALS = [100.0 + 2.37 * n for n in range(10)]  # each read and write taking its time


@pytest.mark.parametrize(
    ("renewals", "first_read"),
    [
        (EVERY_RETRY_PERIOD, 100.0),
        (EVERY_RETRY_PERIOD, 100.01),
        (EVERY_RETRY_PERIOD, 100.49),
        (EVERY_RETRY_PERIOD, 101.99),
        (SLOW_RENEWALS, 100.2),
        (SLOW_RENEWALS, 101.7),
    ],
    ids=["in-step", "just-after", "just-before-the-next-read", "a-period-out", "slow-early", "slow-late"],
)
def test_a_standby_sees_each_renewal_within_its_read_period_and_takes_over_a_duration_after(
    renewals: list[float], first_read: float
) -> None:
    watched = standby_watching(renewals, first_read_seconds=first_read)
    read_period = KUBE_SCHEDULER.retry_period_seconds / 4
    lags = {sent: seen - sent for sent, seen in watched.first_seen_seconds.items() if sent >= first_read}
    assert lags, "the standby saw no renewal after its first read"
    assert all(0 <= lag <= read_period + 1e-9 for lag in lags.values()), lags
    last_sent = renewals[-1]
    last_seen = watched.first_seen_seconds[last_sent]
    # Never before a whole duration after it first saw the last renewal (safety: however often it
    # reads, it sees a renewal only after it was sent, so the fencing margin stays whole) ...
    assert watched.takeover_seconds >= last_seen + KUBE_SCHEDULER.duration_seconds
    assert watched.takeover_seconds - (last_sent + KUBE_SCHEDULER.renew_deadline_seconds) >= (
        KUBE_SCHEDULER.fencing_margin_seconds
    )
    # ... and no later than a read period after the duration from when the leader sent it.
    assert watched.takeover_seconds <= last_sent + KUBE_SCHEDULER.duration_seconds + read_period + 1e-9


@pytest.mark.parametrize(
    ("election", "now", "timeout"),
    [
        (leader(sent=100.0), 102.0, 8.0),
        (leader(sent=100.0), 109.95, MIN_CALL_TIMEOUT_SECONDS),
        (leader(sent=100.0), 110.0, 10.0),
        (seen("b", held_by("a"), at_seconds=100.0), 102.0, 10.0),
        (Election("a"), 0.0, 10.0),
    ],
    ids=["leader", "leader-at-the-last-instant", "proof-ran-out", "standby", "nothing-read-yet"],
)
def test_a_lease_call_is_given_up_when_the_leaders_proof_runs_out_else_after_the_renew_deadline(
    election: Election, now: float, timeout: float
) -> None:
    assert election.call_timeout_seconds(now, KUBE_SCHEDULER) == pytest.approx(timeout)
