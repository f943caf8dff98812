"""Leader election on a coordination.k8s.io Lease, as client-go's leaderelection does it: what to do next.

Every replica reads the Lease and decides: create it, acquire it (it is free or has expired), renew
it (it is ours), or stand by. The leader reads and renews once a retry period; a standby reads four
times as often (client-go: once), because it judges expiry from the moment it first saw the current
record: each read period it lags a renewal is added to every failover (see `next_try_seconds`).
Whether a Lease has expired is judged on this replica's own monotonic clock, from the moment it
first saw the current record unchanged, never from the holder's `renewTime`: wall clocks of two
machines may disagree by any amount, while the rate at which their clocks advance hardly does. The
written times are for people and tools.

Leadership is proven until the moment a renewal was *sent* plus the renew deadline: another
replica can only take the Lease a whole lease duration after it saw that renewal, which it saw
after it was sent. The gap (duration - renew deadline, kube-scheduler's 15 - 10 = 5 s) is the
fencing margin: how long a write begun at the last instant of proof may take to land, plus what
the two monotonic clocks may drift apart over one lease duration. How often a standby reads cannot
shorten it: first seen >= sent however soon after the write the read comes, so the takeover at
>= first seen + duration stays a whole margin after the proof's end; reading more often only
moves the takeover nearer to that bound. Writes conditional on the Lease's resourceVersion make
two candidates' acquisitions of one record exclusive.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

# client-go refuses a renew deadline within this factor of the retry period (JitterFactor): a
# renewal retried at jittered intervals must get several tries before the deadline.
RETRY_JITTER_FACTOR = 1.2

# How many times a retry period a standby reads another's Lease. Its expiry clock starts when it
# first sees a renewal, so it takes over, on average, half its read period later than the Lease's
# duration after the renewal was sent: a quarter of kube-scheduler's 2 s retry period brings that
# from 1 s down to 0.25 s, for two more small GETs a second from the standby alone.
STANDBY_READS_PER_RETRY_PERIOD = 4

# The shortest timeout a Lease call is sent with: a call with less time than this cannot be
# answered, and an HTTP client reads a timeout of 0 as none at all.
MIN_CALL_TIMEOUT_SECONDS = 0.1


@dataclass(frozen=True, slots=True)
class LeaseTiming:
    duration_seconds: float  # how long a standby waits, unchanged Lease seen, before taking it
    renew_deadline_seconds: float  # how long the leader acts after the last renewal it sent
    retry_period_seconds: float  # how often the leader reads and renews the Lease

    def problem(self) -> str | None:
        """Why these timings cannot keep one leader (client-go's checks), or None."""
        if self.renew_deadline_seconds >= self.duration_seconds:
            return "the renew deadline must be shorter than the lease duration"
        if self.renew_deadline_seconds <= RETRY_JITTER_FACTOR * self.retry_period_seconds:
            return f"the renew deadline must exceed {RETRY_JITTER_FACTOR} x the retry period"
        return None

    @property
    def standby_read_period_seconds(self) -> float:
        """How often a replica reads a Lease another holds: within this of each renewal it sees it."""
        return self.retry_period_seconds / STANDBY_READS_PER_RETRY_PERIOD

    @property
    def fencing_margin_seconds(self) -> float:
        """How long after its proof ran out a leader's last write may still land safely."""
        return self.duration_seconds - self.renew_deadline_seconds


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """A Lease's spec: who holds it and for how long."""

    holder: str  # "" once released
    duration_seconds: int
    acquired: datetime | None = None
    renewed: datetime | None = None
    transitions: int = 0


@dataclass(frozen=True, slots=True)
class Observed:
    """The Lease as last read or written, and when this replica first saw that record."""

    record: LeaseRecord
    version: str  # the Lease's resourceVersion: every write is conditional on it
    since_seconds: float  # monotonic clock

    def expired(self, now_seconds: float) -> bool:
        """Free to take: released, or unchanged for its whole duration on this replica's clock."""
        if not self.record.holder or self.record.duration_seconds <= 0:
            return True
        return now_seconds >= self.since_seconds + self.record.duration_seconds


class Action(StrEnum):
    CREATE = "create"  # no Lease yet
    ACQUIRE = "acquire"  # the Lease is free or expired: take it over
    RENEW = "renew"  # the Lease is ours
    STAND_BY = "stand-by"  # another replica holds it


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    record: LeaseRecord | None = None  # what to write; None when standing by
    version: str | None = None  # the resourceVersion the write is conditional on (None: create)


@dataclass(frozen=True, slots=True)
class Election:
    """One replica's view of the election."""

    identity: str
    observed: Observed | None = None
    proven_until_seconds: float | None = None  # monotonic; None: not the leader

    def leads(self, now_seconds: float) -> bool:
        """Whether this replica may act at ``now_seconds``: its last renewal is recent enough."""
        return self.proven_until_seconds is not None and now_seconds < self.proven_until_seconds

    def write_budget_seconds(self, now_seconds: float, timing: LeaseTiming) -> float | None:
        """How long a write sent at ``now_seconds`` may take and still land before any other
        replica can act: the rest of the proof plus the fencing margin (None: not the leader)."""
        if not self.leads(now_seconds):
            return None
        assert self.proven_until_seconds is not None
        return self.proven_until_seconds - now_seconds + timing.fencing_margin_seconds

    def call_timeout_seconds(self, now_seconds: float, timing: LeaseTiming) -> float:
        """How long one Lease call (read or write) sent at ``now_seconds`` may take before it is
        given up as failed. The leader's: what is left of its proof, so a renewal that cannot be
        answered in time fails by the moment the proof runs out, and the replica reports that it
        stopped leading then, not whenever a hung connection gives up. Anyone else's: the renew
        deadline, as client-go's leader-election client's timeout (kube-scheduler's)."""
        if self.proven_until_seconds is None or not self.leads(now_seconds):
            return timing.renew_deadline_seconds
        return max(self.proven_until_seconds - now_seconds, MIN_CALL_TIMEOUT_SECONDS)


def observe(election: Election, record: LeaseRecord | None, *, version: str, now_seconds: float) -> Election:
    """Take in the Lease as read (None: there is none). A changed record restarts its expiry
    clock; a Lease held by someone else ends this replica's leadership at once."""
    if record is None:
        return replace(election, observed=None, proven_until_seconds=None)
    previous = election.observed
    since = previous.since_seconds if previous is not None and previous.record == record else now_seconds
    leads = election.proven_until_seconds if record.holder == election.identity else None
    return replace(election, observed=Observed(record, version, since), proven_until_seconds=leads)


def decide(election: Election, *, timing: LeaseTiming, now_seconds: float, wall: datetime) -> Decision:
    """What to write next, given the Lease last observed; ``wall`` only fills in the times shown."""
    duration = int(timing.duration_seconds)
    observed = election.observed
    if observed is None:
        return Decision(Action.CREATE, LeaseRecord(election.identity, duration, wall, wall, 0))
    old = observed.record
    if old.holder == election.identity:
        # Ours, whether this process wrote it or an earlier one with the same identity (a restart
        # of the same pod): client-go renews without counting a transition.
        renewed = replace(old, duration_seconds=duration, renewed=wall)
        return Decision(Action.RENEW, renewed, observed.version)
    if observed.expired(now_seconds):
        taken = LeaseRecord(election.identity, duration, wall, wall, old.transitions + 1)
        return Decision(Action.ACQUIRE, taken, observed.version)
    return Decision(Action.STAND_BY)


def next_try_seconds(election: Election, *, timing: LeaseTiming, now_seconds: float) -> float:
    """How long until the next read. Holding the Lease (or finding none): a retry period. Standing
    by: a standby read period, so a renewal is first seen within that of being sent (a Lease held
    by a dead leader is taken that much sooner after its duration), or less when the Lease observed
    expires sooner, so it is taken the moment it may be. Expired and still not taken (the
    acquisition failed): a retry period, as client-go waits between tries."""
    observed = election.observed
    if observed is None or observed.record.holder == election.identity:
        return timing.retry_period_seconds
    left = observed.since_seconds + observed.record.duration_seconds - now_seconds
    if left <= 0:
        return timing.retry_period_seconds
    return min(left, timing.standby_read_period_seconds)


def written(
    election: Election,
    decision: Decision,
    *,
    version: str,
    sent_seconds: float,
    timing: LeaseTiming,
) -> Election:
    """The write of ``decision`` succeeded: leadership is proven until the moment it was sent plus
    the renew deadline (sent, not answered: the answer may come late, the proof must not)."""
    assert decision.record is not None
    observed = Observed(decision.record, version, sent_seconds)
    until = sent_seconds + timing.renew_deadline_seconds
    return replace(election, observed=observed, proven_until_seconds=until)


def released(election: Election, *, wall: datetime) -> Decision | None:
    """Giving the Lease up on a clean exit, so a standby need not wait out its duration (client-go's
    ReleaseOnCancel): the holder emptied, 1 s left. None unless this replica holds it."""
    observed = election.observed
    if observed is None or observed.record.holder != election.identity:
        return None
    record = replace(observed.record, holder="", duration_seconds=1, renewed=wall, acquired=wall)
    return Decision(Action.RENEW, record, observed.version)


def stepped_down(election: Election) -> Election:
    """Stop acting now (a write was refused, or the process is leaving)."""
    return replace(election, proven_until_seconds=None)
